"""Where a catalog's photo reference may be read from: the rules, without any I/O.

A reference is untrusted catalog text. It becomes a location only through these rules:

- A relative reference (Magento's ``/m/h/mh01-gray_main.jpg``, ``lamps/p1.jpg``) resolves under
  the media root (``ZIMAGE_MEDIA_ROOT``): a folder, an ``s3://bucket/prefix``, or an
  ``https://`` (or ``http://``) base URL. Segments ``..``, backslashes, control characters and
  percent-encoded dots or slashes are refused (``photo_path_escapes_root``); a folder root is
  checked again after symlinks are resolved by the fetcher.
- An absolute ``http(s)://`` URL (``//host/x`` counts as https) is allowed only to a host on
  ``ZIMAGE_MEDIA_ALLOWED_HOSTS`` (exact names; ``.example.com`` allows subdomains), or to the
  host of an http(s) media root (``photo_host_not_allowed``).
- Every other scheme is refused: ``file://``, ``data:``, ``ftp://``, ``s3://`` outside the media
  root ... (``photo_scheme_refused``).
- An address a host resolves to, on every request and every redirect, must be public: loopback,
  private, link-local (cloud metadata), unspecified, multicast and reserved addresses are refused
  (``photo_address_refused``), unless the host is on ``ZIMAGE_MEDIA_PRIVATE_HOSTS`` (a media
  server on your own network).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from zimage_assets.domain.webhooks import host_allowed

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED_TRAVERSAL = re.compile(r"%(2e|2f|5c|00)", re.I)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.I)


class RefRefused(ValueError):
    """The reference may not be read; `code` is the reason code."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Location:
    """Where to read a photo: `kind` is `file` (a path), `s3` (bucket, key) or `http` (a URL)."""

    kind: str
    target: str  # path, s3://bucket/key, or URL

    def __str__(self) -> str:
        return self.target


@dataclass(frozen=True)
class MediaRoot:
    """ZIMAGE_MEDIA_ROOT parsed: kind `none`, `file`, `s3` or `http`."""

    kind: str
    base: str  # folder path, s3://bucket/prefix (no trailing /), or base URL (no trailing /)

    @classmethod
    def parse(cls, value: str) -> "MediaRoot":
        value = (value or "").strip()
        if not value:
            return cls("none", "")
        if value.startswith("s3://"):
            return cls("s3", value.rstrip("/"))
        if value.startswith(("https://", "http://")):
            parts = urlsplit(value)
            if not parts.hostname:
                raise ValueError(f"ZIMAGE_MEDIA_ROOT={value!r}: a base URL needs a host")
            return cls("http", value.rstrip("/"))
        if value.startswith("file://"):
            value = value[len("file://"):]
        if _SCHEME.match(value) and not re.match(r"^[A-Za-z]:[\\/]", value):
            raise ValueError(f"ZIMAGE_MEDIA_ROOT={value!r}: use a folder, s3://bucket/prefix or an https:// base URL")
        return cls("file", value)

    @property
    def host(self) -> str:
        return (urlsplit(self.base).hostname or "").lower() if self.kind == "http" else ""


def relative_parts(ref: str) -> list[str]:
    """The path segments of a relative reference, or RefRefused when it could leave the root."""
    if _CONTROL.search(ref) or "\\" in ref:
        raise RefRefused("photo_path_escapes_root", f"{ref!r} has control characters or backslashes")
    if _ENCODED_TRAVERSAL.search(ref):
        raise RefRefused("photo_path_escapes_root", f"{ref!r} has percent-encoded dots or slashes")
    path = ref.split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise RefRefused("photo_path_escapes_root", f"{ref!r} leaves the media root")
    normal = posixpath.normpath("/" + "/".join(parts)).lstrip("/")
    if normal.split("/") != parts:
        raise RefRefused("photo_path_escapes_root", f"{ref!r} is not a plain relative path")
    return parts


def resolve(ref: str, root: MediaRoot, allowed_hosts: tuple[str, ...] | list[str]) -> Location:
    """The location a reference reads from (rules in the module docstring), or RefRefused."""
    ref = (ref or "").strip()
    if not ref:
        raise RefRefused("photo_missing", "empty reference")
    if ref.startswith("//"):
        ref = "https:" + ref
    scheme = _SCHEME.match(ref)
    if scheme and not re.match(r"^[A-Za-z]:[\\/]", ref):
        name = scheme.group(1).lower()
        if name not in ("http", "https"):
            raise RefRefused("photo_scheme_refused", f"{name}:// references are refused ({ref[:120]!r})")
        return Location("http", check_url(ref, root, allowed_hosts))
    parts = relative_parts(ref)
    if root.kind == "none":
        raise RefRefused("no_media_root", f"{ref!r} is relative and ZIMAGE_MEDIA_ROOT is not set")
    if root.kind == "file":
        return Location("file", posixpath.join(root.base, *parts))
    if root.kind == "s3":
        return Location("s3", root.base + "/" + "/".join(parts))
    return Location("http", root.base + "/" + "/".join(quote(unquote(p), safe="-._~!$&'()*+,;=:@") for p in parts))


def check_url(url: str, root: MediaRoot, allowed_hosts: tuple[str, ...] | list[str]) -> str:
    """`url` when its scheme and host are allowed (also used for every redirect), else RefRefused."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise RefRefused("photo_bad_url", f"{url[:120]!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RefRefused("photo_scheme_refused", f"{url[:120]!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise RefRefused("photo_bad_url", f"{url[:120]!r} carries credentials")
    allowed = list(allowed_hosts) + ([root.host] if root.host else [])
    if not host_allowed(host, allowed):
        raise RefRefused("photo_host_not_allowed", f"host {host!r} is not in ZIMAGE_MEDIA_ALLOWED_HOSTS ({', '.join(allowed_hosts) or 'empty'})")
    return url


def address_refusal(address: str, host: str, private_hosts: tuple[str, ...] | list[str]) -> str | None:
    """Why connecting to `address` (which `host` resolved to) is refused, or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    kind = next((name for name, flag in (
        ("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("private", ip.is_private),
        ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast), ("reserved", ip.is_reserved),
    ) if flag), None)
    if kind is None or host_allowed(host, list(private_hosts)):
        return None
    return f"host {host!r} resolves to {kind} address {ip}; only hosts on ZIMAGE_MEDIA_PRIVATE_HOSTS may"
