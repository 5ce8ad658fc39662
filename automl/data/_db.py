"""SQLAlchemy engines for the workspace state database (SQLite by default, PostgreSQL too)."""

from __future__ import annotations

import os
import threading
from typing import Any

import sqlalchemy as sa

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


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
    """Return a process-wide engine for ``url``, creating it (and SQLite's folder) once."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(url, connect_args={"timeout": 30})
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            elif url.startswith("sqlite"):  # in memory
                engine = sa.create_engine(url)
            else:
                engine = sa.create_engine(url, **_server_options(url))
            _engines[url] = engine
        return engine
