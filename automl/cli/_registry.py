"""Registry commands: ``promote``, ``rollback``, ``history`` and ``predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from automl.cli._base import command, console
from automl.config import load_spec
from automl.errors import AutomlError

Pipeline = Annotated[Path, typer.Argument(help="Pipeline spec (.yaml).")]


@command
def promote(
    pipeline: Pipeline,
    version: Annotated[
        str | None, typer.Option("--version", help="Version to promote (default: @challenger).")
    ] = None,
) -> None:
    """Make the challenger (or --version N) the champion: the manual approval step."""
    from automl.service import promote_manually

    move = promote_manually(load_spec(pipeline), version=version)
    console.print(
        f"{move.model_name}: @champion is now v{move.to_version}"
        + (f" (v{move.from_version} is @previous-champion)" if move.from_version else "")
    )


@command
def rollback(
    pipeline: Pipeline,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Version to roll back to (default: @previous-champion)."),
    ] = None,
) -> None:
    """Move the champion back to the previous champion (or to --version N)."""
    from automl.service import rollback as do_rollback

    move = do_rollback(load_spec(pipeline), version=version)
    console.print(
        f"{move.model_name}: @champion rolled back from v{move.from_version} to v{move.to_version}"
    )


@command
def history(
    pipeline: Pipeline,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the promotion log: every decision and alias move, who made it and why."""
    from dataclasses import asdict

    from automl.tracking import PromotionLog

    spec = load_spec(pipeline)
    entries = PromotionLog(spec.state_url).entries(spec.name)
    if as_json:
        typer.echo(json.dumps([asdict(e) for e in entries]))
        return
    table = Table(title=f"promotion log of {spec.name} ({spec.model_name})")
    for col in ("#", "time", "action", "status", "from", "to", "challenger", "champion", "actor"):
        table.add_column(col, no_wrap=col != "time")
    table.add_column("reason")
    for e in entries:
        table.add_row(
            str(e.id),
            e.created_at,
            e.action,
            e.status,
            f"v{e.from_version}" if e.from_version else "-",
            f"v{e.to_version}" if e.to_version else "-",
            "-" if e.challenger_score is None else f"{e.challenger_score:.4f}",
            "-" if e.champion_score is None else f"{e.champion_score:.4f}",
            e.actor,
            e.reason or "",
        )
    console.print(table)


@command
def predict(
    pipeline: Pipeline,
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to score.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here (.csv or .parquet); default stdout.")
    ] = None,
) -> None:
    """Score a file with the @champion model; add class probabilities for classification."""
    from automl.data import BatchLedger, coerce_features, read_table, write_table
    from automl.service import make_tracker
    from automl.tracking import CHAMPION, predict_frame

    spec = load_spec(pipeline)
    frame = read_table(data)
    tracker = make_tracker(spec)
    champion = tracker.get_alias(spec.model_name, CHAMPION)
    if champion is None:
        raise AutomlError(f"model {spec.model_name!r} has no @champion yet; run a cycle first")
    schema = BatchLedger(spec.state_url).get_schema(spec.name)
    if schema is None:
        raise AutomlError(f"pipeline {spec.name!r} has no schema yet; run a cycle first")
    features = coerce_features(frame, schema, source=str(data))
    model, _ = tracker.load_pyfunc(champion.uri)
    try:
        raw = model.get_raw_model()
        with_proba = spec.data.task == "classification" and hasattr(raw, "predict_proba")
        scored = predict_frame(raw, features, with_proba=with_proba)
        out_frame = frame.copy()
        out_frame[list(scored.columns)] = scored
    except AutomlError:
        raise
    except Exception as exc:
        raise AutomlError(f"{data}: v{champion.version} could not score the file: {exc}") from exc
    if out is None:
        typer.echo(out_frame.to_csv(index=False), nl=False)
        return
    write_table(out_frame, out)
    console.print(f"wrote {len(out_frame)} predictions of v{champion.version} to {out}")
