"""Batch schemas and validation: which columns a pipeline expects, and what a model can learn from.

A batch is checked against the pipeline's schema (set by its first accepted batch) and against
:class:`ValidationRules`. The rules and their options are listed in the README's "Validation
rules" table; every rejection raises :class:`~automl.errors.DataValidationError` with a
``reason_code`` and a message naming the file, the column, the data rows (0-based, header
excluded) and example values.

With an id column (late labels, ``id_column`` below) a batch may come without labels: its
target column may be missing or empty, every row is kept, the id column is required, unique
within the batch and never a feature, and the prediction and time columns are kept beside the
features, never used as features.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from automl.errors import DataValidationError
from automl.vocab import BadValues, ColumnKind, NewClasses, Task

if TYPE_CHECKING:
    from automl.config import DataSpec

ClassLabel = int | str
#: How a column arrived in the first batch, as the reader typed it (``pandas.read_csv`` makes a
#: column of whole numbers without gaps ``int64``, and one with a gap ``float64``).
RawType = Literal["integer", "float", "boolean", "string"]

#: How many example rows and values a message quotes.
_SHOWN = 5


@dataclass(frozen=True)
class Schema:
    """The columns a pipeline expects.

    Attributes:
        features: ``(name, kind)`` per feature column, in order.
        target: Name of the label column.
        task: ``classification`` or ``regression``.
        classes: The labels a classification pipeline has accepted so far, sorted (whole
            numbers or text, never both); None for regression or before the first batch.
        raw_types: ``(name, raw type)`` per feature column of the first batch as read, before
            canonical dtypes; what :func:`as_received` restores for model signatures. Empty
            for schemas stored before it was recorded.
    """

    features: tuple[tuple[str, ColumnKind], ...]
    target: str
    task: Task
    classes: tuple[ClassLabel, ...] | None = None
    raw_types: tuple[tuple[str, RawType], ...] = ()

    @property
    def feature_names(self) -> list[str]:
        """Feature column names in order."""
        return [name for name, _ in self.features]

    @property
    def numeric(self) -> list[str]:
        """Numeric feature names."""
        return [name for name, kind in self.features if kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        """Categorical feature names."""
        return [name for name, kind in self.features if kind == "categorical"]

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        raw: dict[str, object] = {
            "features": [list(f) for f in self.features],
            "target": self.target,
            "task": self.task,
            "raw_types": [list(r) for r in self.raw_types],
        }
        if self.classes is not None:
            raw["classes"] = list(self.classes)
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Inverse of :meth:`to_json` (schemas stored before ``classes`` existed read as None)."""
        raw = json.loads(text)
        classes = raw.get("classes")
        return cls(
            features=tuple((str(n), k) for n, k in raw["features"]),
            target=raw["target"],
            task=raw["task"],
            classes=tuple(classes) if classes is not None else None,
            raw_types=tuple((str(n), t) for n, t in raw.get("raw_types", [])),
        )


@dataclass(frozen=True)
class ValidationRules:
    """The options of the validation rules (see the README's "Validation rules").

    Args:
        new_classes: ``reject`` (default) a batch whose labels include a class the pipeline has
            never accepted, or ``accept`` it and learn the class. A pipeline that knows fewer
            than two classes learns new ones either way (no model can be trained on one).
        max_abs_value: Largest magnitude a numeric feature or a regression target may hold;
            None checks only for ``inf``/``-inf``.
        bad_values: What a non-finite or too large value does: ``reject_file`` (default)
            quarantines the whole file, ``quarantine_rows`` moves only the offending rows to
            quarantine and accepts the rest (the whole file when every row is bad).
        allow_empty_columns: Feature columns that may be entirely empty in a batch.

    Example:
        >>> schema = Schema((("x", "numeric"),), target="y", task="classification", classes=(0, 1))
        >>> batch = pd.DataFrame({"x": [1.0, float("inf"), 3.0], "y": [0, 1, 0]})
        >>> try:
        ...     check_batch(batch, schema, source="b.csv")
        ... except DataValidationError as exc:
        ...     print(exc.reason_code)
        non_finite
        >>> rules = ValidationRules(bad_values="quarantine_rows")
        >>> check_batch(batch, schema, source="b.csv", rules=rules).bad_rows["row"].tolist()
        [1]
    """

    new_classes: NewClasses = "reject"
    max_abs_value: float | None = 1e15
    bad_values: BadValues = "reject_file"
    allow_empty_columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.new_classes not in ("reject", "accept"):
            raise ValueError(f"new_classes must be 'reject' or 'accept', got {self.new_classes!r}")
        if self.bad_values not in ("reject_file", "quarantine_rows"):
            raise ValueError(
                f"bad_values must be 'reject_file' or 'quarantine_rows', got {self.bad_values!r}"
            )
        if self.max_abs_value is not None and not self.max_abs_value > 0:
            raise ValueError(f"max_abs_value must be > 0 or None, got {self.max_abs_value!r}")

    @classmethod
    def from_spec(cls, data: DataSpec) -> ValidationRules:
        """The rules a pipeline spec's ``data`` section sets."""
        return cls(
            new_classes=data.new_classes,
            max_abs_value=data.max_abs_value,
            bad_values=data.bad_values,
            allow_empty_columns=tuple(data.allow_empty_columns),
        )


@dataclass(frozen=True)
class CheckedBatch:
    """A batch that passed validation.

    Attributes:
        frame: The rows to store, with canonical dtypes, columns in schema order.
        schema: The schema to keep using: the input schema, with ``classes`` learned or
            extended when the batch brought (allowed) new classes.
        bad_rows: Rows moved aside under ``bad_values: quarantine_rows``, as read, with a
            ``row`` column (0-based data row); empty otherwise.
        bad_rows_reason: Why those rows were moved aside ("" when none were).
    """

    frame: pd.DataFrame
    schema: Schema
    bad_rows: pd.DataFrame
    bad_rows_reason: str = ""


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _raw_type(series: pd.Series) -> RawType:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if _is_numeric(series):
        return "float"
    present = series.dropna()
    # read_csv gives a column of True/False with a gap as objects, not as bool.
    if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
        return "boolean"
    return "string"


def infer_schema(
    frame: pd.DataFrame,
    *,
    target: str,
    task: Task,
    exclude: Sequence[str] = (),
    require_target: bool = True,
) -> Schema:
    """Infer a schema from a first batch: numeric dtypes are numeric, everything else categorical.

    The classes of a classification target are learned when the batch is validated
    (:func:`check_batch`), so ``classes`` is None here. With late labels the first batch may
    have no labels at all: the task comes from the spec, and the classes are learned from the
    first labels that arrive (in a batch or a label file). The batch's dtypes as read are kept
    too (:attr:`Schema.raw_types`).

    Args:
        frame: The first batch.
        target: Label column.
        task: ``classification`` or ``regression``.
        exclude: Columns that are never features (the id, prediction and time columns).
        require_target: Whether the target column must be present (False with late labels).

    Raises:
        DataValidationError: The target column is missing (and required) or the frame has no
            feature column.

    Example:
        >>> df = pd.DataFrame({"age": [30, 41], "plan": ["basic", "pro"], "churned": [0, 1]})
        >>> schema = infer_schema(df, target="churned", task="classification")
        >>> schema.features, schema.raw_types
        ((('age', 'numeric'), ('plan', 'categorical')), (('age', 'integer'), ('plan', 'string')))
    """
    if require_target and target not in frame.columns:
        raise DataValidationError(
            f"target column {target!r} is missing; columns present: {list(frame.columns)}",
            reason_code="no_target",
        )
    features = tuple(
        (str(c), "numeric" if _is_numeric(frame[c]) else "categorical")
        for c in frame.columns
        if c != target and c not in exclude
    )
    if not features:
        raise DataValidationError("the batch has no feature column besides the target")
    raw_types = tuple((name, _raw_type(frame[name])) for name, _ in features)
    return Schema(features=features, target=target, task=task, raw_types=raw_types)  # type: ignore[arg-type]


def _rows(mask: np.ndarray) -> str:
    """``data rows [3, 7, 9]`` (or ``[3, 7, 9, ...]`` beyond the first few) of a boolean mask."""
    positions = [int(i) for i in np.flatnonzero(mask)[:_SHOWN]]
    more = ", ..." if int(mask.sum()) > _SHOWN else ""
    return f"data row(s) [{', '.join(map(str, positions))}{more}]"


def _examples(values: pd.Series, mask: np.ndarray) -> list[object]:
    """The first distinct offending values, as Python scalars (for readable messages)."""
    shown: list[object] = []
    for value in values.to_numpy()[mask]:
        item = value.item() if isinstance(value, np.generic) else value
        if item not in shown:
            shown.append(item)
        if len(shown) == _SHOWN:
            break
    return shown


_ROW_NOTE = " (0-based, header excluded)"


def coerce_features(frame: pd.DataFrame, schema: Schema, *, source: str) -> pd.DataFrame:
    """The schema's feature columns with canonical dtypes: numeric float64, categorical text.

    Models are logged with that signature, so rows to score go through this first (MLflow
    refuses, e.g., int64 where the signature says double).

    Raises:
        DataValidationError: A feature column is missing or a numeric column holds text.
    """
    # One frame built at once (column by column costs more than the coercion), from arrays in
    # the frame's row order, so nothing is aligned on the index.
    return pd.DataFrame(_feature_arrays(frame, schema, source), index=frame.index, copy=True)


def _feature_arrays(
    frame: pd.DataFrame, schema: Schema, source: str
) -> dict[str, np.ndarray[Any, Any]]:
    """:func:`coerce_features`'s columns as arrays (the checks read them without a frame)."""
    missing = [c for c in schema.feature_names if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{source}: missing columns {missing}; expected {schema.feature_names}",
            reason_code="missing_columns",
        )
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for name, kind in schema.features:
        col = frame[name]
        if kind == "numeric":
            if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iuf":
                columns[name] = col.to_numpy(dtype="float64")  # numbers already: no coercion
                continue
            coerced = pd.to_numeric(col, errors="coerce")
            bad = coerced.isna() & col.notna()
            if bad.any():
                rows = [int(i) for i in np.flatnonzero(bad.to_numpy())[:3]]
                examples = [col.iloc[i] for i in rows]
                raise DataValidationError(
                    f"{source}: column {name!r} must be numeric but {int(bad.sum())} value(s) "
                    f"are not, e.g. {examples!r} at data row(s) {rows} (0-based, header excluded)",
                    reason_code="bad_dtype",
                )
            columns[name] = coerced.astype("float64").to_numpy()
        elif col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in (
            "string",
            "empty",
        ):
            columns[name] = col.to_numpy()  # text already (as read from CSV), missing stays
        else:
            columns[name] = col.astype(object).where(col.isna(), col.astype(str)).to_numpy()
    return columns


def _numeric_as_received(col: pd.Series, raw: RawType | None) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce").astype("float64")
    present = values.dropna()
    is_whole = bool(np.isfinite(present).all() and (present == present.round()).all())
    has_gaps = bool(values.isna().any())
    # An integer column with a gap reaches pandas as float64 (and MLflow has no nullable
    # integer type); whole floats with gaps are taken for such a column.
    if is_whole and (raw == "integer" or (raw == "float" and has_gaps)):
        return values.astype("Int64") if has_gaps else values.astype("int64")
    return values


def _categorical_as_received(col: pd.Series, raw: RawType | None) -> pd.Series:
    text = col.astype(object).where(col.isna(), col.astype(str))
    present = set(text.dropna())
    if raw != "boolean" or not present <= {"True", "False"}:
        return text
    flags = text.map({"True": True, "False": False})
    return flags.astype("boolean") if text.isna().any() else flags.astype(bool)


def as_received(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The schema's feature columns with the dtypes clients send, from canonical rows.

    Stored batches are canonical (numeric float64, categorical text); a client reading a landed
    file with ``pandas.read_csv`` gets ``int64`` for an integer column instead, and ``bool`` for
    a column of True/False. A model's signature and input example are built from this frame,
    so they describe the data as sent. Per column (of the whole frame):

    - integer in the first batch, whole numbers: ``int64``, or nullable ``Int64`` when a value
      is missing (a float column of whole numbers with gaps is taken for integers too);
    - other numeric: ``float64``;
    - boolean in the first batch, only True/False: ``bool``, or nullable ``boolean`` with gaps;
    - other categorical: text (``object``), missing values kept.

    Schemas stored before raw types were recorded give the canonical dtypes back.

    Example:
        >>> first = pd.DataFrame({"calls": [1, 2], "vip": [True, False], "y": [0, 1]})
        >>> schema = infer_schema(first, target="y", task="classification")
        >>> rows = pd.DataFrame({"calls": [3.0, np.nan], "vip": ["False", "True"]})
        >>> as_received(rows, schema).dtypes.astype(str).to_dict()
        {'calls': 'Int64', 'vip': 'bool'}
    """
    raw = dict(schema.raw_types)
    out = pd.DataFrame(index=frame.index)
    for name, kind in schema.features:
        if kind == "numeric":
            out[name] = _numeric_as_received(frame[name], raw.get(name))
        else:
            out[name] = _categorical_as_received(frame[name], raw.get(name))
    return out


def _check_columns(
    frame: pd.DataFrame,
    schema: Schema,
    source: str,
    id_column: str | None = None,
    kept_columns: Sequence[str] = (),
) -> None:
    expected = [*schema.feature_names, schema.target]
    if id_column is not None and id_column not in frame.columns:
        raise DataValidationError(
            f"{source}: id column {id_column!r} (data.id_column) is missing; columns present: "
            f"{[str(c) for c in frame.columns]}. Late labels are joined to rows by id: every "
            "batch must carry it",
            reason_code="no_id",
        )
    missing = [c for c in expected if c not in frame.columns]
    if id_column is not None and schema.target in missing:
        missing.remove(schema.target)  # late labels: a batch may come without its labels
    if schema.target in missing:
        raise DataValidationError(
            f"{source}: target column {schema.target!r} is missing", reason_code="no_target"
        )
    allowed = {*expected, *kept_columns, *([id_column] if id_column is not None else [])}
    unexpected = [str(c) for c in frame.columns if c not in allowed]
    if missing or unexpected:
        parts = [f"missing columns {missing}"] if missing else []
        parts += [f"unexpected columns {unexpected}"] if unexpected else []
        raise DataValidationError(
            f"{source}: schema change: {'; '.join(parts)}; expected {expected}",
            reason_code="missing_columns" if missing else "unexpected_columns",
        )


def _as_written(raw: Callable[[], pd.DataFrame] | None, column: str) -> str:
    """``; as written: 'n/a' (300x)`` from the file's text, or "" when unknown."""
    if raw is None:
        return ""
    try:
        text = raw()[column].astype(str).str.strip()
    except Exception:  # quoting the file is a courtesy; never fail the rejection over it
        return ""
    counts = text.value_counts()
    shown = ", ".join(f"{value!r} ({n}x)" for value, n in counts.head(3).items())
    return f"; as written: {shown}"


def _check_empty_columns(
    columns: dict[str, np.ndarray[Any, Any]],
    n: int,
    schema: Schema,
    rules: ValidationRules,
    source: str,
    raw: Callable[[], pd.DataFrame] | None,
) -> None:
    for name in schema.feature_names:
        # On the column's array: a Series per test would cost more than the test.
        values = columns[name]
        if name in rules.allow_empty_columns:
            continue
        if values.dtype == np.float64:
            if not np.isnan(values).all():
                continue
        elif pd.notna(values).any():
            continue
        raise DataValidationError(
            f"{source}: column {name!r} has no value in any of its {n} row(s) (data rows "
            f"0-{n - 1}, 0-based, header excluded; every cell is empty or a missing marker "
            f"such as 'n/a', 'NA', 'null'){_as_written(raw, name)}. A model cannot learn "
            "from an empty column; fix the export, or list the column in "
            "data.allow_empty_columns if it may be empty",
            reason_code="empty_column",
        )


def _bad_values(
    columns: dict[str, pd.Series | np.ndarray[Any, Any]], rules: ValidationRules, source: str
) -> tuple[np.ndarray, str, str]:
    """Rows holding inf/-inf or values beyond ``max_abs_value``: (mask, reason_code, message).

    ``columns`` holds Series or float64 arrays (the coerced features, read without a frame).
    """
    n = len(next(iter(columns.values()))) if columns else 0
    any_bad = np.zeros(n, dtype=bool)
    parts: list[str] = []
    code = "out_of_range"
    for name, column in columns.items():
        if isinstance(column, np.ndarray) and column.dtype == np.float64:
            data = column
        else:
            data = pd.Series(column).to_numpy(dtype="float64", na_value=np.nan)
        infinite = np.isinf(data)
        huge = np.zeros(n, dtype=bool)
        if rules.max_abs_value is not None:
            with np.errstate(invalid="ignore"):
                huge = np.isfinite(data) & (np.abs(data) > rules.max_abs_value)
        if not (infinite.any() or huge.any()):
            continue
        values = column if isinstance(column, pd.Series) else pd.Series(column)  # to quote
        if infinite.any():
            code = "non_finite"
            parts.append(
                f"column {name!r}: {int(infinite.sum())} non-finite value(s) "
                f"{_examples(values, infinite)} at {_rows(infinite)}"
            )
        if huge.any():
            parts.append(
                f"column {name!r}: {int(huge.sum())} value(s) beyond "
                f"+-{rules.max_abs_value:g} (data.max_abs_value) {_examples(values, huge)} "
                f"at {_rows(huge)}"
            )
        any_bad |= infinite | huge
    if not parts:
        return any_bad, "", ""
    message = (
        f"{source}: {'; '.join(parts)}{_ROW_NOTE}. Models and drift tests cannot use such "
        "values; fix the export (they are often overflows or sentinels), raise "
        "data.max_abs_value if they are real, or set data.bad_values: quarantine_rows to "
        "set only these rows aside"
    )
    return any_bad, code, message


def _check_regression_target(
    target: pd.Series, labelled: np.ndarray, schema: Schema, src: str
) -> pd.Series:
    numeric = pd.to_numeric(target, errors="coerce")
    text = (numeric.isna() & target.notna()).to_numpy() & labelled
    if text.any():
        raise DataValidationError(
            f"{src}: target column {schema.target!r} must be numeric for regression but "
            f"{int(text.sum())} label(s) are not, e.g. {_examples(target, text)} at "
            f"{_rows(text)}{_ROW_NOTE}",
            reason_code="bad_dtype",
        )
    return numeric.astype("float64")


def _classes_of(target: pd.Series, labelled: np.ndarray, schema: Schema, source: str) -> pd.Series:
    """Class labels as whole numbers (int64) or text, consistently with ``schema.classes``."""
    name = schema.target
    known = schema.classes
    known_text = known is not None and any(isinstance(c, str) for c in known)
    if known_text:
        return target.astype(object).where(target.isna(), target.astype(str))
    if isinstance(target.dtype, np.dtype) and target.dtype.kind in "iu":
        # Whole numbers already, none missing: the values the general path below returns for
        # them (which also rejects magnitudes from 2**53 on, where floats skip whole numbers).
        values = target.to_numpy()
        if not len(values) or (int(values.max()) < 2**53 and int(values.min()) > -(2**53)):
            # int64 (not the nullable Int64 below): nothing is missing, and that is the
            # dtype check_batch ends with for such labels.
            return target.astype("int64")
    numeric = pd.to_numeric(target, errors="coerce")
    text = (numeric.isna() & target.notna()).to_numpy() & labelled
    some_numbers = bool((numeric.notna().to_numpy() & labelled).any())
    if text.any() and (known is not None or some_numbers):
        expected = (
            f"the pipeline's classes are the numbers {list(known)}"
            if known
            else ("the other labels are numbers")
        )
        raise DataValidationError(
            f"{source}: target column {name!r} holds {int(text.sum())} text label(s) "
            f"{_examples(target, text)} at {_rows(text)}{_ROW_NOTE}, but {expected}. Mixed "
            "label types cannot be learned; map the labels to the pipeline's classes upstream",
            reason_code="label_type",
        )
    if text.any():  # every label is text: a text-label pipeline
        return target.astype(object).where(target.isna(), target.astype(str))
    values = numeric.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (np.abs(values) < 2**53)
        whole &= np.isclose(values, np.round(values))
    fractional = labelled & ~whole
    if fractional.any():
        raise DataValidationError(
            f"{source}: target column {name!r} holds {int(fractional.sum())} label(s) that are "
            f"not whole numbers, e.g. {_examples(numeric, fractional)} at {_rows(fractional)}"
            f"{_ROW_NOTE}; class labels must be whole numbers or text (is the task regression?)",
            reason_code="label_type",
        )
    return numeric.astype("Int64")


def _check_classes(
    labels: pd.Series,
    labelled: np.ndarray,
    schema: Schema,
    rules: ValidationRules,
    source: str,
) -> Schema:
    # Distinct labels first (vectorized), then plain Python values for the few of them.
    distinct = (labels if labelled.all() else labels[labelled]).unique()
    seen = sorted({v.item() if isinstance(v, np.generic) else v for v in distinct})
    known = list(schema.classes or ())
    unseen = [c for c in seen if c not in known]
    if not unseen:
        return schema
    if len(known) >= 2 and rules.new_classes == "reject":
        mask = labelled & labels.isin(unseen).to_numpy()
        raise DataValidationError(
            f"{source}: target column {schema.target!r} holds class(es) {unseen} the pipeline "
            f"has never seen (known: {known}) in {int(mask.sum())} row(s), at {_rows(mask)}"
            f"{_ROW_NOTE}. A model trained on them changes predict_proba's shape for every "
            "consumer; fix the labels, or set data.new_classes: accept to learn the new class",
            reason_code="new_class",
        )
    return replace(schema, classes=tuple(sorted([*known, *unseen])))


def _is_whole(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    return isinstance(value, float | np.floating) and float(value).is_integer()


def normalize_ids(values: pd.Series) -> pd.Series:
    """Row ids as text: whole numbers as their digits, text stripped; missing stays None.

    Ids are compared as text, so ``7``, ``7.0`` and ``"7"`` are one id (a numeric id column
    with a gap reads as float). A CSV reader turns ``007`` into the number 7: keep zero-padded
    ids as text in Parquet, or prefix them.

    Example:
        >>> normalize_ids(pd.Series([7.0, None, 12.0])).tolist()
        ['7', None, '12']
        >>> normalize_ids(pd.Series([" a1", "b2", ""])).tolist()
        ['a1', 'b2', None]
    """
    out: list[str | None] = []
    for value in values.to_numpy(dtype=object):
        if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
            out.append(None)
        elif _is_whole(value):
            out.append(str(int(value)))
        else:
            text = str(value).strip()
            out.append(text or None)
    return pd.Series(out, index=values.index, dtype=object)


def _check_ids(ids: pd.Series, id_column: str, source: str) -> None:
    missing = ids.isna().to_numpy()
    if missing.any():
        raise DataValidationError(
            f"{source}: id column {id_column!r} is empty in {int(missing.sum())} row(s), at "
            f"{_rows(missing)}{_ROW_NOTE}. A row without an id can never get its label; fix "
            "the export",
            reason_code="missing_id",
        )
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        raise DataValidationError(
            f"{source}: id column {id_column!r} repeats {ids[repeated].nunique()} id(s) "
            f"{_examples(ids, repeated)} in {int(repeated.sum())} row(s), at {_rows(repeated)}"
            f"{_ROW_NOTE}. An id names one row: de-duplicate the batch upstream (a label for a "
            "known id belongs in a later batch or a label file)",
            reason_code="duplicate_id",
        )


def check_batch(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    source: str,
    rules: ValidationRules | None = None,
    raw: Callable[[], pd.DataFrame] | None = None,
    id_column: str | None = None,
    kept_columns: Sequence[str] = (),
) -> CheckedBatch:
    """Check a batch against a schema and the validation rules.

    Numeric features become float64, categorical features strings (missing stays missing),
    class labels int64 or strings, rows whose label is missing are dropped. With
    ``id_column`` (late labels) no row is dropped for a missing label (the target column may
    be missing or empty; class labels stay nullable while some are missing), the id column
    becomes text (:func:`normalize_ids`) and must be filled and unique, and the id and
    ``kept_columns`` follow the target in the result.

    Args:
        frame: The batch as read (row ``i`` is data row ``i`` of the file).
        schema: The pipeline's schema (for a first batch, the inferred one).
        source: Where the batch came from, used in messages (a file name).
        rules: The rules' options (default: :class:`ValidationRules` defaults).
        raw: Returns the batch as written, every cell as text; called only to quote the file
            in a rejection message.
        id_column: The row id column of a pipeline with late labels; None: every row must
            come with its label.
        kept_columns: Columns kept beside the features when present, never features (the
            served prediction, the time); only with ``id_column``.

    Returns:
        The batch to store, the schema to keep (classes learned), and any rows set aside.

    Raises:
        DataValidationError: ``reason_code`` says which rule failed: ``empty``,
            ``missing_columns``, ``unexpected_columns``, ``no_target``, ``bad_dtype``,
            ``empty_column``, ``non_finite``, ``out_of_range``, ``label_type``, ``new_class``,
            and with ``id_column`` ``no_id``, ``missing_id``, ``duplicate_id``.
    """
    rules = rules or ValidationRules()
    late = id_column is not None
    kept = list(kept_columns) if late else []
    if frame.empty:
        raise DataValidationError(f"{source}: batch has no rows", reason_code="empty")
    index = frame.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        frame = frame.reset_index(drop=True)  # as read from a file it already is
    _check_columns(frame, schema, source, id_column, kept)
    arrays = _feature_arrays(frame, schema, source)
    _check_empty_columns(arrays, len(frame), schema, rules, source, raw)
    ids = None
    if id_column is not None:
        ids = normalize_ids(frame[id_column])
        _check_ids(ids, id_column, source)
    if schema.target in frame.columns:
        target = frame[schema.target]
    else:
        target = pd.Series([None] * len(frame), dtype=object)
    labelled = ~pd.isna(target.to_numpy())
    if not labelled.any() and not late:
        raise DataValidationError(
            f"{source}: target column {schema.target!r} has no values in any of its "
            f"{len(frame)} row(s); rows without a label cannot be learned from",
            reason_code="no_target",
        )
    numbers: dict[str, pd.Series | np.ndarray[Any, Any]] = {c: arrays[c] for c in schema.numeric}
    if schema.task == "regression":
        labels = _check_regression_target(target, labelled, schema, source)
        numbers[schema.target] = labels
    else:
        labels = _classes_of(target, labelled, schema, source)
        schema = _check_classes(labels, labelled, schema, rules, source)
    bad, code, message = _bad_values(numbers, rules, source)
    bad_rows = frame.iloc[0:0].assign(row=np.empty(0, dtype=np.int64))
    if bad.any():
        if rules.bad_values == "reject_file" or bad.all():
            raise DataValidationError(message, reason_code=code)
        bad_rows = frame.loc[bad].assign(row=np.flatnonzero(bad))
    keep = ~bad if late else labelled & ~bad
    if keep.all() and labels.dtype == "Int64" and not labels.isna().any():
        labels = labels.astype("int64")  # what the end of this function makes of it
    # One frame built at once: features, then the target (setting a column costs more).
    target_values = (
        labels.array
        if isinstance(labels.dtype, pd.api.extensions.ExtensionDtype)
        else labels.to_numpy()
    )
    out = pd.DataFrame({**arrays, schema.target: target_values}, index=frame.index, copy=True)
    if ids is not None and id_column is not None:
        out[id_column] = ids
        for name in kept:
            if name in frame.columns:
                out[name] = frame[name]
    if not keep.all():
        out = out.loc[keep].reset_index(drop=True)
    target_out = out[schema.target]
    if target_out.dtype == "Int64" and not target_out.isna().any():
        out[schema.target] = target_out.astype("int64")
    reason = f"{code}: {message}" if len(bad_rows) else ""
    return CheckedBatch(frame=out, schema=schema, bad_rows=bad_rows, bad_rows_reason=reason)


def validate_batch(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    source: str,
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """Check a batch against a schema and return it with canonical dtypes.

    The rows-only view of :func:`check_batch` (which see), for callers that keep no schema.

    Args:
        frame: The batch as read.
        schema: The pipeline's schema.
        source: Where the batch came from, used in messages (a file name).
        rules: The rules' options (default: :class:`ValidationRules` defaults).

    Returns:
        The batch with columns in schema order (features, then target).

    Raises:
        DataValidationError: A rule failed; ``reason_code`` says which.
    """
    return check_batch(frame, schema, source=source, rules=rules).frame
