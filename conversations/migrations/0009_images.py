from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0008_retention")]

    operations: list[migrations.operations.base.Operation] = []
