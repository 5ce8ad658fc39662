"""Optuna storages: one per database server and process, with a small connection pool.

``optuna.load_study(storage="postgresql://...")`` builds a new ``RDBStorage`` — a new SQLAlchemy
engine with its own pool of up to 15 connections — on every call, and nothing disposes it. A
worker that polls for an active study every half second, or a service that tunes several
pipelines, would hold a growing number of idle connections until PostgreSQL refuses new clients
("sorry, too many clients already", at 100 by default). Here each process opens one storage per
server URL (and heartbeat setting) and reuses it; its pool is small, because a process talks to
the database from one thread plus Optuna's heartbeat thread at a time.

SQLite files are opened afresh each time, as Optuna does: they hold no server connections and a
test suite creates thousands of them.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any

from automl.errors import TuningError

#: URL schemes of databases that many hosts can share (SQLite files cannot be).
SERVER_SCHEMES = ("postgresql", "mysql")

#: Connection pool of a server storage: a process uses one connection at a time per thread
#: (its sampler/objective thread, the heartbeat thread of a running trial, a service's other
#: pipeline threads); idle ones beyond ``pool_size`` are closed, not kept.
POOL_SIZE = 1
MAX_OVERFLOW = 4
#: Seconds after which a pooled connection is replaced (firewalls and proxies drop idle ones).
POOL_RECYCLE_S = 1800
#: How many times a trial lost with its worker (no heartbeat for ``grace_s``) is re-queued.
MAX_RETRY = 3

#: Attempts to open a storage while other processes create its tables.
CREATE_ATTEMPTS = 5

log = logging.getLogger(__name__)

_storages: dict[tuple[str, int | None, int | None], Any] = {}
_lock = threading.Lock()


def is_server_storage(url: str) -> bool:
    """Whether an Optuna storage URL names a database server many hosts can share.

    Example:
        >>> is_server_storage("postgresql+psycopg2://u@db/optuna"), is_server_storage("sqlite:///x")
        (True, False)
    """
    return url.split(":", 1)[0].split("+", 1)[0] in SERVER_SCHEMES


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for an Optuna storage at ``url`` (a bounded pool on servers).

    Example:
        >>> engine_kwargs("sqlite:///optuna.db")
        {}
        >>> engine_kwargs("postgresql+psycopg2://u@db/optuna")["pool_size"]
        1
    """
    if not is_server_storage(url):
        return {}
    kwargs: dict[str, Any] = {
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE_S,
    }
    if url.startswith("postgresql"):
        # In pg_stat_activity, so an operator can tell which automl process holds what.
        kwargs["connect_args"] = {"application_name": f"automl:{os.getpid()}"}
    return kwargs


def open_storage(
    storage: Any, *, heartbeat_s: int | None = None, grace_s: int | None = None
) -> Any:
    """The Optuna storage for ``storage`` (a URL or an already opened storage).

    A server URL gives the same ``RDBStorage`` on every call in this process (per heartbeat
    setting); a SQLite URL a new one; a storage object is returned as it is.

    Args:
        storage: Optuna storage URL, or a storage object.
        heartbeat_s: Heartbeat interval of running trials (None: no heartbeat).
        grace_s: Seconds without a heartbeat after which a running trial is failed and
            retried (None: Optuna's default, twice the heartbeat).

    Raises:
        TuningError: The database cannot be opened.
    """
    if not isinstance(storage, str):
        return storage
    key = (storage, heartbeat_s, grace_s)
    if not is_server_storage(storage):
        return _rdb_storage(storage, heartbeat_s, grace_s)
    with _lock:
        opened = _storages.get(key)
        if opened is None:
            opened = _storages[key] = _rdb_storage(storage, heartbeat_s, grace_s)
        return opened


def close_storages() -> None:
    """Close every server storage this process opened (their pooled connections too)."""
    with _lock:
        opened = list(_storages.values())
        _storages.clear()
    for storage in opened:
        storage.remove_session()
        storage.engine.dispose()


def _rdb_storage(url: str, heartbeat_s: int | None, grace_s: int | None) -> Any:
    import warnings

    import optuna

    heartbeat: dict[str, Any] = {}
    if heartbeat_s is not None:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        heartbeat = {
            "heartbeat_interval": heartbeat_s,
            "grace_period": grace_s,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
        }
    import sqlalchemy as sa

    for attempt in range(CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), **heartbeat)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError) as exc:
            # Processes that open a brand-new database at once (a service and its workers
            # started together) race to create Optuna's tables and version row: the losers
            # find them existing, and the next attempt reads them.
            if attempt + 1 == CREATE_ATTEMPTS:
                raise TuningError(
                    f"cannot create Optuna's tables in {safe_url(url)}: {exc}"
                ) from exc
            log.info("Optuna's tables in %s are being created by another process", safe_url(url))
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
        except Exception as exc:
            raise TuningError(
                f"cannot open the Optuna storage {safe_url(url)}: {exc}; check tuning.storage "
                "and that the database server is reachable"
            ) from exc
    raise AssertionError("unreachable")


def safe_url(url: str) -> str:
    """A URL without its password, for messages.

    Example:
        >>> safe_url("postgresql://automl:s3cret@db/optuna")
        'postgresql://automl:***@db/optuna'
    """
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def fail_stale_trials(
    storage: str,
    *,
    study_name_prefix: str,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
) -> int:
    """Mark FAIL the trials left RUNNING by a process that died, in studies named
    ``study_name_prefix...``; return how many.

    A process killed mid-trial (kill -9, OOM) leaves its trial RUNNING for ever: nothing else
    finishes it, and it would count as alive in reports and in a distributed budget. Call this
    only when no live process can be running those trials, e.g. for the study of a cycle whose
    MLflow run was found orphaned while holding the pipeline's lock. With ``heartbeat_s`` (a
    distributed study, where workers may still be finishing trials of it) only trials whose
    heartbeat stopped for ``grace_s`` are failed (Optuna's own rule); otherwise every RUNNING
    trial is.

    Args:
        storage: Optuna storage URL.
        study_name_prefix: Names of the studies to clean (a cycle's study is
            ``<pipeline>-<cycle id>``).
        heartbeat_s: The studies' heartbeat interval, when their trials heartbeat.
        grace_s: Seconds without a heartbeat after which a trial is stale (None: twice
            ``heartbeat_s``).

    Raises:
        TuningError: The storage cannot be read or written.
    """
    import optuna

    running = optuna.trial.TrialState.RUNNING
    try:
        store = open_storage(storage, heartbeat_s=heartbeat_s, grace_s=grace_s)
        failed = 0
        for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
            name = summary.study_name
            if not name.startswith(study_name_prefix):
                continue
            study = optuna.load_study(study_name=name, storage=store)
            before = {t.number for t in study.get_trials(deepcopy=False, states=(running,))}
            if heartbeat_s is not None:
                optuna.storages.fail_stale_trials(study)
            else:
                for trial in study.get_trials(deepcopy=False, states=(running,)):
                    store.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            after = {t.number for t in study.get_trials(deepcopy=False, states=(running,))}
            for number in sorted(before - after):
                log.warning("marked trial %d of study %s FAIL: its process stopped", number, name)
            failed += len(before - after)
    except TuningError:
        raise
    except Exception as exc:
        raise TuningError(
            f"cannot fail the stale trials of {study_name_prefix!r}* in {safe_url(storage)}: {exc}"
        ) from exc
    return failed
