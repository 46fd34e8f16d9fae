"""Fetching the merchant's source photos: the only code that reads a catalog's photo references.

`PhotoSource.fetch(ref, previous)` resolves a reference with the rules of
`zimage_assets/domain/media_refs.py` (under ZIMAGE_MEDIA_ROOT, or an allow-listed absolute URL)
and reads it from a folder, an S3-compatible bucket or over HTTP(S):

- a size limit (ZIMAGE_MEDIA_MAX_BYTES), checked from the declared length and while reading;
- a time limit per attempt (ZIMAGE_MEDIA_TIMEOUT_SECONDS, also for a server that trickles);
- bounded retries with backoff for what may pass (timeouts, dropped connections, 429, 5xx), never
  for a refusal or a 404 (ZIMAGE_MEDIA_MAX_ATTEMPTS);
- redirects followed by hand (at most 5), each target checked again against the allow-list;
- every address a host resolves to is checked before connecting, and the connection goes to that
  checked address (a name cannot resolve to a public address for the check and to 127.0.0.1 for
  the request): loopback, private and link-local addresses only for ZIMAGE_MEDIA_PRIVATE_HOSTS;
- "changed since?": with the previous fetch's identity (ETag / Last-Modified, S3 ETag, file size +
  mtime) an unchanged photo is answered `not_modified` and not downloaded again.

A fetch never raises for a bad photo: it returns a `Fetched` with a reason code and detail.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.s3 import error_code, make_s3_client, parse_s3_uri
from zimage_assets.domain.media_refs import Location, MediaRoot, RefRefused, address_refusal, check_url, resolve
from zimage_assets.settings import DEFAULTS

USER_AGENT = "zimage-catalog-photos/1"
MAX_REDIRECTS = 5
_CHUNK = 65536


@dataclass
class Fetched:
    """What fetching one reference gave. `status`: ok | not_modified | unusable."""

    status: str
    location: str = ""
    data: bytes = b""
    identity: str = ""
    reason: str = ""  # reason code when unusable
    detail: str = ""
    attempts: int = 0

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "not_modified")


class _Retry(Exception):
    """A failure that another attempt may not have: (code, detail)."""


class _Final(Exception):
    """A failure no retry fixes: (code, detail)."""


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class PhotoSource(ConfigurableResource):
    """Where source photos come from and the limits on reading them; see the module docstring."""

    media_root: str = Field(default="", description="Folder, s3://bucket/prefix or https:// base URL that relative references resolve under")
    allowed_hosts: list[str] = Field(default_factory=list, description="Hosts absolute photo URLs may name ('.example.com' = subdomains too)")
    private_hosts: list[str] = Field(default_factory=list, description="Of those, hosts that may resolve to loopback / private addresses")
    max_bytes: int = Field(default=DEFAULTS["media_max_bytes"], ge=1, description="Larger photos are refused")
    timeout_seconds: float = Field(default=DEFAULTS["media_timeout_seconds"], gt=0, description="Per attempt, connecting and reading")
    max_attempts: int = Field(default=DEFAULTS["media_max_attempts"], ge=1, le=10, description="Tries per photo for failures that may pass")
    backoff_seconds: float = Field(default=0.5, ge=0, description="Wait after the first failed attempt; doubles each time")
    s3: S3Resource = Field(default_factory=S3Resource, description="Connection for an s3:// media root")
    s3_addressing_style: str = Field(default="auto", description="auto | path | virtual")

    def root(self) -> MediaRoot:
        return MediaRoot.parse(self.media_root)

    def describe(self) -> str:
        root = self.root()
        return root.base or "(no ZIMAGE_MEDIA_ROOT)"

    def fetch(self, ref: str, previous_identity: str = "") -> Fetched:
        """Read one reference (see the module docstring); `previous_identity` asks "changed since?"."""
        try:
            location = resolve(ref, self.root(), self.allowed_hosts)
        except RefRefused as exc:
            return Fetched("unusable", reason=exc.code, detail=exc.detail)
        attempts = 0
        while True:
            attempts += 1
            try:
                fetched = self._read(location, previous_identity)
                fetched.attempts = attempts
                return fetched
            except RefRefused as exc:
                return Fetched("unusable", location=str(location), reason=exc.code, detail=exc.detail, attempts=attempts)
            except _Final as exc:
                code, detail = exc.args
                return Fetched("unusable", location=str(location), reason=code, detail=detail, attempts=attempts)
            except _Retry as exc:
                code, detail = exc.args
                if attempts >= self.max_attempts:
                    return Fetched("unusable", location=str(location), reason=code, detail=f"{detail} (after {attempts} attempts)", attempts=attempts)
                time.sleep(min(10.0, self.backoff_seconds * (2 ** (attempts - 1))))

    # ---- backends ----

    def _read(self, location: Location, previous: str) -> Fetched:
        if location.kind == "file":
            return self._read_file(location, previous)
        if location.kind == "s3":
            return self._read_s3(location, previous)
        return self._read_http(location.target, previous)

    def _read_file(self, location: Location, previous: str) -> Fetched:
        root = Path(self.root().base).expanduser().resolve()
        path = Path(location.target).expanduser()
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as exc:
            raise _Final("photo_not_found", f"{path}: {exc}") from None
        if root != real and root not in real.parents:
            raise _Final("photo_path_escapes_root", f"{path} resolves outside the media root {root}")
        try:
            stat = real.stat()
        except FileNotFoundError:
            raise _Final("photo_not_found", f"no file {path}") from None
        except OSError as exc:
            raise _Retry("photo_unreachable", f"{path}: {exc.strerror}") from None
        if not real.is_file():
            raise _Final("photo_not_found", f"{path} is not a file")
        if stat.st_size > self.max_bytes:
            raise _Final("photo_too_large", f"{stat.st_size:,} bytes is more than {self.max_bytes:,}")
        identity = f"file:{stat.st_size}-{stat.st_mtime_ns}"
        if previous and previous == identity:
            return Fetched("not_modified", location=str(path), identity=identity)
        with open(real, "rb") as handle:
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise _Final("photo_too_large", f"more than {self.max_bytes:,} bytes")
        return Fetched("ok", location=str(path), data=data, identity=identity)

    def _read_s3(self, location: Location, previous: str) -> Fetched:
        import botocore.exceptions

        bucket, key = parse_s3_uri(location.target, what="photo")
        client = make_s3_client(self.s3, addressing_style=self.s3_addressing_style, connect_timeout=self.timeout_seconds, read_timeout=self.timeout_seconds)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            size = int(head.get("ContentLength") or 0)
            if size > self.max_bytes:
                raise _Final("photo_too_large", f"{size:,} bytes is more than {self.max_bytes:,}")
            identity = "s3:" + str(head.get("ETag") or "").strip('"')
            if previous and previous == identity:
                return Fetched("not_modified", location=location.target, identity=identity)
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            data = body.read(self.max_bytes + 1)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise _Final("photo_not_found", f"{location.target} does not exist") from None
            if code in ("403", "AccessDenied"):
                raise _Final("photo_http_error", f"{location.target}: access denied") from None
            raise _Retry("photo_server_error", f"{location.target}: {code}") from None
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise _Retry("photo_unreachable", f"{location.target}: {type(exc).__name__}: {exc}") from None
        if len(data) > self.max_bytes:
            raise _Final("photo_too_large", f"more than {self.max_bytes:,} bytes")
        return Fetched("ok", location=location.target, data=data, identity=identity)

    def _read_http(self, url: str, previous: str) -> Fetched:
        deadline = time.monotonic() + self.timeout_seconds
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.root(), self.allowed_hosts)
            status, headers, data = self._get(url, previous, deadline)
            if status in (301, 302, 303, 307, 308):
                target = headers.get("location") or ""
                if not target:
                    raise _Final("photo_http_error", f"HTTP {status} without a Location from {url}")
                url = urljoin(url, target)  # checked again at the top of the loop
                continue
            if status == 304:
                return Fetched("not_modified", location=url, identity=previous)
            if status == 200:
                identity = headers.get("etag") or headers.get("last-modified") or ""
                return Fetched("ok", location=url, data=data, identity=f"http:{identity}" if identity else "")
            if status == 404 or status == 410:
                raise _Final("photo_not_found", f"HTTP {status} from {url}")
            if status in (408, 425, 429) or status >= 500:
                raise _Retry("photo_server_error", f"HTTP {status} from {url}")
            raise _Final("photo_http_error", f"HTTP {status} from {url}")
        raise _Final("photo_too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    def _get(self, url: str, previous: str, deadline: float) -> tuple[int, dict, bytes]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self._checked_address(host, port)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retry("photo_timeout", f"no answer from {host} within {self.timeout_seconds:g}s")
        cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        conn = cls(host, port, address, timeout=remaining)
        headers = {"User-Agent": USER_AGENT, "Accept": "image/*"}
        if previous.startswith("http:"):
            validator = previous[len("http:"):]
            headers["If-None-Match" if validator.startswith(('"', "W/")) else "If-Modified-Since"] = validator
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.connect()
            sock = conn.sock  # the response may take it over; its timeout is what bounds a trickle
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            found = {k.lower(): v for k, v in response.getheaders()}
            if response.status != 200:
                return response.status, found, b""
            declared = found.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise _Final("photo_too_large", f"{int(declared):,} bytes declared, more than {self.max_bytes:,}")
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise _Retry("photo_timeout", f"{url} took longer than {self.timeout_seconds:g}s")
                if sock.fileno() != -1:  # closed once the whole body has arrived
                    sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise _Final("photo_too_large", f"more than {self.max_bytes:,} bytes")
                chunks.append(chunk)
            return 200, found, b"".join(chunks)
        except (socket.timeout, TimeoutError):
            raise _Retry("photo_timeout", f"{url} took longer than {self.timeout_seconds:g}s") from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise _Final("photo_unreachable", f"{url}: TLS: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry("photo_unreachable", f"{url}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()

    def _checked_address(self, host: str, port: int) -> str:
        """The first address of `host`, when every address it resolves to may be reached."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise _Retry("photo_unreachable", f"cannot resolve {host!r}: {exc}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            refusal = address_refusal(address, host, self.private_hosts)
            if refusal:
                raise RefRefused("photo_address_refused", refusal)
        return addresses[0]


def content_extension(data: bytes) -> str:
    """The file extension for stored source photo bytes (what they are, not what the URL says)."""
    signatures = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG", "png"), (b"GIF8", "gif"), (b"RIFF", "webp"), (b"II*\x00", "tif"), (b"MM\x00*", "tif"))
    return next((ext for magic, ext in signatures if data.startswith(magic)), "bin")



