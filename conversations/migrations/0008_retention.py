from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_shares")]

    operations: list[migrations.operations.base.Operation] = []
