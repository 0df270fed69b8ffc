"""Each message's chain (`segment`): what lets one SQL statement tell the active branch's ancestors
from messages on other branches without walking the whole tree (docs/memory.md, "Branches").

A chain starts at a root message or at any message that is not its parent's first child (an edit, a
regenerated reply) and continues through first children. A chain is therefore a line, and its ids
grow along it, so the ancestors of a message M in a chain C are the messages of C with id <= the
last message of C on M's path. The column is kept by a trigger, so every writer (a turn, an import,
a copy) gets it right, and it is not a model field, so the ORM never loads or overwrites it.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION conversations_message_segment() RETURNS trigger AS $$
BEGIN
    IF NEW.parent_id IS NULL THEN
        NEW.segment := NEW.id;
        RETURN NEW;
    END IF;
    -- Serialises the children of one parent, so two racing inserts cannot both continue its chain.
    PERFORM 1 FROM conversations_message WHERE id = NEW.parent_id FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM conversations_message WHERE parent_id = NEW.parent_id) THEN
        NEW.segment := NEW.id;
    ELSE
        -- A parent without a chain (none should exist) starts one here: a chain of its own is
        -- always correct, only a shared one must be a line.
        NEW.segment := COALESCE((SELECT segment FROM conversations_message WHERE id = NEW.parent_id), NEW.id);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

# Down the tree from the roots, one level per step: a first child (the smallest id among its
# siblings) continues its parent's chain, any other child starts its own. Each step probes the
# parent_id index for the rows of the level before; merge and hash joins are turned off for this
# statement because the planner, costing the recursion once, would otherwise scan the whole table
# at every level (a 10,000-message conversation is 10,000 levels).
BACKFILL = """
SET LOCAL enable_mergejoin = off;
SET LOCAL enable_hashjoin = off;
WITH RECURSIVE chain(id, segment) AS (
    SELECT id, id FROM conversations_message WHERE parent_id IS NULL
    UNION ALL
    SELECT c.id,
           CASE WHEN c.id = (SELECT min(s.id) FROM conversations_message s WHERE s.parent_id = c.parent_id)
                THEN chain.segment ELSE c.id END
    FROM chain JOIN conversations_message c ON c.parent_id = chain.id
)
UPDATE conversations_message m SET segment = chain.segment FROM chain WHERE m.id = chain.id;
"""


class Migration(migrations.Migration):
    dependencies = [("conversations", "0009_images")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.RunSQL(
            "ALTER TABLE conversations_message ADD COLUMN segment bigint",
            "ALTER TABLE conversations_message DROP COLUMN segment",
        ),
        migrations.RunSQL(FUNCTION, "DROP FUNCTION conversations_message_segment()"),
        migrations.RunSQL(
            "CREATE TRIGGER conversations_message_segment BEFORE INSERT ON conversations_message "
            "FOR EACH ROW EXECUTE FUNCTION conversations_message_segment()",
            "DROP TRIGGER conversations_message_segment ON conversations_message",
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
