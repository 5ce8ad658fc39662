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


@command(exits_at_once=True)
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


@command(exits_at_once=True)
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


@command(exits_at_once=True)
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
    # Few, narrow columns (the reason wraps): readable in an 80-column terminal.
    table = Table(title=f"promotion log of {spec.name} ({spec.model_name})")
    table.add_column("#", no_wrap=True)
    table.add_column("time (UTC)", min_width=10)
    table.add_column("move", no_wrap=True)
    table.add_column("scores", no_wrap=True)
    table.add_column("by", overflow="fold")
    table.add_column("reason", overflow="fold", ratio=1, min_width=16)
    for e in entries:
        when = e.created_at.replace("T", " ")[:19].replace(" ", "\n", 1)
        move = f"{e.action}\n{e.status}"
        versions = " -> ".join(f"v{v}" if v else "-" for v in (e.from_version, e.to_version))
        scores = "-" if e.challenger_score is None else f"{e.challenger_score:.4f}"
        if e.champion_score is not None:
            scores += f"\nvs {e.champion_score:.4f}"
        table.add_row(str(e.id), when, f"{move}\n{versions}", scores, e.actor, e.reason or "")
    console.print(table)


@command(exits_at_once=True)
def predict(
    pipeline: Pipeline,
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to score.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here (.csv or .parquet); default stdout.")
    ] = None,
) -> None:
    """Score a file with the @champion model; add class probabilities for classification."""
    from automl.data import coerce_features, read_table, write_table
    from automl.data._ledger import BatchLedger
    from automl.service._champion import champion_model, serving_champion
    from automl.tracking import predict_frame

    spec = load_spec(pipeline)
    if not data.is_file():
        raise AutomlError(f"{data}: file not found (expected a CSV or Parquet file to score)")
    champion = serving_champion(spec)
    if champion is None:
        raise AutomlError(f"model {spec.model_name!r} has no @champion yet; run a cycle first")
    schema = BatchLedger(spec.state_url).get_schema(spec.name)
    if schema is None:
        raise AutomlError(f"pipeline {spec.name!r} has no schema yet; run a cycle first")
    frame = read_table(data)
    features = coerce_features(frame, schema, source=str(data))
    try:
        raw = champion_model(spec, champion.version)
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
