"""``automl drift``: compare two files once and print the drift decision.

One-shot: no hysteresis state (``state`` is this check's level), no model (the weighted policy
uses the spec's fixed ``drift.weights`` or falls back to equal weights), no re-tune.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from automl.config import DriftSpec, load_spec


@dataclass(frozen=True)
class DriftOptions:
    """What ``automl drift`` was asked to do."""

    reference: Path
    current: Path
    pipeline: Path | None = None
    html: Path | None = None
    target: str | None = None


def check_files(options: DriftOptions) -> dict[str, Any]:
    """Run the check and return the JSON contract of ``automl drift --json``.

    Returns:
        ``drift_detected``, ``state`` (``ok`` / ``warning`` / ``drift``), ``score``,
        ``share_drifted``, ``columns`` (per column ``method``, ``score``, ``threshold``,
        ``drifted`` and more evidence), ``signals``, ``schema_changes``, the inputs, the
        ``target`` left out of the check and ``notes`` (e.g. that no target was named, so every
        column counts as a feature).

    Raises:
        ConfigError: The pipeline spec is invalid.
        DataValidationError: A file is missing, unreadable or of an unsupported type.
        DriftCheckError: The check cannot be computed (e.g. no common column).
    """
    from automl.data import read_table, table_columns
    from automl.drift import infer_column_kinds
    from automl.service import CheckedColumns, detect_drift

    spec = load_spec(options.pipeline) if options.pipeline else None
    drift = spec.drift if spec else DriftSpec()
    target = options.target or (spec.data.target if spec else None)
    ref_names = _columns(options.reference, table_columns)
    cur_names = _columns(options.current, table_columns)
    notes = []
    if target is None:
        notes.append(
            "no --pipeline or --target: every column is treated as a feature (a label column "
            "is checked as if it were one)"
        )
    elif target not in ref_names:
        from automl.errors import DataValidationError

        raise DataValidationError(
            f"{options.reference}: target column {target!r} not found; columns: {ref_names}"
        )
    ref_columns = cur_columns = None
    if drift.columns:
        # Memory holds only what is checked: the named columns and the label, plus the current
        # file's columns the reference lacks (reported as schema changes).
        wanted = {*drift.columns, *([target] if target else [])}
        ref_columns = [c for c in ref_names if c in wanted]
        cur_columns = [c for c in cur_names if c in wanted or c not in ref_names]
    reference = read_table(options.reference, columns=ref_columns)
    current = read_table(options.current, columns=cur_columns)
    numeric, categorical = infer_column_kinds(reference, exclude=[target] if target else [])
    columns = CheckedColumns.select(
        drift,
        numeric=numeric,
        categorical=categorical,
        target=target,
        is_classification=spec is not None and spec.data.task == "classification",
    )
    seed = spec.tuning.seed if spec else 0
    report, html = detect_drift(
        drift, reference, current, columns, seed=seed, html_path=options.html
    )
    payload = {
        "reference": str(options.reference),
        "current": str(options.current),
        "pipeline": spec.name if spec else None,
        "target": target,
        "notes": notes,
        **report.to_dict(),
    }
    if html is not None:
        payload["html"] = str(html)
    return payload


def _columns(path: Path, table_columns: Any) -> list[str]:
    if not path.is_file():
        from automl.errors import DataValidationError

        raise DataValidationError(f"{path}: file not found (expected a CSV or Parquet file)")
    return list(table_columns(path))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_drift(payload: dict[str, Any], console: Console) -> None:
    """Human-readable form of :func:`check_files`'s result."""
    table = Table(title=f"drift: {payload['current']} vs {payload['reference']}")
    for col in ("column", "kind", "method", "score", "threshold", "drifted", "why"):
        table.add_column(col)
    for name, col in payload["columns"].items():
        table.add_row(
            name,
            col["kind"],
            col["method"],
            _number(col["score"]),
            _number(col["threshold"]),
            "yes" if col["drifted"] else "no",
            ", ".join(col["reasons"]),
        )
    console.print(table)
    for change in payload["schema_changes"]:
        console.print(f"schema change: {change['column']}: {change['change']} ({change['detail']})")
    for signal in payload["signals"]:
        mark = "fired" if signal["drifted"] else "quiet"
        console.print(f"signal {signal['name']}: {mark} ({signal['detail']})")
    console.print(
        f"state: [bold]{payload['state']}[/bold]  score {payload['score']:.3f} "
        f"({payload['policy']} policy; drift at {payload['drift_share']}, "
        f"warning at {payload['warning_share']:.3g})"
    )
    if payload.get("html"):
        console.print(f"report: {payload['html']}")
    for note in payload.get("notes", []):
        console.print(f"note: {note}", highlight=False)
