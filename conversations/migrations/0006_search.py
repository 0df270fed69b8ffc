from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0005_api_keys")]

    operations: list[migrations.operations.base.Operation] = []
