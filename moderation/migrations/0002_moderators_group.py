"""The "moderators" group: what a moderator needs for the review queue, and nothing more.

No delete permission anywhere (flags and decisions are evidence) and nothing on users or auth: a
moderator suspends an account through the review page or a Suspension, never by editing the user.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "moderators"
PERMISSIONS = {
    ("moderation", "flag"): ("view_flag", "change_flag", "review_flag"),
    ("moderation", "moderationdecision"): ("view_moderationdecision",),
    ("moderation", "suspension"): ("view_suspension", "add_suspension", "change_suspension"),
    ("conversations", "conversation"): ("view_conversation",),
    ("conversations", "message"): ("view_message",),
}


def ensure_permissions(apps, schema_editor):
    """Permission rows are normally made by post_migrate, which has not run yet in a fresh database."""
    for label in sorted({app_label for app_label, _ in PERMISSIONS}):
        app_config = apps.get_app_config(label)
        # The migration state's app configs have no models module, and create_permissions skips
        # such apps; it reads the models from `apps`, so the flag only has to be truthy.
        app_config.models_module = True
        try:
            create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        finally:
            app_config.models_module = None


def create_group(apps, schema_editor):
    ensure_permissions(apps, schema_editor)
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    wanted = []
    for (app_label, model), codenames in PERMISSIONS.items():
        content_type = ContentType.objects.using(db).get(app_label=app_label, model=model)
        for codename in codenames:
            wanted.append(Permission.objects.using(db).get(content_type=content_type, codename=codename))
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    # Exactly these, even if an operator had already made a group of that name.
    group.permissions.set(wanted)


def delete_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0001_initial"),
        ("conversations", "0003_message_redacted_content"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
