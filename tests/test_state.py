"""The state database: one layout, versions, upgrades in place, and openers racing.

``tests/data/workspace_v0.db`` was written by the stores as they were before versions existed
(see ``tests/data/make_workspace_v0.py``); it must open with today's code and read back exactly.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from automl import state
from automl.data import BatchLedger, BatchRecord, LabelStore, Schema
from automl.drift import DriftState, DriftStateStore
from automl.errors import StateError
from automl.service import CycleHistory, CycleResult
from automl.state import SCHEMA_VERSION, open_state, schema_version
from automl.tracking import LogEntry, PromotionLog
from tests.conftest import fresh_postgres_database, run_at_once
from tests.data.make_workspace_v0 import (
    BATCHES,
    CHECKED,
    CYCLES,
    DRIFT_STATES,
    PROMOTIONS,
    SCHEMA,
    STAMP,
)

FIXTURES = Path(__file__).parent / "data"
V0_DB = FIXTURES / "workspace_v0.db"
V0_POSTGRESQL_DDL = FIXTURES / "workspace_v0_postgresql.sql"
V1_TABLES = sorted(
    ["automl_batches", "automl_schemas", "automl_cycles", "automl_drift_state", "automl_promotions"]
)
#: Tables added since version 0: the version row (1) and each later version's new tables.
#: Version 3 (late labels): its tables.
V3_TABLES = {t.name for t in state._V3_TABLES}
#: Version 4 (late labels in the cycle): the estimates and the label watch.
V4_TABLES = {t.name for t in state._V4_TABLES}
ADDED_TABLES = {"automl_schema_version", "automl_shadow", *V3_TABLES, *V4_TABLES}
#: Version 4 widened the cycle status (``waiting_for_labels``).
CYCLE_STATUS_V0, CYCLE_STATUS_V4 = "status VARCHAR(16) NOT NULL", "status VARCHAR(32) NOT NULL"
#: Everything added as SQLite names it: the tables and their indexes.
ADDED_NAMES = ADDED_TABLES | {
    str(ix.name) for t in (*state._V3_TABLES, *state._V4_TABLES) for ix in t.indexes
}


def _v0_copy(tmp_path: Path) -> str:
    path = tmp_path / "automl.db"
    shutil.copy(V0_DB, path)
    return f"sqlite:///{path}"


def _sqlite_layout(path: Path | str) -> dict[str, str]:
    """``CREATE`` statement of every automl table and index, as SQLite stores it."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name LIKE '%automl_%' AND sql IS NOT NULL"
        ).fetchall()
    return dict(rows)


def _assert_v0_rows_read_back(url: str) -> None:
    """Every row make_workspace_v0.py wrote comes back through the stores, field for field."""
    ledger = BatchLedger(url)
    expected_batches = [
        BatchRecord(
            id=i,
            pipeline=b["pipeline"],
            sha256=b["sha256"],
            file_name=b["file_name"],
            status=b["status"],
            reason=b.get("reason"),
            stored_path=Path(b["stored_path"]) if b.get("stored_path") else None,
            n_rows=b.get("n_rows", 0),
            received_at=STAMP,
            cycle_id=CHECKED["cycle_id"] if i in CHECKED["ids"] else None,
        )
        for i, b in enumerate(BATCHES, start=1)
    ]
    assert ledger.records("churn") == expected_batches
    assert [r.id for r in ledger.pending("churn")] == [3]
    assert ledger.get_schema("churn") == Schema(
        features=tuple((n, k) for n, k in SCHEMA["features"]),
        target=SCHEMA["target"],
        task=SCHEMA["task"],
    )

    history = CycleHistory(url)
    churn_cycles = [CycleResult.from_dict(c) for c in CYCLES if c["pipeline"] == "churn"]
    assert history.list("churn") == churn_cycles[::-1]  # newest first
    assert history.last("churn", checked=True) == churn_cycles[0]
    assert history.last("other") == CycleResult.from_dict(CYCLES[2])

    fields = DRIFT_STATES["churn"]
    assert DriftStateStore(url).load("churn") == DriftState(
        **{**fields, "recent": tuple(tuple(r) for r in fields["recent"])}
    )

    log = PromotionLog(url)
    keys = set(LogEntry.__dataclass_fields__) - {"id", "created_at"}
    expected: list[dict[str, Any]] = [
        {"id": i, "created_at": STAMP, **{k: row.get(k) for k in keys}}
        for i, row in enumerate(PROMOTIONS, start=1)
    ]
    assert log.entries("churn") == [LogEntry(**fields) for fields in expected]
    assert [e.id for e in log.open_intents("churn")] == [3]


def _assert_v0_rows_accept_writes(url: str) -> None:
    """The upgraded tables keep their keys: ids continue, duplicates are still refused."""
    ledger = BatchLedger(url)
    again = ledger.add(pipeline="churn", sha256="a" * 64, file_name="again.csv", status="accepted")
    assert (again.id, again.file_name) == (1, "batch_001.csv")  # the first record wins
    # PostgreSQL spends a sequence value on the refused duplicate: ids only continue upwards.
    added = ledger.add(pipeline="churn", sha256="d" * 64, file_name="d.csv", status="accepted")
    assert added.id > len(BATCHES) and ledger.records("churn")[-1] == added
    log = PromotionLog(url)
    assert log.reconcile("churn", lambda: "1") == [3]
    closing = log.entries("churn")[-1]
    assert (closing.id, closing.intent_id, closing.status) == (4, 3, "applied")
    assert log.open_intents("churn") == []


# -- (a) a workspace written before versions --------------------------------------------------
def test_a_workspace_from_before_versions_upgrades_in_place(tmp_path: Path) -> None:
    url = _v0_copy(tmp_path)
    assert schema_version(sa.create_engine(url)) is None  # version 0: tables, no version row
    before = _sqlite_layout(tmp_path / "automl.db")

    _assert_v0_rows_read_back(url)

    assert schema_version(open_state(url)) == SCHEMA_VERSION == 4
    after = _sqlite_layout(tmp_path / "automl.db")
    assert set(after) - set(before) == ADDED_NAMES
    assert {name: after[name] for name in before} == before  # old tables untouched
    _assert_v0_rows_accept_writes(url)


def test_a_workspace_where_some_stores_never_ran_gets_the_missing_tables(tmp_path: Path) -> None:
    """Each old store created its own tables on first use: a workspace that only ingested has
    the ledger's tables and none of the others."""
    url = _v0_copy(tmp_path)
    with sqlite3.connect(tmp_path / "automl.db") as conn:
        for name in ("automl_cycles", "automl_drift_state", "automl_promotions"):
            conn.execute(f"DROP TABLE {name}")

    ledger = BatchLedger(url)
    assert schema_version(open_state(url)) == SCHEMA_VERSION
    assert len(ledger.records("churn")) == len(BATCHES)
    assert sorted(sa.inspect(open_state(url)).get_table_names()) == sorted(
        [*V1_TABLES, *ADDED_TABLES]
    )
    assert CycleHistory(url).list("churn") == []


# -- (a2) a version-2 workspace (before late labels) ------------------------------------------
def _v2_copy(tmp_path: Path) -> str:
    """The fixture as automl at version 2 left it: its tables, the shadow table, version 2."""
    url = _v0_copy(tmp_path)
    engine = sa.create_engine(url)
    state.schema_version_table.create(engine)
    state.shadow_table.create(engine)
    with engine.begin() as conn:
        conn.execute(state.schema_version_table.insert().values(id=1, version=2))
    engine.dispose()
    return url


def test_a_version_2_workspace_upgrades_to_the_newest_with_the_late_label_tables(
    tmp_path: Path,
) -> None:
    url = _v2_copy(tmp_path)
    assert schema_version(sa.create_engine(url)) == 2
    before = _sqlite_layout(tmp_path / "automl.db")
    new_names = ADDED_NAMES - ADDED_TABLES | V3_TABLES | V4_TABLES
    assert not new_names & before.keys()

    assert schema_version(open_state(url)) == SCHEMA_VERSION == 4
    after = _sqlite_layout(tmp_path / "automl.db")
    assert set(after) - set(before) == new_names
    assert {name: after[name] for name in before} == before  # version-2 tables untouched
    _assert_v0_rows_read_back(url)
    _assert_v0_rows_accept_writes(url)
    # The new tables work on the upgraded database: a row waiting for its label.
    store = LabelStore(url)
    assert store.label_stats("churn").n_rows == 0
    with open_state(url).begin() as conn:
        conn.execute(
            state.rows_table.insert().values(
                pipeline="churn", row_id="7", batch_id=1, position=0, arrived_s=100.0
            )
        )
    assert store.label_stats("churn").n_waiting_rows == 1


def test_the_version_3_migration_keeps_late_label_tables_that_exist(tmp_path: Path) -> None:
    """A version-2 database that already has one of the tables (created by hand, or by a run
    that stopped before recording the version) upgrades all the same, its rows kept."""
    url = _v2_copy(tmp_path)
    engine = sa.create_engine(url)
    state.rows_table.create(engine)
    with engine.begin() as conn:
        conn.execute(
            state.rows_table.insert().values(
                pipeline="churn", row_id="a", batch_id=1, position=0, arrived_s=1.0
            )
        )
    state._upgrade(engine, state.MIGRATIONS)
    assert schema_version(engine) == SCHEMA_VERSION
    assert _sqlite_layout(tmp_path / "automl.db").keys() >= ADDED_NAMES
    with engine.connect() as conn:
        assert conn.execute(sa.select(state.rows_table.c.row_id)).scalars().all() == ["a"]


# -- (b) a new database ----------------------------------------------------------------------
def test_a_new_database_gets_every_table_in_todays_layout_and_the_current_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "automl.db"
    engine = open_state(f"sqlite:///{path}")
    assert schema_version(engine) == SCHEMA_VERSION
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(state.schema_version_table)
            ).scalar()
            == 1
        )
    layout = _sqlite_layout(path)
    # Byte for byte what the stores created before versions (old and new code share a
    # database), but for the cycle status widened by version 4 (SQLite ignores the length).
    old = _sqlite_layout(V0_DB)
    old["automl_cycles"] = old["automl_cycles"].replace(CYCLE_STATUS_V0, CYCLE_STATUS_V4)
    assert {k: v for k, v in layout.items() if k not in ADDED_NAMES} == old


def test_the_postgresql_layout_is_the_one_written_before_versions() -> None:
    """The DDL for PostgreSQL, compiled without a server, equals what the old stores emitted."""
    statements: list[str] = []
    engine = sa.create_mock_engine(
        "postgresql+psycopg2://",
        lambda sql, *_, **__: statements.append(str(sql.compile(dialect=engine.dialect)).strip()),
    )
    tables = [t for t in state.metadata.sorted_tables if t.name not in ADDED_TABLES]
    state.metadata.create_all(engine, tables=tables, checkfirst=False)
    ddl = V0_POSTGRESQL_DDL.read_text(encoding="utf-8")
    old = [
        s.replace(CYCLE_STATUS_V0, CYCLE_STATUS_V4) if "TABLE automl_cycles" in s else s
        for s in ddl.split(";\n")
        if s.strip()
    ]  # version 4 widened the cycle status
    assert sorted(statements) == sorted(old)


def test_opening_is_done_once_per_url_and_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'automl.db'}"
    engine = open_state(url)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        assert open_state(url) is engine
        for store in (BatchLedger, CycleHistory, DriftStateStore, PromotionLog):
            store(url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert statements == []


# -- (c) a database from a newer automl -------------------------------------------------------
def test_a_database_from_a_newer_automl_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "automl.db"
    url = f"sqlite:///{path}"
    other = sa.create_engine(url)  # as a newer automl would have left it
    state.metadata.create_all(other)
    with other.begin() as conn:
        conn.execute(state.schema_version_table.insert().values(id=1, version=SCHEMA_VERSION + 7))
    before = _sqlite_layout(path)

    message = (
        rf"{path}.* has schema version {SCHEMA_VERSION + 7}, but this automl knows versions up "
        rf"to {SCHEMA_VERSION}: .*upgrade automl"
    )
    with pytest.raises(StateError, match=message):
        open_state(url)
    with pytest.raises(StateError, match=message):  # not cached as opened
        CycleHistory(url)
    assert schema_version(other) == SCHEMA_VERSION + 7 and _sqlite_layout(path) == before


# -- migrations ------------------------------------------------------------------------------
def _add_note_column(conn: sa.Connection) -> None:
    if "note" not in {c["name"] for c in sa.inspect(conn).get_columns("automl_cycles")}:
        conn.exec_driver_sql("ALTER TABLE automl_cycles ADD COLUMN note TEXT")


def _cycle_columns(url: str) -> set[str]:
    return {c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns("automl_cycles")}


def test_pending_migrations_run_in_order_once(tmp_path: Path) -> None:
    url = _v0_copy(tmp_path)
    engine = sa.create_engine(url)
    calls: list[int] = []
    known = len(state.MIGRATIONS)

    def to_next(conn: sa.Connection) -> None:
        calls.append(known + 1)
        _add_note_column(conn)

    def to_after(conn: sa.Connection) -> None:
        calls.append(known + 2)
        assert "note" in {c["name"] for c in sa.inspect(conn).get_columns("automl_cycles")}

    migrations = (*state.MIGRATIONS, to_next, to_after)
    state._upgrade(engine, migrations)  # version 0 -> known + 2
    assert calls == [known + 1, known + 2] and schema_version(engine) == known + 2
    state._upgrade(engine, migrations)
    assert calls == [known + 1, known + 2]  # nothing pending
    assert "note" in _cycle_columns(url)


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    url = _v0_copy(tmp_path)
    engine = sa.create_engine(url)
    state._upgrade(engine, state.MIGRATIONS)

    def broken(conn: sa.Connection) -> None:
        _add_note_column(conn)
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        state._upgrade(engine, (*state.MIGRATIONS, broken))
    assert schema_version(engine) == SCHEMA_VERSION
    assert "note" not in _cycle_columns(url)  # the ALTER was rolled back with the rest


# -- (d) PostgreSQL --------------------------------------------------------------------------
def _copy_v0_rows(target: sa.Engine) -> None:
    """The fixture's rows into tables made by the old DDL; ids assigned by their sequences."""
    source = sa.create_engine(f"sqlite:///{V0_DB}")
    tables = [t for t in state.metadata.sorted_tables if t.name in V1_TABLES]
    with source.connect() as read, target.begin() as write:
        for table in tables:
            rows = [
                dict(r._mapping)
                for r in read.execute(sa.select(table).order_by(*table.primary_key))
            ]
            for number, row in enumerate(rows, start=1):
                if "id" in row:
                    assert row.pop("id") == number  # the sequence gives the same id
                write.execute(table.insert().values(**row))
    source.dispose()


def _postgres_layout(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {
        name: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
            inspector.get_pk_constraint(name),
            inspector.get_unique_constraints(name),
            inspector.get_indexes(name),
        )
        for name in V1_TABLES
    }


@pytest.mark.postgres
def test_a_postgresql_workspace_from_before_versions_upgrades_in_place(postgres_url: str) -> None:
    with fresh_postgres_database("automl_state_v0") as url:
        old = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with old.begin() as conn:
            for statement in V0_POSTGRESQL_DDL.read_text(encoding="utf-8").split(";\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
        _copy_v0_rows(old)
        before = _postgres_layout(old)
        assert schema_version(old) is None

        try:
            _assert_v0_rows_read_back(url)
            assert schema_version(open_state(url)) == SCHEMA_VERSION
            after = _postgres_layout(old)
            assert ("status", "VARCHAR(32)", False) in after["automl_cycles"][0]  # version 4
            widened = [
                ("status", "VARCHAR(16)", False) if c[0] == "status" else c
                for c in after["automl_cycles"][0]
            ]
            after["automl_cycles"] = (widened, *after["automl_cycles"][1:])
            assert after == before
            _assert_v0_rows_accept_writes(url)
        finally:
            state.get_engine(url).dispose()  # let the database be dropped


_OPEN_ON_GO = """
import sys
from automl.state import open_state, schema_version
print("ready", flush=True)
sys.stdin.readline()
engine = open_state(sys.argv[1])
print(schema_version(engine), flush=True)
"""


def _open_at_once(url: str, n_processes: int) -> None:
    """Start processes that each open ``url`` once all are ready; each must succeed."""
    for code, out, err in run_at_once(_OPEN_ON_GO, url, n_processes):
        assert code == 0, err
        assert out.strip() == str(SCHEMA_VERSION)


# -- (e) processes opening one new database at once ------------------------------------------
def test_processes_opening_a_new_sqlite_database_at_once_all_succeed(tmp_path: Path) -> None:
    for attempt in range(2):
        path = tmp_path / f"race{attempt}" / "automl.db"
        _open_at_once(f"sqlite:///{path}", 4)
        assert _sqlite_layout(path).keys() == _sqlite_layout(V0_DB).keys() | ADDED_NAMES
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT id, version FROM automl_schema_version").fetchall() == [
                (1, SCHEMA_VERSION)
            ]


@pytest.mark.postgres
def test_processes_opening_a_new_postgresql_database_at_once_all_succeed(
    postgres_url: str,
) -> None:
    with fresh_postgres_database("automl_state_race") as url:
        _open_at_once(url, 4)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        assert sorted(sa.inspect(engine).get_table_names()) == sorted([*V1_TABLES, *ADDED_TABLES])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(state.schema_version_table)).all()
        assert [tuple(r) for r in rows] == [(1, SCHEMA_VERSION)]
