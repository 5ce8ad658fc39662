"""Reading and writing tabular files (CSV and Parquet)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from automl.errors import DataValidationError

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")


def _check_suffix(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"{file}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}",
            reason_code="unreadable",
        )
    return suffix


def _parse(
    source: str | Path | io.BytesIO,
    suffix: str,
    name: object,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    try:
        if suffix == ".csv":
            return pd.read_csv(source, usecols=None if columns is None else list(columns))
        return pd.read_parquet(source, columns=None if columns is None else list(columns))
    except FileNotFoundError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        if isinstance(exc, pd.errors.EmptyDataError):
            raise DataValidationError(f"{name}: file is empty", reason_code="empty") from exc
        raise DataValidationError(
            f"{name}: cannot be parsed as {suffix[1:]}: {type(exc).__name__}: {exc}",
            reason_code="unreadable",
        ) from exc


def read_table(path: str | Path, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Args:
        path: File ending in ``.csv``, ``.parquet`` or ``.pq``.
        columns: Read only these columns (in the file's order); None reads all. Parquet
            reads nothing else from disk; a CSV is still parsed line by line but only these
            columns are kept, so memory holds only them.

    Returns:
        The file's rows.

    Raises:
        DataValidationError: The suffix is not supported or the file cannot be parsed
            (``reason_code='unreadable'``), e.g. a named column is absent.
    """
    file = Path(path)
    return _parse(file, _check_suffix(file), file, columns)


def table_columns(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet file, read from its header or schema only.

    Raises:
        DataValidationError: As :func:`read_table`.
    """
    file = Path(path)
    suffix = _check_suffix(file)
    if suffix == ".csv":
        try:
            header = pd.read_csv(file, nrows=0)
        except pd.errors.EmptyDataError as exc:
            raise DataValidationError(f"{file}: file is empty", reason_code="empty") from exc
        except Exception as exc:
            raise DataValidationError(
                f"{file}: cannot be parsed as csv: {type(exc).__name__}: {exc}",
                reason_code="unreadable",
            ) from exc
        return [str(c) for c in header.columns]
    try:
        import pyarrow.parquet as pq

        schema = pq.read_schema(file)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataValidationError(
            f"{file}: cannot be parsed as parquet: {type(exc).__name__}: {exc}",
            reason_code="unreadable",
        ) from exc
    index: set[str] = set()
    metadata = schema.pandas_metadata or {}
    for entry in metadata.get("index_columns", []):
        if isinstance(entry, str):  # a stored index (a RangeIndex is a dict, not a column)
            index.add(entry)
    return [name for name in schema.names if name not in index]


def parse_table(data: bytes, *, name: str | Path) -> pd.DataFrame:
    """Parse the bytes of a CSV or Parquet file already read into memory.

    Ingestion reads a landed file once, hashes those bytes and parses the same bytes, so what
    is recorded is exactly what was validated, even if the file changes afterwards.

    Args:
        data: The file's content.
        name: The file's name (its suffix picks the format; it is quoted in messages).

    Returns:
        The file's rows.

    Raises:
        DataValidationError: As :func:`read_table`.
    """
    return _parse(io.BytesIO(data), _check_suffix(Path(name)), name)


def read_csv_text(data: bytes) -> pd.DataFrame:
    """A CSV's cells exactly as written (all text, no missing-value markers interpreted)."""
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame atomically (temp file + rename) as CSV or Parquet by suffix."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer, so two writers of the same file never share a temp file.
    tmp = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if file.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    elif frame.attrs or not all(isinstance(c, str) for c in frame.columns):
        frame.to_parquet(tmp, index=False)  # pandas checks the names and stores the attrs
    else:
        # What to_parquet writes (the same bytes), without its per-call overhead: it matters
        # for the many small batches of an ingest.
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="snappy")
    tmp.replace(file)
    return file


def file_sha256(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """Stable hex SHA-256 of a DataFrame's values and column names."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def dangling_link(link: Path) -> tuple[str, DataValidationError]:
    """A symbolic link whose target is gone: an identity to record it by, and why it is refused.

    The identity hashes the link's target, so the same dangling link is reported once.
    """
    target = link.readlink()
    sha = hashlib.sha256(f"dangling symlink -> {target}".encode()).hexdigest()
    error = DataValidationError(
        f"{link.name}: a symbolic link to {target}, which does not exist; there is nothing "
        "to read. Deliver the file itself (or fix the link and drop it again)",
        reason_code="dangling_link",
    )
    return sha, error
