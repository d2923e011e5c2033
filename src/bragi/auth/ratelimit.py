"""Requests per minute per API key: a token bucket for each key that has made a request.

A key starts with a minute's allowance (``per_minute`` requests), spends one per
request and earns it back at ``per_minute / 60`` per second; a request with nothing
left is refused with :class:`~bragi.errors.RateLimitError` (429) whose ``Retry-After``
is when the next one is earned. Only keys that authenticated get a bucket, so the
table is as large as the key store, never as large as what clients send. The clock is
injected (tests do not sleep); one lock, since sync dependencies run in threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bragi.errors import RateLimitError

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """At most ``per_minute`` requests a minute per key, a minute's worth at once."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._rate = per_minute / 60.0  # tokens earned per second
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        """Spend one request of ``key_id``'s allowance, or raise the 429 that says when."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(self.per_minute), now)
            earned = (now - bucket.updated) * self._rate
            bucket.tokens = min(float(self.per_minute), bucket.tokens + earned)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / self._rate
        raise RateLimitError(
            f"Rate limit reached for this API key: {self.per_minute} requests per minute "
            f"(rate_limit_per_minute). Try again in {math.ceil(wait)} s.",
            retry_after=math.ceil(wait),
        )
