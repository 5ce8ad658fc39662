"""One actor per pipeline: a lock held for the whole cycle, released on exit or death.

With a PostgreSQL state database the lock is a session-level advisory lock on a dedicated
connection: PostgreSQL drops it when the holder's connection ends, including when the process
is killed (TCP keepalives bound how long a vanished host keeps it). With SQLite (one machine)
it is an exclusive ``flock`` on a file in the workspace, which the kernel drops when the
process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from automl.config import PipelineSpec
from automl.state import get_engine

log = logging.getLogger(__name__)


def lock_key(pipeline: str) -> int:
    """A stable signed 64-bit advisory-lock key for a pipeline name."""
    digest = hashlib.sha256(f"automl:{pipeline}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _postgres_lock(url: str, pipeline: str) -> Iterator[bool]:
    engine = get_engine(url)
    with engine.connect() as conn:
        key = lock_key(pipeline)
        acquired = bool(
            conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        )
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def pipeline_lock(spec: PipelineSpec) -> Iterator[bool]:
    """Try to become the one actor of ``spec``'s pipeline; yields whether it succeeded.

    Never blocks: a cycle that does not get the lock is skipped (another instance runs it).

    Example:
        >>> import tempfile
        >>> spec = PipelineSpec.model_validate(
        ...     {"name": "p", "data": {"landing_dir": "l", "target": "y"}}
        ... ).with_base_dir(Path(tempfile.mkdtemp()))
        >>> with pipeline_lock(spec) as first, pipeline_lock(spec) as second:
        ...     first, second
        (True, False)
    """
    if spec.state_url.startswith("postgresql"):
        with _postgres_lock(spec.state_url, spec.name) as acquired:
            yield acquired
    else:
        with _file_lock(spec.workspace_dir / "locks" / f"{spec.name}.lock") as acquired:
            yield acquired
