"""Retrying what may pass: which failures are transient, how long to wait, and the loop that waits.

A transient failure (a status in :data:`RETRY_STATUSES`, a connection reset, a timeout, a host
that did not resolve, a body its caller found truncated) is tried again after a backoff, or after
the server's Retry-After; anything else fails the fetch at once. Either way a fetch that fails
for good raises :class:`~composer_mirror.errors.UpstreamError`, so one item never takes a whole
batch down, and its text is redacted: the HTTP stack names URLs, queries included.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
import urllib3

from composer_mirror.errors import UpstreamError
from composer_mirror.upstream.policy import UnresolvedHost
from composer_mirror.upstream.redaction import describe, redact

logger = logging.getLogger(__name__)

# Statuses worth another try, and why: 408/425 the server gave up waiting; 429 rate limited
# (honour Retry-After); 500/502/503/504 the server or a proxy in front of it is failing for now.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How often and how long to retry transient failures: exponential backoff with full jitter.

    Full jitter (a random wait up to the exponential bound) spreads the retries of many threads
    that failed together, instead of sending them back to a struggling upstream in step.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    # A Retry-After longer than this fails the item instead of stalling the whole batch.
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))


class Transient(Exception):
    """A retryable HTTP status, with the server's Retry-After in seconds when it sent one."""

    def __init__(self, status: int, retry_after: float | None, detail: str = "") -> None:
        super().__init__(detail or f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def raise_for_status(response: requests.Response, url: str) -> None:
    """Nothing for a 200; :class:`Transient` for a status worth retrying; UpstreamError for any other."""
    status = response.status_code
    if status == 200:
        return
    if status in RETRY_STATUSES:
        raise Transient(status, parse_retry_after(response.headers.get("Retry-After")))
    raise UpstreamError(f"{redact(url)} answered HTTP {status}", url=redact(url), status=status)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def with_retries(retry: RetryPolicy, url: str, attempt_fn: Callable[[], T], on_retry: Callable[[], object]) -> T:
    """``attempt_fn()``, tried again after each transient failure up to ``retry.attempts`` times.

    ``on_retry`` is called before each wait, so a caller counts only what was really retried.
    """
    last: Exception | None = None
    made = 0
    for attempt in range(retry.attempts):
        made = attempt + 1
        try:
            return attempt_fn()
        except Transient as exc:
            last = exc
            wait = retry.delay(attempt, exc.retry_after)
            if exc.retry_after is not None and exc.retry_after > retry.max_retry_after:
                break
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            UnresolvedHost,
        ) as exc:
            last = exc
            wait = retry.delay(attempt)
        except (ValueError, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # A URL or redirect Location no parser accepts (requests' InvalidURL is one too), or any
            # other failure of the HTTP stack: this fetch fails for good, as an UpstreamError so it
            # never takes a whole batch down. Not chained: the cause's text names the URL, query and all.
            raise UpstreamError(f"{redact(url)}: {describe(exc)}", url=redact(url)) from None
        if made < retry.attempts:
            on_retry()
            logger.info("retrying %s in %.2fs after %s", redact(url), wait, describe(last))
            time.sleep(wait)
    status = last.status if isinstance(last, Transient) else None
    # ``made`` is below the configured attempts when a Retry-After too long ended the loop.
    raise UpstreamError(
        f"{redact(url)} failed after {made} attempt(s): {describe(last)}",
        url=redact(url),
        status=status,
        attempts=made,
    )
