"""What a load records: the sizes of its relations (from the catalog) and its description in `lab_meta`.

Shared by both datasets (load.py: the TPC-H-like tables, tpch.py: TPC-H), so neither imports the other to
write its load; reading a load back is load.py's `read_meta` / `read_load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab_learnsched.pg.conn import SCHEMA

if TYPE_CHECKING:
    import psycopg


def relation_pages(
    conn: psycopg.Connection, tables: tuple[str, ...], names: list[str] | None = None
) -> dict[str, int]:
    """Main-fork pages of our `tables` and their indexes (or of `names`)."""
    if names is None:
        rows = conn.execute(
            "SELECT c.relname, pg_relation_size(c.oid) / current_setting('block_size')::int FROM pg_class c "
            "LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relnamespace = to_regnamespace(%s) AND "
            "(c.relname = ANY(%s) OR i.indrelid = ANY(SELECT oid FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace = to_regnamespace(%s))) ORDER BY c.relkind DESC, c.relname",
            (SCHEMA, list(tables), list(tables), SCHEMA),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT relname, pg_relation_size(oid) / current_setting('block_size')::int FROM pg_class "
            "WHERE relname = ANY(%s) AND relnamespace = to_regnamespace(%s)",
            (names, SCHEMA),
        ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def store_meta(conn: psycopg.Connection, info: Any, templates: list) -> None:
    """The load description and the templates (Template objects or plain dicts) in lab_meta."""
    from psycopg.types.json import Jsonb

    meta = {
        "dataset": getattr(info, "dataset", "tpch-like"),
        "load_id": info.load_id,
        "scale": info.scale,
        "seed": info.seed,
        "rows": info.rows,
        "pages": info.pages,
    }
    with conn.transaction():
        conn.execute(f"DELETE FROM {SCHEMA}.lab_meta")
        conn.execute(f"INSERT INTO {SCHEMA}.lab_meta VALUES ('load', %s), ('templates', %s)",
                     (Jsonb(meta), Jsonb([t if isinstance(t, dict) else t.to_dict() for t in templates])))  # fmt: skip
