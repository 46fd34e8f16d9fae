"""Webhook rules that need no network: which targets are allowed, how bodies are signed.

A target must be on the allow-list of hosts, use https, and never point at the machine itself or
at link-local addresses (cloud metadata endpoints) unless loopback is explicitly enabled (tests).
So neither catalog data nor a batch's selection can make the system call an arbitrary URL.

Every body is signed like GitHub's webhooks: header `X-Zimage-Signature-256: sha256=<hex>`, the
HMAC-SHA256 of the exact body bytes under the shared secret. Receivers check it with
`verify_signature` (or the same three lines in their language) and drop duplicates by the
`X-Zimage-Delivery` header.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Zimage-Signature-256"
EVENT_HEADER = "X-Zimage-Event"
DELIVERY_HEADER = "X-Zimage-Delivery"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed_hosts: tuple[str, ...] | list[str]) -> bool:
    """Exact host names; an entry starting with '.' also allows its subdomains (`.example.com`)."""
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        entry = entry.lower().rstrip(".")
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def target_error(url: str, allowed_hosts: tuple[str, ...] | list[str], allow_loopback: bool = False) -> str | None:
    """Why this URL may not be called, or None when it may."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http") or not host:
        return f"{url!r} is not an http(s) URL with a host"
    loopback = is_loopback(host)
    if loopback and not allow_loopback:
        return f"{url!r} points at this machine; loopback targets need ZIMAGE_WEBHOOK_ALLOW_LOOPBACK=true (tests only)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and (address.is_link_local or address.is_unspecified or address.is_multicast):
        return f"{url!r} points at a link-local, unspecified or multicast address"
    if parts.scheme != "https" and not loopback:
        return f"{url!r} is not https; only loopback targets in tests may use http"
    if not host_allowed(host, allowed_hosts):
        return f"{url!r}: host {host!r} is not in ZIMAGE_WEBHOOK_ALLOWED_HOSTS ({', '.join(allowed_hosts) or 'empty'})"
    return None


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for these exact bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header_value: str | None) -> bool:
    return bool(header_value) and hmac.compare_digest(sign(body, secret), header_value or "")


def should_retry(status: int | None) -> bool:
    """Connection errors, timeouts, 408, 429 and 5xx are worth another try; other answers are final."""
    return status is None or status in (408, 425, 429) or status >= 500


def backoff_seconds(attempt: int, base: float, cap: float = 300.0) -> float:
    """Delay before attempt number `attempt + 1` (attempt counts from 1): base, 2 base, 4 base, ..."""
    return min(cap, base * (2 ** max(0, attempt - 1)))
