"""Reading and writing tabular files (CSV and Parquet)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
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


def _parse(source: str | Path | io.BytesIO, suffix: str, name: object) -> pd.DataFrame:
    try:
        if suffix == ".csv":
            return pd.read_csv(source)
        return pd.read_parquet(source)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        if isinstance(exc, pd.errors.EmptyDataError):
            raise DataValidationError(f"{name}: file is empty", reason_code="empty") from exc
        raise DataValidationError(
            f"{name}: cannot be parsed as {suffix[1:]}: {type(exc).__name__}: {exc}",
            reason_code="unreadable",
        ) from exc


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Args:
        path: File ending in ``.csv``, ``.parquet`` or ``.pq``.

    Returns:
        The file's rows.

    Raises:
        DataValidationError: The suffix is not supported or the file cannot be parsed
            (``reason_code='unreadable'``).
    """
    file = Path(path)
    return _parse(file, _check_suffix(file), file)


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
    else:
        frame.to_parquet(tmp, index=False)
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
