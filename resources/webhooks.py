"""Outgoing webhooks: run-failure alerts and batch-completion callbacks, signed, retried and logged.

Events go through an outbox in the project's database (`webhook_deliveries`): whoever notices
something (a run-status sensor) enqueues it, and `WebhookClient.deliver_due` sends what is due.
Each attempt is a row in `webhook_attempts` and a log line. A failed attempt that is worth
retrying (no answer, 408/429/5xx) is retried with exponential backoff: short waits within the
same sensor tick, longer ones on later ticks, up to `max_attempts`; then the delivery is `failed`.
A target that breaks the rules (host not allowed, not https, loopback) is `refused` and never
called. Redirects are not followed, so an allowed host cannot bounce a webhook elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field

from zimage_assets.domain.timestamps import iso_z
from zimage_assets.domain.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    backoff_seconds,
    should_retry,
    sign,
    target_error,
)

USER_AGENT = "zimage-catalog-webhooks/1"
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class AttemptResult:
    http_status: int | None
    error: str  # "" when delivered
    seconds: float

    @property
    def delivered(self) -> bool:
        return not self.error


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 (urllib's signature)
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl!r} refused", headers, fp)


_OPENER = urllib.request.build_opener(_NoRedirects())


class WebhookClient(ConfigurableResource):
    """Where alerts and callbacks go, and how hard to try."""

    alert_urls: list[str] = Field(default_factory=list, description="Run-failure alerts go here")
    callback_urls: list[str] = Field(default_factory=list, description="Batch-completion callbacks go here")
    secret: str = Field(default="", description="HMAC-SHA256 key for the X-Zimage-Signature-256 header")
    allowed_hosts: list[str] = Field(default_factory=list, description="Hosts a webhook may reach ('.example.com' = subdomains too)")
    allow_loopback: bool = Field(default=False, description="Allow http:// to this machine (tests only)")
    timeout_seconds: float = Field(default=5.0, gt=0, description="Per attempt")
    max_attempts: int = Field(default=10, ge=1, description="Attempts before a delivery is given up as failed")
    backoff_base_seconds: float = Field(default=2.0, ge=0, description="Wait after the first failed attempt; doubles each time")
    backoff_cap_seconds: float = Field(default=900.0, ge=0, description="Longest wait between two attempts")
    max_wait_in_tick_seconds: float = Field(default=5.0, ge=0, description="Waits up to this long happen inside one tick")
    tick_budget_seconds: float = Field(default=20.0, gt=0, description="Stop sending after this long; the rest waits for the next tick")

    # ---- policy ----

    def refusal(self, url: str) -> str | None:
        return target_error(url, self.allowed_hosts, self.allow_loopback)

    # ---- outbox ----

    def enqueue(
        self, state_db, *, event: str, event_id: str, data: Mapping[str, Any], urls: Sequence[str], now: datetime, log=None
    ) -> int:
        """Record one event for each URL (once: enqueueing the same event again does nothing).

        URLs that break the rules are recorded as `refused` with the reason and never called.
        """
        body = json.dumps(
            {"event": event, "id": event_id, "created_at": iso_z(now), "data": dict(data)},
            sort_keys=True,
            default=str,
            ensure_ascii=False,
        )
        rows = []
        for url in dict.fromkeys(urls):
            refusal = self.refusal(url)
            if refusal:
                (log or get_dagster_logger()).warning(f"webhook {event} {event_id}: refused target: {refusal}")
            rows.append(
                {
                    "delivery_id": delivery_id(event_id, url),
                    "event_id": event_id,
                    "event": event,
                    "url": url,
                    "body": body,
                    "status": "refused" if refusal else "pending",
                    "attempts": 0,
                    "next_attempt_at": None if refusal else now,
                    "last_status": None,
                    "last_error": refusal or "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        return state_db.enqueue_webhook_deliveries(rows)

    def deliver_due(
        self, state_db, *, now: Callable[[], datetime], limit: int = 50, sleep: Callable[[float], None] = time.sleep, log=None
    ) -> dict[str, int]:
        """Send every due delivery (oldest first) within this tick's time budget; returns counts."""
        log = log or get_dagster_logger()
        started = time.monotonic()
        counts = {"delivered": 0, "failed": 0, "retry_later": 0, "attempts": 0}
        for delivery in state_db.due_webhook_deliveries(now(), limit=limit):
            attempt = delivery["attempts"]
            while True:
                if time.monotonic() - started > self.tick_budget_seconds:
                    return counts
                attempt += 1
                result = self.attempt(delivery["url"], delivery["body"].encode("utf-8"), event=delivery["event"], delivery=delivery["delivery_id"])
                counts["attempts"] += 1
                at = now()
                where = f"webhook {delivery['event']} {delivery['event_id']} -> {delivery['url']} attempt {attempt}/{self.max_attempts}"
                if result.delivered:
                    log.info(f"{where}: delivered (HTTP {result.http_status}, {result.seconds:.2f}s)")
                    state_db.record_webhook_attempt(
                        delivery["delivery_id"], attempt=attempt, at=at, http_status=result.http_status, error="",
                        seconds=result.seconds, status="delivered", next_attempt_at=None,
                    )
                    counts["delivered"] += 1
                    break
                if not should_retry(result.http_status) or attempt >= self.max_attempts:
                    log.error(f"{where}: {result.error}; giving up")
                    state_db.record_webhook_attempt(
                        delivery["delivery_id"], attempt=attempt, at=at, http_status=result.http_status, error=result.error,
                        seconds=result.seconds, status="failed", next_attempt_at=None,
                    )
                    counts["failed"] += 1
                    break
                wait = backoff_seconds(attempt, self.backoff_base_seconds, self.backoff_cap_seconds)
                log.warning(f"{where}: {result.error}; next attempt in {wait:g}s")
                state_db.record_webhook_attempt(
                    delivery["delivery_id"], attempt=attempt, at=at, http_status=result.http_status, error=result.error,
                    seconds=result.seconds, status="pending", next_attempt_at=at + timedelta(seconds=wait),
                )
                if wait > self.max_wait_in_tick_seconds or time.monotonic() - started + wait > self.tick_budget_seconds:
                    counts["retry_later"] += 1
                    break
                sleep(wait)
        return counts

    # ---- one HTTP attempt ----

    def attempt(self, url: str, body: bytes, *, event: str, delivery: str) -> AttemptResult:
        refusal = self.refusal(url)  # checked again: the allow-list may have changed since enqueueing
        if refusal:
            return AttemptResult(http_status=None, error=f"refused: {refusal}", seconds=0.0)
        if not self.secret:
            return AttemptResult(http_status=None, error="refused: no ZIMAGE_WEBHOOK_SECRET to sign with", seconds=0.0)
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: sign(body, self.secret),
                EVENT_HEADER: event,
                DELIVERY_HEADER: delivery,
            },
        )
        started = time.monotonic()
        try:
            with _OPENER.open(request, timeout=self.timeout_seconds) as response:
                response.read(65536)
                return AttemptResult(http_status=response.status, error="", seconds=time.monotonic() - started)
        except urllib.error.HTTPError as exc:
            detail = exc.reason if isinstance(exc.reason, str) else ""
            return AttemptResult(http_status=exc.code, error=f"HTTP {exc.code} {detail}".strip()[:_MAX_ERROR_CHARS], seconds=time.monotonic() - started)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return AttemptResult(http_status=None, error=f"{type(reason).__name__}: {reason}"[:_MAX_ERROR_CHARS], seconds=time.monotonic() - started)


def delivery_id(event_id: str, url: str) -> str:
    return hashlib.sha256(f"{event_id}\n{url}".encode("utf-8")).hexdigest()
