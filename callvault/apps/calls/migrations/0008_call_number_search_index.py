"""Partial phone number search ("5678", "090-12") without reading every call.

PostgreSQL: pg_trgm GIN indexes on the two number columns; ``LIKE '%5678%'`` uses them as is.
Creating the extension needs a superuser (or a trusted-extension grant): when that is not
allowed the migration says so and the search keeps working by scanning.

SQLite: an FTS5 table with the trigram tokenizer (SQLite >= 3.34) over the two numbers, kept
up to date by triggers on ``calls_call`` (so every writer - recorder, worker, imports, raw
SQL - keeps it right). FTS rows are keyed by a small mapping table rather than by
``calls_call``'s implicit rowid, which VACUUM may renumber. The list still applies the exact
``LIKE`` condition; the FTS table only narrows the candidates (see ``number_search``).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, migrations, transaction

log = logging.getLogger("callvault.migrations")

PG_INDEXES = {
    "calls_call_caller_number_trgm": "caller_number",
    "calls_call_callee_number_trgm": "callee_number",
}
SQLITE_CREATE = [
    "CREATE TABLE calls_call_numbers_map (rowid INTEGER PRIMARY KEY, call_id char(32) NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE calls_call_numbers USING fts5(caller_number, callee_number, tokenize='trigram')",
    """CREATE TRIGGER calls_call_numbers_ai AFTER INSERT ON calls_call BEGIN
  INSERT INTO calls_call_numbers_map(call_id) VALUES (new.id);
  INSERT INTO calls_call_numbers(rowid, caller_number, callee_number)
    VALUES ((SELECT rowid FROM calls_call_numbers_map WHERE call_id = new.id), new.caller_number, new.callee_number);
END""",
    """CREATE TRIGGER calls_call_numbers_au AFTER UPDATE OF caller_number, callee_number ON calls_call
WHEN old.caller_number IS NOT new.caller_number OR old.callee_number IS NOT new.callee_number BEGIN
  UPDATE calls_call_numbers SET caller_number = new.caller_number, callee_number = new.callee_number
    WHERE rowid = (SELECT rowid FROM calls_call_numbers_map WHERE call_id = new.id);
END""",
    """CREATE TRIGGER calls_call_numbers_ad AFTER DELETE ON calls_call BEGIN
  DELETE FROM calls_call_numbers WHERE rowid = (SELECT rowid FROM calls_call_numbers_map WHERE call_id = old.id);
  DELETE FROM calls_call_numbers_map WHERE call_id = old.id;
END""",
    # the calls there are already
    "INSERT INTO calls_call_numbers_map(call_id) SELECT id FROM calls_call",
    """INSERT INTO calls_call_numbers(rowid, caller_number, callee_number)
  SELECT m.rowid, c.caller_number, c.callee_number FROM calls_call c JOIN calls_call_numbers_map m ON m.call_id = c.id""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS calls_call_numbers_ai",
    "DROP TRIGGER IF EXISTS calls_call_numbers_au",
    "DROP TRIGGER IF EXISTS calls_call_numbers_ad",
    "DROP TABLE IF EXISTS calls_call_numbers",
    "DROP TABLE IF EXISTS calls_call_numbers_map",
]


def forwards(apps: object, schema_editor: object) -> None:
    connection = schema_editor.connection  # type: ignore[attr-defined]
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic(
                using=connection.alias
            ):  # a savepoint: a refusal must not end the migration
                schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # type: ignore[attr-defined]
        except DatabaseError as exc:
            log.warning(
                "pg_trgm could not be enabled (%s); partial number search will scan the calls. "
                "A superuser can run CREATE EXTENSION pg_trgm and then: callvault manage migrate calls 0007 && "
                "callvault manage migrate",
                str(exc).strip().splitlines()[0],
            )
            return
        for name, column in PG_INDEXES.items():
            schema_editor.execute(  # type: ignore[attr-defined]
                f"CREATE INDEX IF NOT EXISTS {name} ON calls_call USING gin ({column} gin_trgm_ops)"
            )
    elif connection.vendor == "sqlite":
        try:
            with transaction.atomic(using=connection.alias):
                for sql in SQLITE_DROP + SQLITE_CREATE:  # from scratch: safe to run again
                    schema_editor.execute(sql)  # type: ignore[attr-defined]
        except DatabaseError as exc:  # no FTS5 or no trigram tokenizer (SQLite < 3.34)
            log.warning("no FTS5 trigram index (%s); partial number search will scan the calls", exc)


def backwards(apps: object, schema_editor: object) -> None:
    connection = schema_editor.connection  # type: ignore[attr-defined]
    if connection.vendor == "postgresql":
        for name in PG_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")  # type: ignore[attr-defined]
    elif connection.vendor == "sqlite":
        for sql in SQLITE_DROP:
            schema_editor.execute(sql)  # type: ignore[attr-defined]


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0007_completeness"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
