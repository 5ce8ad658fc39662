"""The workspace state database: one engine per URL, every table, schema versions and migrations.

Everything automl keeps between cycles outside MLflow lives in one database (SQLite in the
workspace by default, PostgreSQL for scale-out): the ledger of landed files and each pipeline's
schema, the late labels (label files, every row's label, labels waiting or in conflict), the
cycle history, the drift hysteresis state, the shadow state and the promotion log. Their tables
are all defined here, on one :data:`metadata`; the stores that read and write them
(``BatchLedger``, ``LabelStore``, ``CycleHistory``, ``DriftStateStore``, ``PromotionLog``, ...)
get their engine from :func:`open_state`, which brings the database to the layout of this code
first.

Schema versions:
    The table ``automl_schema_version`` holds one integer, the layout the database has. Version
    1 is the layout automl wrote before versions existed (commit 75b031c); a database with
    automl's tables but no version row is such a database (version 0) and is upgraded by
    recording version 1. ``MIGRATIONS[n]`` brings a database from version ``n`` to ``n + 1``,
    so a new version is one function appended to :data:`MIGRATIONS` (version 2 added
    ``automl_shadow``, version 3 the late-label tables ``automl_label_files``, ``automl_rows``
    and ``automl_label_events``, version 4 ``automl_estimates`` and ``automl_label_watch`` and
    a wider cycle status). A migration changes tables that exist (and checks before it
    changes: a column may already be there); tables a database lacks are created afterwards in
    their newest layout by ``create_all``. A new database gets every table and the current
    version without running any migration.

Why not Alembic:
    it would be a new dependency (and a migration environment, an ``alembic.ini`` and a
    versions folder shipped inside the package) for a handful of small tables; the migrations
    must run in-process whenever a command or the service opens a workspace, on SQLite and
    PostgreSQL alike, with no command for the user to run; and the concurrency rule (two
    processes opening a new database at once) needs a database lock around the
    check-and-upgrade, which is a few lines here either way. Should migrations ever need
    Alembic's autogenerate or branching, :data:`metadata` is what its ``env.py`` would point
    at.

Concurrency:
    :func:`open_state` does its work once per URL per process, inside one transaction that
    first takes a lock: ``BEGIN IMMEDIATE`` on SQLite (the write lock; a second process waits
    for it, up to the engine's 30 s timeout) and a transaction-level advisory lock on
    PostgreSQL. The second opener then finds the tables and the version in place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from automl.errors import StateError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "batches_table",
    "cycles_table",
    "drift_state_table",
    "estimates_table",
    "get_engine",
    "insert_once",
    "label_events_table",
    "label_files_table",
    "label_watch_table",
    "load_pipeline_value",
    "metadata",
    "open_state",
    "promotions_table",
    "rows_table",
    "save_pipeline_row",
    "schema_version",
    "schema_version_table",
    "schemas_table",
    "shadow_table",
    "utcnow",
]

log = logging.getLogger(__name__)

# -- engines -----------------------------------------------------------------------------------
_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets the service's worker threads read while one writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _server_options(url: str) -> dict[str, Any]:
    """A small pool: two idle connections, more only while cycles run at once.

    A running cycle holds one connection for its pipeline lock (PostgreSQL advisory locks live
    as long as their session) and borrows another for a moment per ledger or history write, so
    the default service (at most four cycles at once) needs up to eight.
    """
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": 2,
        "max_overflow": 8,
        "pool_recycle": 1800,
    }
    if url.startswith("postgresql"):
        # In pg_stat_activity, so an operator can tell which automl process holds what.
        options["connect_args"] = {"application_name": f"automl:{os.getpid()}"}
    return options


def get_engine(url: str) -> sa.Engine:
    """Return a process-wide engine for ``url``, creating it (and SQLite's folder) once.

    The engine does not touch the tables; stores use :func:`open_state`.
    """
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(url, connect_args={"timeout": 30})
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            elif url.startswith("sqlite"):  # in memory
                engine = sa.create_engine(url)
            else:
                engine = sa.create_engine(url, **_server_options(url))
            _engines[url] = engine
        return engine


def utcnow() -> str:
    """Current UTC time as ISO-8601 text, the form of every timestamp column here."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- tables ------------------------------------------------------------------------------------
#: Every table of the state database. Names, types, indexes and constraints are those of the
#: databases automl has written since before versions existed: change them only with a migration.
metadata = sa.MetaData()

#: The ledger: every landed file once per pipeline, by content hash.
batches_table = sa.Table(
    "automl_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(64), nullable=False, index=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("file_name", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("stored_path", sa.String(1024), nullable=True),
    sa.Column("n_rows", sa.Integer, nullable=False, default=0),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("cycle_id", sa.String(64), nullable=True),
    sa.UniqueConstraint("pipeline", "sha256", name="uq_automl_batches_pipeline_sha"),
)

#: Each pipeline's schema, fixed by its first accepted batch.
schemas_table = sa.Table(
    "automl_schemas",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("schema_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

#: The cycle history: one row per finished cycle.
cycles_table = sa.Table(
    "automl_cycles",
    metadata,
    sa.Column("cycle_id", sa.String(64), primary_key=True),
    sa.Column("pipeline", sa.String(64), nullable=False, index=True),
    # 32 since version 4 (``waiting_for_labels``); 16 before.
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40), nullable=False),
    sa.Column("result_json", sa.Text, nullable=False),
)

#: Drift hysteresis state, one row per pipeline.
drift_state_table = sa.Table(
    "automl_drift_state",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

#: The promotion log: append-only registry decisions and alias moves (intent, then outcome).
promotions_table = sa.Table(
    "automl_promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(64), nullable=False, index=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("intent_id", sa.Integer, nullable=True),
    sa.Column("from_version", sa.String(32), nullable=True),
    sa.Column("to_version", sa.String(32), nullable=True),
    sa.Column("metric", sa.String(32), nullable=True),
    sa.Column("challenger_score", sa.Float, nullable=True),
    sa.Column("champion_score", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("cycle_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("details_json", sa.Text, nullable=True),
)

#: A challenger scored beside the champion on new batches (shadow mode), one row per pipeline.
shadow_table = sa.Table(
    "automl_shadow",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

#: Late labels (version 3): every label file once per pipeline, by content hash (as batches).
label_files_table = sa.Table(
    "automl_label_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(64), nullable=False, index=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("file_name", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("n_rows", sa.Integer, nullable=False, default=0),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("summary_json", sa.Text, nullable=True),
    sa.UniqueConstraint("pipeline", "sha256", name="uq_automl_label_files_pipeline_sha"),
)

#: Late labels (version 3): every row of a pipeline with an id column, once by id, with its
#: label once it is known. Times are seconds since the epoch (label lag is a difference).
rows_table = sa.Table(
    "automl_rows",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("row_id", sa.String(256), primary_key=True),
    sa.Column("batch_id", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("arrived_s", sa.Float, nullable=False),
    sa.Column("label_json", sa.Text, nullable=True),
    sa.Column("labelled_s", sa.Float, nullable=True),
    sa.Column("label_source", sa.String(512), nullable=True),
    sa.Index("ix_automl_rows_pipeline_batch", "pipeline", "batch_id"),
)

#: Late labels (version 3): labels that did not simply join a row: waiting for their row
#: (``waiting``, then ``joined`` or ``expired``) or refused because the row had another
#: label (``conflict``).
label_events_table = sa.Table(
    "automl_label_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(64), nullable=False),
    sa.Column("row_id", sa.String(256), nullable=False),
    sa.Column("label_json", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("received_s", sa.Float, nullable=False),
    sa.Column("resolved_s", sa.Float, nullable=True),
    sa.Index("ix_automl_label_events_pipeline_status", "pipeline", "status"),
    sa.Index("ix_automl_label_events_pipeline_row", "pipeline", "row_id"),
)

#: Late labels (version 4): the label-free performance estimate of each drift check, and the
#: realized metric once the checked rows' labels arrived (times in seconds since the epoch).
estimates_table = sa.Table(
    "automl_estimates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(64), nullable=False),
    sa.Column("cycle_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("champion_version", sa.String(32), nullable=False),
    sa.Column("batch_ids", sa.Text, nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("estimate", sa.Float, nullable=False),
    sa.Column("reference_value", sa.Float, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("checked_s", sa.Float, nullable=False),
    sa.Column("realized", sa.Float, nullable=True),
    sa.Column("n_labelled", sa.Integer, nullable=True),
    sa.Column("realized_s", sa.Float, nullable=True),
    sa.Index("ix_automl_estimates_pipeline_realized", "pipeline", "realized_s"),
)

#: Late labels (version 4): per pipeline, whether labels have stopped arriving and whether the
#: ``labels_late`` webhook went out for this outage.
label_watch_table = sa.Table(
    "automl_label_watch",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

#: The layout version of the database: one row (``id`` 1).
schema_version_table = sa.Table(
    "automl_schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)

#: The tables of version 1: finding any of them without a version row means version 0.
_V1_TABLES = frozenset(
    {"automl_batches", "automl_schemas", "automl_cycles", "automl_drift_state", "automl_promotions"}
)

# -- migrations --------------------------------------------------------------------------------
#: Brings the database one version up, inside the opening transaction.
Migration = Callable[[sa.Connection], None]


def _to_v1(conn: sa.Connection) -> None:
    """Version 0 -> 1: record the version; the layout is unchanged.

    Version 1 is the layout of the databases written before versions existed. Such a database
    may lack some tables (each store created its own on first use); ``create_all`` adds them.
    """


def _to_v2(conn: sa.Connection) -> None:
    """Version 1 -> 2: the shadow-mode table ``automl_shadow`` (``create_all`` adds it)."""


#: The tables version 3 added.
_V3_TABLES = (label_files_table, rows_table, label_events_table)


def _to_v3(conn: sa.Connection) -> None:
    """Version 2 -> 3: the late-label tables (label files, rows with their labels, events).

    Created here rather than left to ``create_all`` so that the version number says the tables
    are there; ``checkfirst`` keeps it harmless on a database that already has them.
    """
    for table in _V3_TABLES:
        table.create(conn, checkfirst=True)


#: The tables version 4 added.
_V4_TABLES = (estimates_table, label_watch_table)


def _to_v4(conn: sa.Connection) -> None:
    """Version 3 -> 4: the performance estimates of drift checks and the label watch (the
    ``labels_late`` alert's state); a cycle's status takes up to 32 characters
    (``waiting_for_labels``).

    SQLite does not enforce a ``VARCHAR`` length, so only PostgreSQL's column is widened.
    """
    for table in _V4_TABLES:
        table.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE automl_cycles ALTER COLUMN status TYPE VARCHAR(32)")


#: ``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``; append one function per new version.
MIGRATIONS: tuple[Migration, ...] = (_to_v1, _to_v2, _to_v3, _to_v4)
#: The layout this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)


def insert_once(engine: sa.Engine, table: sa.Table, values: dict[str, Any]) -> None:
    """Insert a row unless its unique key is taken: the first record wins (also when a
    concurrent writer got there first), so recording the same thing twice is harmless."""
    try:
        with engine.begin() as conn:
            conn.execute(table.insert().values(values))
    except sa.exc.IntegrityError:
        pass  # recorded before or concurrently: keep the first record


def save_pipeline_row(
    engine: sa.Engine, table: sa.Table, pipeline: str, values: dict[str, Any]
) -> None:
    """Insert or replace the one row of ``pipeline`` in a table keyed by pipeline."""
    with engine.begin() as conn:
        updated = conn.execute(table.update().where(table.c.pipeline == pipeline).values(values))
        if updated.rowcount == 0:
            conn.execute(table.insert().values(pipeline=pipeline, **values))


def load_pipeline_value(engine: sa.Engine, column: sa.Column[Any], pipeline: str) -> Any:
    """One column of ``pipeline``'s row in a table keyed by pipeline, or None."""
    table = column.table
    with engine.connect() as conn:
        row = conn.execute(sa.select(column).where(table.c.pipeline == pipeline)).first()
    return row[0] if row else None


# -- opening -----------------------------------------------------------------------------------
_opened: set[str] = set()
_open_lock = threading.Lock()


def _schema_lock_key() -> int:
    """Advisory-lock key of the check-and-upgrade (apart from the pipeline locks' keys)."""
    digest = hashlib.sha256(b"automl.state:schema").digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _read_version(conn: sa.Connection, *, current: int) -> int:
    """The version recorded, 0 for automl's tables without one, ``current`` for a new database."""
    names = set(sa.inspect(conn).get_table_names())
    if schema_version_table.name in names:
        found = conn.execute(sa.select(schema_version_table.c.version)).scalar()
        if found is not None:
            return int(found)
    return 0 if names & _V1_TABLES else current


def _upgrade(engine: sa.Engine, migrations: Sequence[Migration]) -> None:
    """Create missing tables and apply pending migrations in one locked transaction."""
    current = len(migrations)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _schema_lock_key()})
        found = _read_version(conn, current=current)
        if found > current:
            where = engine.url.render_as_string(hide_password=True)
            raise StateError(
                f"the state database {where} has schema version {found}, but this automl "
                f"knows versions up to {current}: a newer automl has upgraded it; upgrade "
                "automl on this host to that release or later, or point state_db elsewhere"
            )
        for version in range(found, current):
            log.info("state database: upgrading schema version %d -> %d", version, version + 1)
            migrations[version](conn)
        metadata.create_all(conn)
        recorded = conn.execute(sa.select(schema_version_table.c.version)).scalar()
        if recorded != current:
            conn.execute(schema_version_table.delete())
            conn.execute(schema_version_table.insert().values(id=1, version=current))
        conn.commit()


def open_state(url: str) -> sa.Engine:
    """Return the engine of the state database at ``url``, its tables current.

    The first call per URL in a process creates missing tables and applies pending migrations
    in one transaction under a database lock, so processes opening one new database at once
    all succeed; later calls return the engine at once.

    Args:
        url: SQLAlchemy URL (``sqlite:///path``, ``sqlite://`` in memory, ``postgresql+...``).

    Returns:
        The process-wide engine of ``url`` (as :func:`get_engine`).

    Raises:
        StateError: The database has a newer schema version than this code knows.

    Example:
        >>> engine = open_state("sqlite://")
        >>> schema_version(engine) == SCHEMA_VERSION
        True
    """
    engine = get_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        # An in-memory database is one per thread (SingletonThreadPool): open each one.
        _upgrade(engine, MIGRATIONS)
        return engine
    with _open_lock:
        if url not in _opened:
            _upgrade(engine, MIGRATIONS)
            _opened.add(url)
    return engine


def schema_version(engine: sa.Engine) -> int | None:
    """The version recorded in the database, or None when it has no version row."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(schema_version_table.name):
            return None
        found = conn.execute(sa.select(schema_version_table.c.version)).scalar()
    return None if found is None else int(found)
