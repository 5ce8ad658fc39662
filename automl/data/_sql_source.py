"""A SQL table or query as a data source: new rows read exactly once, in watermark order.

Each pass reads the rows after the pipeline's watermark, in order, at most ``max_rows`` of
them, as one batch: the rows are written as Parquet bytes, hashed and validated as a landed
file is (:mod:`automl.data._delivery`).

Watermarks:
    ``watermark_id`` alone: rows with an id above the last one read (``id > :last``). The id
    must grow in commit order (an identity column written by one writer); rows whose ids were
    taken earlier but committed after a later id was read are missed, so with several writers
    use a timestamp watermark.

    ``watermark_time`` + ``watermark_id``: rows in order of (time, id). Each pass starts
    ``lookback_s`` before the last time read, so a row committed late with a time inside a
    range already read is still found; every row read inside that window is remembered by id
    (``automl_source_reads``), so it is read once and only once. A row committed more than
    ``lookback_s`` after its time is missed: set ``lookback_s`` above the longest transaction
    of the writers.

Exactly once:
    Before its batch is recorded, a read is noted as pending (its batch's content hash and the
    watermark it reaches), together with the ids it read, in one transaction. The batch is
    then recorded in the ledger, and the watermark moves. A restart with a pending read
    finishes it when the ledger holds its batch and forgets it otherwise (its rows are read
    again). A read that fails, after retries for transient errors, leaves nothing marked read.

Columns:
    The watermark columns are not features: they are dropped from the batch unless they are
    the pipeline's ``data.id_column`` or ``data.time_column`` (kept, never features) or the
    target. Numeric columns a driver returns as ``Decimal`` are read as floats.
"""

from __future__ import annotations

import decimal
import io
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from automl.config import SqlSource
from automl.data._delivery import (
    Delivery,
    LabelDeliverer,
    Outcome,
    ingest_batch_delivery,
    make_ingester,
)
from automl.data._ingest import IngestResult, RejectedFile
from automl.data._io import write_table
from automl.data._label_files import LabelIngestResult
from automl.data._labels import LabelPolicy, LabelStore
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger
from automl.data._retry import call_with_retries
from automl.data._schema import ValidationRules
from automl.errors import ConfigError, DataSourceError
from automl.state import (
    open_state,
    source_reads_table,
    source_watermarks_table,
    utcnow,
)
from automl.vocab import Task

log = logging.getLogger(__name__)

Stream = Literal["batches", "labels"]

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()

#: Words in a driver's error that retrying cannot fix.
_PERMANENT = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "does not exist",
    "permission denied",
    "access denied",
    "unknown database",
    "no such table",
    "no such column",
    "syntax error",
)


def explain_sql_error(exc: BaseException) -> str | None:
    """The message of a SQL failure retrying cannot fix, or None (transient)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if isinstance(exc, sa.exc.ProgrammingError | sa.exc.NoSuchModuleError | sa.exc.ArgumentError):
        return f"{first}; check the source's table, query and watermark columns"
    if any(word in first.lower() for word in _PERMANENT):
        return (
            f"{first}; check the source's URL, the table and the credentials in the "
            "environment (PGPASSWORD or ~/.pgpass, or the URL in url_env)"
        )
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.DisconnectionError):
        return None
    if isinstance(exc, ConnectionError | TimeoutError | sa.exc.TimeoutError):
        return None
    return f"{type(exc).__name__}: {first}"


def _source_url(source: SqlSource) -> str:
    if source.url is not None:
        return source.url
    assert source.url_env is not None
    url = os.environ.get(source.url_env)
    if not url:
        raise DataSourceError(
            f"data.source.url_env: the environment variable {source.url_env} is not set; set "
            "it to the SQLAlchemy URL of the source database"
        )
    return url


def _engine(url: str) -> sa.Engine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            options: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("postgresql"):
                options["connect_args"] = {"connect_timeout": 10}
            try:
                engine = sa.create_engine(url, **options)
            except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
                raise ConfigError(f"data.source: cannot use the SQL URL: {exc}") from exc
            _engines[url] = engine
        return engine


# -- watermark values ----------------------------------------------------------------------
def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, pd.Timestamp):
        return {"datetime": value.to_pydatetime().isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if hasattr(value, "item"):
        return value.item()
    return value


def _load(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        if "date" in value:
            return date.fromisoformat(value["date"])
        if "decimal" in value:
            return decimal.Decimal(value["decimal"])
    return value


def _seconds(value: Any) -> float:
    """A watermark time as seconds since the epoch (naive datetimes taken as UTC)."""
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


def _plain(value: Any) -> Any:
    """A value from a frame as the driver takes it (no numpy or pandas scalars)."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def _minus(value: Any, seconds: float) -> Any:
    if isinstance(value, datetime | date | pd.Timestamp):
        return value - timedelta(seconds=seconds)
    if isinstance(value, str):
        # Timestamps stored as text (SQLite): the same ISO form, so text order is time order.
        earlier = datetime.fromisoformat(value) - timedelta(seconds=seconds)
        return earlier.isoformat(sep="T" if "T" in value else " ")
    return value - type(value)(seconds) if isinstance(value, decimal.Decimal) else value - seconds


@dataclass
class _State:
    time: Any = None
    id: Any = None
    pending: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps({"time": _dump(self.time), "id": _dump(self.id), "pending": self.pending})

    @classmethod
    def from_json(cls, text: str | None) -> _State:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(_load(raw.get("time")), _load(raw.get("id")), raw.get("pending"))


class Watermarks:
    """A pipeline's SQL watermark, its pending read and the rows read inside the window."""

    def __init__(self, url: str, pipeline: str, stream: Stream) -> None:
        self._engine = open_state(url)
        self.pipeline = pipeline
        self.stream = stream

    def load(self) -> _State:
        """The state (empty before the first read)."""
        t = source_watermarks_table
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.state_json).where(
                    t.c.pipeline == self.pipeline, t.c.stream == self.stream
                )
            ).first()
        return _State.from_json(row[0] if row else None)

    def _save(self, conn: sa.Connection, state: _State) -> None:
        t = source_watermarks_table
        where = (t.c.pipeline == self.pipeline) & (t.c.stream == self.stream)
        values = {"state_json": state.to_json(), "updated_at": utcnow()}
        if not conn.execute(t.update().where(where).values(values)).rowcount:
            conn.execute(t.insert().values(pipeline=self.pipeline, stream=self.stream, **values))

    def read_ids(self, since_s: float) -> set[str]:
        """Ids of the rows read with a time at or after ``since_s``."""
        t = source_reads_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.row_key).where(
                    t.c.pipeline == self.pipeline, t.c.stream == self.stream, t.c.time_s >= since_s
                )
            )
            return {str(r[0]) for r in rows}

    def begin(
        self, state: _State, sha: str, reach: _State, reads: Sequence[tuple[str, float]]
    ) -> None:
        """Note a read as pending, with the ids it read, in one transaction."""
        state.pending = {"sha256": sha, "time": _dump(reach.time), "id": _dump(reach.id)}
        t = source_reads_table
        with self._engine.begin() as conn:
            self._save(conn, state)
            if reads:
                conn.execute(
                    t.insert(),
                    [
                        {
                            "pipeline": self.pipeline,
                            "stream": self.stream,
                            "row_key": key,
                            "time_s": at,
                            "batch_sha256": sha,
                        }
                        for key, at in reads
                    ],
                )

    def finish(self, state: _State, *, lookback_s: float | None) -> _State:
        """Move the watermark to the pending read's end; forget reads left of the window."""
        assert state.pending is not None
        done = _State(_load(state.pending["time"]), _load(state.pending["id"]))
        t = source_reads_table
        with self._engine.begin() as conn:
            self._save(conn, done)
            if lookback_s is not None and done.time is not None:
                conn.execute(
                    t.delete().where(
                        t.c.pipeline == self.pipeline,
                        t.c.stream == self.stream,
                        t.c.time_s < _seconds(done.time) - lookback_s,
                    )
                )
        return done

    def forget(self, state: _State) -> _State:
        """Drop a pending read (its batch was never recorded): its rows are read again."""
        assert state.pending is not None
        sha = state.pending["sha256"]
        kept = _State(state.time, state.id)
        t = source_reads_table
        with self._engine.begin() as conn:
            self._save(conn, kept)
            conn.execute(
                t.delete().where(
                    t.c.pipeline == self.pipeline,
                    t.c.stream == self.stream,
                    t.c.batch_sha256 == sha,
                )
            )
        return kept


# -- reading -------------------------------------------------------------------------------
class SqlReader:
    """Reads the rows after a watermark from the source's table or query."""

    def __init__(self, source: SqlSource) -> None:
        self.source = source
        self.engine = _engine(_source_url(source))
        quote = self.engine.dialect.identifier_preparer.quote
        if source.table is not None:
            relation = ".".join(quote(part) for part in source.table.split("."))
            self.what = f"table {source.table}"
        else:
            assert source.query is not None
            relation = f"({source.query.strip().rstrip(';')}) automl_source"
            self.what = "query"
        self.relation = relation
        self.id_col = quote(source.watermark_id)
        self.time_col = quote(source.watermark_time) if source.watermark_time else None

    def _page(self, after: tuple[Any, Any] | None, low: Any, limit: int) -> pd.DataFrame:
        """One page of rows in watermark order, after ``after`` (keyset) or from ``low``."""
        params: dict[str, Any] = {"n": limit}
        if self.time_col is None:
            where = "" if after is None else f"WHERE {self.id_col} > :i"
            if after is not None:
                params["i"] = after[1]
            order = self.id_col
        else:
            order = f"{self.time_col}, {self.id_col}"
            if after is not None:
                where = (
                    f"WHERE ({self.time_col} > :t OR ({self.time_col} = :t AND {self.id_col} > :i))"
                )
                params.update(t=after[0], i=after[1])
            elif low is not None:
                where = f"WHERE {self.time_col} >= :low"
                params["low"] = low
            else:
                where = ""
        sql = sa.text(f"SELECT * FROM {self.relation} {where} ORDER BY {order} LIMIT :n")

        def query() -> pd.DataFrame:
            with self.engine.connect() as conn:
                result = conn.execute(sql, params)
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

        frame: pd.DataFrame = call_with_retries(
            query,
            what=f"reading {self.what}",
            attempts=self.source.retries,
            explain=explain_sql_error,
        )
        return frame

    def read(
        self, state: _State, known: set[str]
    ) -> tuple[pd.DataFrame, _State, list[tuple[str, float]]]:
        """New rows after the watermark (at most ``max_rows``), where they reach, their ids.

        With a time watermark the read starts ``lookback_s`` before it and leaves out the ids
        in ``known`` (read before inside the window).
        """
        source = self.source
        wm_time, wm_id = source.watermark_time, source.watermark_id
        page_rows = min(source.max_rows, 10_000)
        after: tuple[Any, Any] | None = None
        low = None
        if self.time_col is None:
            after = None if state.id is None else (None, state.id)
        elif state.time is not None:
            low = _minus(state.time, source.lookback_s)
        frames: list[pd.DataFrame] = []
        reach = _State(state.time, state.id)
        n_new = 0
        while n_new < source.max_rows:
            page = self._page(after, low, page_rows)
            if page.empty:
                break
            for column in (wm_id, *([wm_time] if wm_time else [])):
                if column not in page.columns:
                    raise DataSourceError(
                        f"reading {self.what}: no column {column!r} (the source's watermark); "
                        f"its columns are {list(page.columns)}"
                    )
            last = page.iloc[-1]
            after = (_plain(last[wm_time]) if wm_time else None, _plain(last[wm_id]))
            fresh = page[~page[wm_id].astype(str).isin(known)] if wm_time else page
            fresh = fresh.iloc[: source.max_rows - n_new]
            if len(fresh):
                frames.append(fresh)
                n_new += len(fresh)
                tail = fresh.iloc[-1]
                candidate = (_plain(tail[wm_time]) if wm_time else None, _plain(tail[wm_id]))
                if (
                    wm_time is None
                    or reach.time is None
                    or _seconds(candidate[0]) >= _seconds(reach.time)
                ):
                    reach = _State(candidate[0], candidate[1])
            if len(page) < page_rows:
                break
        if not frames:
            return pd.DataFrame(), reach, []
        rows = pd.concat(frames, ignore_index=True)
        reads = (
            [(str(i), _seconds(t)) for i, t in zip(rows[wm_id], rows[wm_time], strict=True)]
            if wm_time
            else []
        )
        return rows, reach, reads


def _tidy(rows: pd.DataFrame, source: SqlSource, keep: Sequence[str]) -> pd.DataFrame:
    """Drop the watermark columns (unless kept) and read Decimal columns as floats."""
    drop = [
        c
        for c in (source.watermark_id, source.watermark_time)
        if c is not None and c not in keep and c in rows.columns
    ]
    frame = rows.drop(columns=drop)
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            present = values.dropna()
            if len(present) and all(isinstance(v, decimal.Decimal) for v in present):
                frame[column] = values.astype("float64")
    return frame.reset_index(drop=True)


def _as_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _name(source: SqlSource, rows: pd.DataFrame) -> str:
    what = source.table or "query"
    ids = rows[source.watermark_id]
    return f"sql:{what}[{source.watermark_id} {ids.iloc[0]}..{ids.iloc[-1]}, {len(rows)} rows]"


def _settle_pending(marks: Watermarks, state: _State, is_recorded: Any) -> _State:
    if state.pending is None:
        return state
    sha = state.pending["sha256"]
    if is_recorded(sha):
        log.info("[%s] a read recorded before a restart: its watermark moves", marks.pipeline)
        return marks.finish(state, lookback_s=None)
    log.info("[%s] a read never recorded before a restart: reading its rows again", marks.pipeline)
    return marks.forget(state)


def _read_once(
    source: SqlSource,
    marks: Watermarks,
    keep: Sequence[str],
    is_recorded: Any,
    record: Any,
) -> tuple[Outcome | None, str | None]:
    """Read new rows, record them through ``record(delivery)``, then move the watermark."""
    state = _settle_pending(marks, marks.load(), is_recorded)
    reader = SqlReader(source)
    known: set[str] = set()
    if source.watermark_time is not None and state.time is not None:
        known = marks.read_ids(_seconds(state.time) - source.lookback_s)
    rows, reach, reads = reader.read(state, known)
    if rows.empty:
        return None, None
    name = _name(source, rows)
    frame = _tidy(rows, source, keep)
    data = _as_bytes(frame)
    delivery = Delivery(name, data, frame)
    marks.begin(state, delivery.sha256, reach, reads)
    try:
        outcome: Outcome = record(delivery)
    except BaseException:
        marks.forget(state)
        raise
    marks.finish(state, lookback_s=source.lookback_s if source.watermark_time else None)
    return outcome, name


def _quarantine_rows(paths: PipelinePaths, frame: pd.DataFrame, sha: str, labels: bool) -> Any:
    folder = paths.label_quarantine if labels else paths.quarantine

    def aside(code: str, reason: str) -> str:
        dest = folder / f"sql_{sha[:12]}.parquet"
        write_table(frame, dest)
        dest.with_name(dest.name + ".reason.txt").write_text(
            f"sha256: {sha}\nreason_code: {code}\nreason: {reason}\n", encoding="utf-8"
        )
        return str(dest)

    return aside


def ingest_sql(
    *,
    pipeline: str,
    source: SqlSource,
    paths: PipelinePaths,
    ledger: BatchLedger,
    target: str,
    task: Task,
    rules: ValidationRules | None = None,
    labels: LabelPolicy | None = None,
    keep: Sequence[str] = (),
    now: float | None = None,
) -> IngestResult:
    """Read the rows after the watermark once, as one batch; store or reject it.

    A rejected batch's rows are written to the workspace's quarantine folder as Parquet with
    a ``.reason.txt``; the watermark moves past them either way (they were read).

    Args:
        pipeline: Pipeline name.
        source: The spec's ``data.source`` (kind ``sql``).
        paths: The pipeline's workspace folders.
        ledger: The workspace ledger.
        target: Label column.
        task: ``classification`` or ``regression``.
        rules: Validation options (default: :class:`ValidationRules`).
        labels: The late-label policy, as for :func:`~automl.data.ingest_landing`.
        keep: Columns kept even if they are watermark columns (``data.id_column``, ...).
        now: Arrival time recorded for the rows (late labels), seconds since the epoch.

    Returns:
        The accepted batch or the rejected one (at most one per pass).

    Raises:
        DataSourceError: The source could not be read (after retries for transient errors):
            nothing is marked read.
    """
    marks = Watermarks(ledger.url, pipeline, "batches")
    ingester = make_ingester(
        pipeline=pipeline,
        paths=paths,
        ledger=ledger,
        target=target,
        task=task,
        rules=rules or ValidationRules(),
        labels=labels,
        now=time.time() if now is None else now,
    )

    def record(delivery: Delivery) -> Outcome:
        assert delivery.frame is not None
        aside = _quarantine_rows(paths, delivery.frame, delivery.sha256, labels=False)
        return ingest_batch_delivery(ingester, delivery, quarantine=aside)

    outcome, name = _read_once(
        source,
        marks,
        (*keep, target),
        lambda sha: ledger.get(pipeline, sha) is not None,
        record,
    )
    if outcome is None:
        return IngestResult((), (), ())
    if outcome.status == "duplicate":
        log.warning("%s", outcome.reason)
        return IngestResult((), (), (str(name),))
    accepted = (outcome.accepted,) if outcome.accepted is not None else ()
    rejected: tuple[RejectedFile, ...] = (outcome.rejected,) if outcome.rejected is not None else ()
    return IngestResult(accepted, rejected, ())


def ingest_sql_labels(
    *,
    pipeline: str,
    source: SqlSource,
    paths: PipelinePaths,
    ledger: BatchLedger,
    policy: LabelPolicy,
    target: str,
    rules: ValidationRules | None = None,
    now: float | None = None,
) -> LabelIngestResult:
    """Read the label rows after the labels' watermark once and join them to their rows.

    The rows must hold the id column and the target (watermark columns are dropped unless
    they are one of those). Until the first batch is accepted, nothing is read.

    Raises:
        DataSourceError: As :func:`ingest_sql`.
    """
    now = time.time() if now is None else now
    schema = ledger.get_schema(pipeline)
    if schema is None:
        return LabelIngestResult((), (), ())
    store = LabelStore(ledger.url)
    deliverer = LabelDeliverer(
        pipeline, paths, store, schema, policy, rules or ValidationRules(), now
    )
    counts = deliverer.expire_waiting()
    marks = Watermarks(ledger.url, pipeline, "labels")

    def record(delivery: Delivery) -> Outcome:
        assert delivery.frame is not None
        aside = _quarantine_rows(paths, delivery.frame, delivery.sha256, labels=True)
        return deliverer.ingest(delivery, quarantine=aside)

    outcome, name = _read_once(
        source,
        marks,
        (policy.id_column, target),
        lambda sha: store.label_file(pipeline, sha) is not None,
        record,
    )
    if outcome is None:
        return LabelIngestResult((), (), (), (), (), counts)
    counts = counts + outcome.counts
    return LabelIngestResult(
        (outcome.label_file,) if outcome.label_file is not None else (),
        (outcome.rejected,) if outcome.rejected is not None else (),
        (str(name),) if outcome.status == "duplicate" else (),
        (),
        (),
        counts,
    )
