"""Calls to a remote store retried with exponential backoff, up to a bound.

Transient failures (a connection refused or reset, a timeout, a throttled request) are tried
again after 0.5 s, 1 s, 2 s, ... (capped at ``max_delay_s``), at most ``attempts`` times in all;
anything else (no credentials, credentials refused, a missing bucket or table) fails at once.
Either way the caller gets one :class:`~automl.errors.DataSourceError` whose message says what
failed and what to do, with the library's exception attached as its cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from automl.errors import DataSourceError

log = logging.getLogger(__name__)

T = TypeVar("T")


def call_with_retries(
    call: Callable[[], T],
    *,
    what: str,
    attempts: int,
    explain: Callable[[BaseException], str | None],
    base_delay_s: float = 0.5,
    max_delay_s: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry transient failures with backoff, at most ``attempts`` times.

    Args:
        call: The store call.
        what: What it does, for messages (``"listing s3://scores/churn/"``).
        attempts: Most calls in all, >= 1.
        explain: Returns the message of a permanent failure (not retried), or None for a
            transient one.
        base_delay_s: First wait; each later wait doubles, capped at ``max_delay_s``.
        max_delay_s: Longest wait between two attempts.
        sleep: Waits (a test passes a fake clock).

    Returns:
        What ``call`` returned.

    Raises:
        DataSourceError: A permanent failure, or the last transient one after ``attempts``.

    Example:
        >>> tries = []
        >>> def flaky() -> str:
        ...     tries.append(1)
        ...     if len(tries) < 3:
        ...         raise ConnectionResetError("reset by peer")
        ...     return "rows"
        >>> call_with_retries(flaky, what="reading", attempts=5, explain=lambda e: None,
        ...                   sleep=lambda s: None), len(tries)
        ('rows', 3)
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts!r}")
    delay = base_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except DataSourceError:
            raise
        except Exception as exc:
            permanent = explain(exc)
            if permanent is not None:
                raise DataSourceError(f"{what}: {permanent}") from exc
            if attempt == attempts:
                raise DataSourceError(
                    f"{what}: failed {attempts} time(s), last with {type(exc).__name__}: "
                    f"{_first_line(exc)}; nothing of it was recorded, the next cycle tries "
                    "again. Check that the store is reachable from this host"
                ) from exc
            log.warning(
                "%s: %s: %s (attempt %d of %d); retrying in %.1fs",
                what,
                type(exc).__name__,
                _first_line(exc),
                attempt,
                attempts,
                delay,
            )
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
    raise AssertionError("unreachable")  # pragma: no cover


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
