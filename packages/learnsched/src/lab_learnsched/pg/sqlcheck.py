"""SELECT only: the checker every query template (and any user SQL) passes before it reaches the server.

Parsed with pglast (PostgreSQL's own parser, as a library): exactly one statement, a plain SELECT, and
nowhere inside it (CTEs, subqueries, set operations) a data-modifying statement, SELECT INTO, a row lock
(FOR UPDATE/SHARE) or a call to a function that writes, reads server files, runs SQL text or changes
settings. This is the first line; the second is that templates run in READ ONLY transactions that are rolled
back (execute.py), the third that `check_templates` rejects volatile functions found in the catalog.
Templates are checked when read from a file and again whenever read back from `lab_meta`.
"""

from __future__ import annotations

import re

from lab_shared.errors import LabError

# functions a read-only query has no business calling (matched on the unqualified, lowercased name)
DENY_NAMES = {
    "set_config", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_notify", "nextval", "setval",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
    "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop", "pg_start_backup",
    "pg_stop_backup", "pg_stat_file", "pg_import_system_collations", "pg_log_backend_memory_contexts",
    "pg_prewarm", "pg_stat_statements_reset", "txid_current", "pg_current_xact_id", "pg_export_snapshot",
    "pg_truncate_visibility_map", "pg_visibility_map_summary",
}  # fmt: skip
DENY_PREFIXES = (
    "pg_read_", "pg_ls_", "pg_file_", "lo_", "dblink", "pg_advisory", "pg_try_advisory", "pg_stat_reset",
    "pg_replication_", "pg_logical_", "pg_create_", "pg_drop_", "pg_wal_replay_", "pg_copy_",
    "query_to_xml", "table_to_xml", "cursor_to_xml", "schema_to_xml", "database_to_xml",
)  # fmt: skip
WRITE_NODES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}


def _to_pg_params(sql: str) -> str:
    """psycopg's %(name)s placeholders as $n (pglast parses PostgreSQL, not psycopg); %% as %."""
    names: dict[str, int] = {}

    def sub(m: re.Match) -> str:
        return f"${names.setdefault(m.group(1), len(names) + 1)}"

    return re.sub(r"%\((\w+)\)s", sub, sql).replace("%%", "%")


def denied_function(name: str) -> bool:
    n = name.lower()
    return n in DENY_NAMES or n.startswith(DENY_PREFIXES)


def function_names(sql: str) -> set[str]:
    """Unqualified names of every function the (already checked) statement calls."""
    from pglast import parse_sql
    from pglast.visitors import Visitor

    found: set[str] = set()

    class V(Visitor):
        def visit_FuncCall(self, ancestors, node):  # noqa: N802 - pglast's naming
            found.add(node.funcname[-1].sval.lower())

    V()(parse_sql(_to_pg_params(sql)))
    return found


def check_select(sql: str, where: str) -> None:
    """Raise a one-line LabError naming `where` unless `sql` is a single read-only SELECT."""
    from pglast import parse_sql
    from pglast.parser import ParseError
    from pglast.visitors import Visitor

    try:
        stmts = parse_sql(_to_pg_params(sql))
    except ParseError as e:
        raise LabError(f"{where}: not valid SQL: {str(e).splitlines()[0]}") from None
    if len(stmts) != 1:
        raise LabError(f"{where}: must be exactly one statement, got {len(stmts)}")
    top = type(stmts[0].stmt).__name__
    if top != "SelectStmt":
        raise LabError(f"{where}: only SELECT is allowed, got {top.removesuffix('Stmt').upper()}")
    problems: list[str] = []

    class V(Visitor):
        def visit(self, ancestors, node):
            kind = type(node).__name__
            if kind in WRITE_NODES:
                problems.append(f"a data-modifying {kind.removesuffix('Stmt').upper()} inside the query")
            elif kind.endswith("Stmt") and kind not in ("SelectStmt", "RawStmt"):
                problems.append(f"a {kind} inside the query")
            elif kind == "SelectStmt":
                if node.intoClause is not None:
                    problems.append("SELECT INTO (it creates a table)")
                if node.lockingClause:
                    problems.append("FOR UPDATE/SHARE (it locks and writes rows)")
            elif kind == "FuncCall":
                name = node.funcname[-1].sval
                if denied_function(name):
                    problems.append(f"function {name}() (not read-only)")

    V()(stmts)
    if problems:
        raise LabError(f"{where}: only a read-only SELECT is allowed, found {problems[0]}")
