"""Optuna storages: one per server database and process, with a bounded pool."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from automl.errors import TuningError
from automl.tuning import close_storages, find_active_study, latest_study, open_storage
from automl.tuning._storage import MAX_OVERFLOW, POOL_SIZE, engine_kwargs, safe_url
from tests.conftest import fresh_postgres_database, run_at_once


def test_sqlite_storages_are_opened_afresh(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first, second = open_storage(url), open_storage(url)
    assert isinstance(first, optuna.storages.RDBStorage)
    assert first is not second  # nothing cached: no server connections to save
    assert open_storage(first) is first  # an opened storage passes through
    assert engine_kwargs(url) == {}


def test_server_options_bound_the_pool_and_name_the_process() -> None:
    options = engine_kwargs("postgresql+psycopg2://u@db/optuna")
    assert (options["pool_size"], options["max_overflow"]) == (POOL_SIZE, MAX_OVERFLOW)
    assert options["connect_args"] == {"application_name": f"automl:{os.getpid()}"}
    assert "connect_args" not in engine_kwargs("mysql+pymysql://u@db/optuna")


def test_an_unreachable_server_is_a_tuning_error_without_the_password() -> None:
    url = "postgresql+psycopg2://automl:s3cret@127.0.0.1:1/optuna?connect_timeout=2"
    with pytest.raises(TuningError, match="cannot open the Optuna storage") as caught:
        open_storage(url)
    assert "s3cret" not in str(caught.value)
    assert safe_url(url).startswith("postgresql+psycopg2://automl:***@127.0.0.1:1/")


def _connections(database: str) -> int:
    """Connections this process holds to ``database`` (automl names them automl:<pid>)."""
    engine = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test", poolclass=sa.pool.NullPool
    )
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :db AND application_name = :app"
                ),
                {"db": database, "app": f"automl:{os.getpid()}"},
            ).scalar_one()
        )


@pytest.mark.postgres
def test_polling_a_server_storage_holds_a_bounded_number_of_connections(
    postgres_url: str,
) -> None:
    """A worker polls for an active study every half second for hours: each poll once built
    a new engine whose idle connection outlived it, until PostgreSQL refused new clients."""
    with fresh_postgres_database("automl_storage") as url:
        database = url.rsplit("/", 1)[1]
        try:
            storage = open_storage(url)
            optuna.create_study(study_name="s1", storage=storage).set_user_attr(
                "automl.group", "churn"
            )
            for _ in range(40):
                assert find_active_study(url, group="churn") is None
                assert latest_study(url, group="churn") is None  # no finished trial
            assert open_storage(url) is storage
            assert 1 <= _connections(database) <= POOL_SIZE
            heartbeat = open_storage(url, heartbeat_s=5)
            assert heartbeat is not storage and heartbeat.get_heartbeat_interval() == 5
            assert open_storage(url, heartbeat_s=5) is heartbeat
        finally:
            close_storages()
        assert _connections(database) == 0
        assert open_storage(url) is not storage  # closed storages are opened anew
        close_storages()


_OPEN_ON_GO = """
import sys
from automl.tuning import open_storage
print("ready", flush=True)
sys.stdin.readline()
print(len(open_storage(sys.argv[1]).get_all_studies()), flush=True)
"""


@pytest.mark.postgres
def test_processes_opening_a_new_database_at_once_all_get_the_storage(
    postgres_url: str,
) -> None:
    """A service and its workers started together on an empty database race to create
    Optuna's tables (6 processes lost that race 19 times in 5 rounds before the retry); every
    one of them must come up, the losers finding the tables made."""
    with fresh_postgres_database("automl_race") as url:
        for _ in range(2):
            for code, out, err in run_at_once(_OPEN_ON_GO, url, 6):
                assert code == 0, err
                assert out.strip() == "0"
            _pg_drop_optuna_tables(url)


def _pg_drop_optuna_tables(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))


def test_fail_stale_trials_fails_the_trial_a_killed_process_left_running(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from automl.tuning import fail_stale_trials

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    script = (
        "import optuna, time\n"
        f"for name in ('churn-c1', 'churn-c10', 'other-c1'):\n"
        f"    optuna.create_study(study_name=name, storage={url!r}).ask()\n"
        "print('asked', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "asked"
        proc.send_signal(signal.SIGKILL)  # dies mid-trial: three trials stay RUNNING
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)

    def states(name: str) -> list[str]:
        study = optuna.load_study(study_name=name, storage=url)
        return [t.state.name for t in study.get_trials(deepcopy=False)]

    assert fail_stale_trials(url, study_name_prefix="churn-c1") == 2  # c1 and c10
    assert states("churn-c1") == states("churn-c10") == ["FAIL"]
    assert states("other-c1") == ["RUNNING"]
    assert fail_stale_trials(url, study_name_prefix="churn-c1") == 0  # nothing left
