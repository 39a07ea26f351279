"""JSON over HTTP for the venue adapters: rate limits, retries and error translation in one place.

Every venue is reached through :class:`HttpClient`, so every venue gets the same care:

- a token bucket per venue keeps us under its public rate limit before the venue has to say so;
- temporary failures (timeouts, connection errors, 5xx, 429/418, a body that is not JSON) are
  retried with capped exponential backoff and jitter, waiting at least what the venue asked for
  (``Retry-After`` seconds, or KuCoin's ``gw-ratelimit-reset`` milliseconds); a wait longer than
  the cap is not slept through: the error is raised so the manager can use another venue;
- permanent failures (4xx, geo-block) and auth failures are raised at once;
- a 429 answered with an HTML page, or any garbage body, never reaches a JSON parser's traceback.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from pt_errors import ExchangeAuthError, PermanentExchangeError, TemporaryExchangeError

log = logging.getLogger(__name__)

Check = Callable[[Any, requests.Response], None]
"""A venue's own check of a parsed body (e.g. KuCoin's ``code``); raises pt_errors."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: float = 0.25  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = min(self.max_delay, self.base_delay * 2**attempt)
        backoff *= 1 + rng.uniform(-self.jitter, self.jitter)
        return float(max(backoff, retry_after or 0.0))


class RateLimiter:
    """Token bucket: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1  # may go negative: the wait pays it back
        if wait > 0:
            self._sleep(wait)
        return wait


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The venue's own wait hint: ``Retry-After`` (seconds) or ``gw-ratelimit-reset`` (ms)."""
    for name, scale in (("Retry-After", 1.0), ("gw-ratelimit-reset", 0.001)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def _venue_message(response: requests.Response) -> str:
    """The venue's error text if the body says one, else a short excerpt; never a traceback."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        return (text[:120] + "…") if len(text) > 120 else text or "(empty body)"
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
            return "; ".join(str(e.get("message") or e.get("id") or e) for e in errors)
        for key in ("msg", "message", "error_description", "error", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                code = body.get("code")
                return f"{body[key]} (code {code})" if code not in (None, "") else body[key]
    return json.dumps(body)[:120]


def translate_status(what: str, response: requests.Response) -> None:
    """Raise the project's error for a failed HTTP status; return for 2xx."""
    status = response.status_code
    if status < 400:
        return
    reason = f"{what}: HTTP {status}: {_venue_message(response)}"
    if status in (429, 418) or status >= 500:
        raise TemporaryExchangeError(reason, retry_after=retry_after_seconds(response.headers))
    if status == 401:
        raise ExchangeAuthError(reason + " (check the API key and its permissions)")
    if status == 451:
        raise PermanentExchangeError(reason + " (the venue refuses this location; use another)")
    raise PermanentExchangeError(reason)


class HttpClient:
    """GET JSON from one venue with its rate limit, timeout and retry policy."""

    def __init__(
        self,
        venue: str,
        base_url: str,
        *,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, check: Check | None = None
    ) -> Any:
        """The parsed body of ``GET base_url + path``, after retries; raises pt_errors."""
        what = f"{self.venue} {path}"
        last: TemporaryExchangeError | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                assert last is not None
                wait = self.retry.delay(attempt - 1, last.retry_after, self._rng)
                if wait > self.retry.max_delay:
                    raise last  # a long ban: better to ask another venue than to sleep
                log.info("%s: %s; retrying in %.1f s", what, last, wait)
                self._sleep(wait)
            try:
                return self._once(what, path, params, check)
            except TemporaryExchangeError as exc:
                last = exc
        assert last is not None
        raise TemporaryExchangeError(
            f"{last} (gave up after {self.retry.attempts} attempts)", retry_after=last.retry_after
        ) from last

    def _once(
        self, what: str, path: str, params: Mapping[str, Any] | None, check: Check | None
    ) -> Any:
        if self.limiter:
            self.limiter.acquire()
        started = time.perf_counter()
        try:
            response = self.session.get(self.base_url + path, params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise TemporaryExchangeError(f"{what}: no answer within {self.timeout} s") from exc
        except requests.RequestException as exc:
            raise TemporaryExchangeError(f"{what}: connection failed: {exc}") from exc
        log.debug(
            "%s -> %s in %.0f ms",
            what,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            extra={
                "fields": {"timing": "http", "venue": self.venue, "status": response.status_code}
            },
        )
        translate_status(what, response)
        try:
            body = response.json()
        except ValueError as exc:
            raise TemporaryExchangeError(f"{what}: answer is not JSON (cut off?)") from exc
        if check:
            check(body, response)
        return body
