"""Full-text search over messages: a stored tsvector generated from `content`, and its GIN index.

Written in SQL, not as a model field, so that ordinary message queries never load the column
(conversations/models.py, conversations/search.py). `<` and `>` become two private-use characters
before parsing: PostgreSQL's parser otherwise takes `<script>` or `List<String>` for markup and
skips the words inside, and people paste code and HTML into chats. Adding a stored generated column rewrites the
message table once, under a lock: on a large deployment, run this migration in a quiet moment.
"""

from django.db import migrations

ADD = """
ALTER TABLE conversations_message
    ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, translate(content, '<>', E'\\uE002\\uE003'))) STORED;
CREATE INDEX msg_search_vector_gin ON conversations_message USING gin (search_vector);
"""
REMOVE = """
DROP INDEX IF EXISTS msg_search_vector_gin;
ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_vector;
"""


class Migration(migrations.Migration):
    dependencies = [("conversations", "0005_api_keys")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.RunSQL(ADD, reverse_sql=REMOVE),
    ]
