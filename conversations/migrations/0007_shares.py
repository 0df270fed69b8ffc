from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("conversations", "0006_search")]

    operations: list[migrations.operations.base.Operation] = []
