"""The doctor's own client for LibreChat (``manage.py librechat_doctor``): plain requests, each
answer kept with when it was sent and received, and probe addresses that spend nobody's budget.

* every probe that a per-IP limiter counts carries ``X-Forwarded-For`` with a fresh address
  from the documentation ranges (RFC 5737), so it spends that address's budget, not a user's or
  ours;
* the answers are read, never raised: a check decides what a status means.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from core.logs import outgoing_request_id
from librechat.auth import request_headers

# RFC 5737 documentation networks: never a real client, so probes spend nobody's budget.
_PROBE_NETWORKS = ("192.0.2", "198.51.100", "203.0.113")


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    text: str
    sent_at: float
    received_at: float


@dataclass
class RateLimit:
    limit: int
    remaining: int
    window_s: float | None


@dataclass
class Prober:
    """One doctor run's client. ``reachable`` and ``readyz`` are what the first check saw."""

    timeout_s: float = 5.0
    reachable: bool = True
    readyz: Answer | None = None
    _probe_ips: list[str] = field(default_factory=list)
    _http: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return str(settings.LIBRECHAT_API_URL)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0))
            self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _probe_ip(self) -> str:
        while True:
            ip = f"{random.choice(_PROBE_NETWORKS)}.{random.randint(1, 254)}"  # noqa: S311
            if ip not in self._probe_ips:
                self._probe_ips.append(ip)
                return ip

    def probe_ip(self) -> str:
        """A documentation address not used before in this run."""
        return self._probe_ip()

    def call(
        self,
        method: str,
        url: str,
        *,
        probe_ip: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Raises httpx's errors for a LibreChat that was not reached."""
        sent = request_headers(probe_ip)
        if probe_ip:
            # Whatever LIBRECHAT_FORWARD_CLIENT_IP says: a probe must never count as our address.
            sent["X-Forwarded-For"] = probe_ip
        sent.update(headers or {})
        started = time.time()
        response = self.http.request(method, url, json=json, headers=sent)
        return Answer(response.status_code, response.headers, response.text, started, time.time())


def request_id_header() -> dict[str, str]:
    return {"X-Request-ID": outgoing_request_id()}


def parse_rate(rate: str) -> tuple[int, float]:
    """DRF's ``"20/min"`` as (20, 60.0)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0].lower()]
    return int(count), float(seconds)


def parse_rate_limit(answer: Answer | None) -> RateLimit | None:
    """express-rate-limit's headers: legacy ``X-RateLimit-*`` (reset: epoch seconds, LibreChat's
    default), draft-6 ``RateLimit-*`` or draft-7 ``RateLimit`` (reset: seconds from now)."""
    if answer is None:
        return None
    headers = answer.headers
    try:
        if "x-ratelimit-limit" in headers:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = headers.get("x-ratelimit-reset")
            window = float(reset) - _server_time(answer) if reset else None
        elif "ratelimit-limit" in headers:
            limit = int(headers["ratelimit-limit"])
            remaining = int(headers["ratelimit-remaining"])
            reset = headers.get("ratelimit-reset")
            window = float(reset) if reset else None
        elif "ratelimit" in headers:
            fields = dict(re.findall(r"(limit|remaining|reset)=(\d+)", headers["ratelimit"]))
            limit, remaining = int(fields["limit"]), int(fields["remaining"])
            window = float(fields["reset"]) if "reset" in fields else None
        else:
            return None
    except (KeyError, ValueError):
        return None
    if window is not None:
        # A fresh key's window starts now; LibreChat's windows are whole minutes.
        window = max(round(window / 60), 1) * 60.0 if window >= 30 else max(window, 1.0)
    return RateLimit(limit=limit, remaining=remaining, window_s=window)


def _server_time(answer: Answer) -> float:
    date = answer.headers.get("date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return answer.received_at
