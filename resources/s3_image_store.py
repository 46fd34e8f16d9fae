"""The image store on any S3-compatible service: AWS S3, Cloudflare R2, Alibaba OSS, MinIO, SeaweedFS.

`ZIMAGE_STORAGE_URL=s3://bucket/prefix` selects it; the connection (endpoint URL, region,
credentials, retry budget) is a dagster-aws `S3Resource` nested in the store, so secrets reach it
as `EnvVar`s and the Dagster UI shows variable names, never keys. The boto3 client adds what an
image pipeline needs on top: short connect/read timeouts, botocore's "standard" retry mode
(throttling, 5xx and dropped connections are retried with backoff), SigV4 signing, and
checksums only where required (several S3-compatible services reject the optional ones).

Keys stay those of `zimage_assets.domain.storage_keys` (content-addressed image keys, immutable
public keys) under the store's prefix. `copy` is a server-side copy. `url` is the CDN URL when a
public base URL is configured, else a presigned GET URL that expires. `check_writable` runs before
any GPU work and turns wrong credentials, a missing bucket or an unreachable endpoint into one
clear message.

Also here, for the other S3 users of the project: `read_s3_uri` (catalog sources given as
`s3://bucket/key`) and `list_s3_objects` (key, ETag, size, last-modified under a prefix).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.exceptions
from botocore.config import Config
from dagster import EnvVar
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from resources.image_store import ImageStore, StoreError, content_type_for
from zimage_assets.domain.storage_keys import validate_key

# SigV4 presigned URLs cannot live longer than 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# Content-addressed areas never change under a key: CDNs and browsers may keep them for a year.
IMMUTABLE_AREAS = ("images/", "public/")
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

_CREDENTIAL_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "InvalidToken",
    "403",
    "Forbidden",
}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


class S3ImageStore(ImageStore):
    """Objects under `s3://bucket/prefix` on an S3-compatible service."""

    bucket: str = Field(description="Bucket name")
    prefix: str = Field(default="", description="Key prefix inside the bucket ('' = the bucket's root)")
    s3: S3Resource = Field(description="Connection: endpoint URL, region, credentials (EnvVar), max_attempts")
    addressing_style: str = Field(default="auto", description="auto | path | virtual (path for most self-hosted services)")
    presign_expiry_seconds: int = Field(
        default=MAX_PRESIGN_SECONDS, ge=1, le=MAX_PRESIGN_SECONDS, description="Lifetime of presigned GET URLs"
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="TCP connect timeout per attempt")
    read_timeout_seconds: float = Field(default=60.0, gt=0, description="Read timeout per attempt")

    _client_obj: Any = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # ---- construction ----

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        public_base_url: str = "",
        s3: S3Resource | None = None,
        **options: Any,
    ) -> "S3ImageStore":
        bucket, prefix = parse_s3_uri(url, what="ZIMAGE_STORAGE_URL")
        return cls(bucket=bucket, prefix=prefix, s3=s3 or S3Resource(), public_base_url=public_base_url, **options)

    # ---- the ImageStore interface ----

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        extra = {"CacheControl": IMMUTABLE_CACHE_CONTROL} if key.startswith(IMMUTABLE_AREAS) else {}
        self._call("put", key, "put_object", Key=self._key(key), Body=data, ContentType=content_type, **extra)

    def get(self, key: str) -> bytes:
        response = self._call("get", key, "get_object", Key=self._key(key))
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._client().head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                return False
            raise self._error("check", key, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error("check", key, exc) from None

    def delete(self, key: str) -> None:
        self._call("delete", key, "delete_object", Key=self._key(key))

    def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy: the bytes never leave the service."""
        extra = {"CacheControl": IMMUTABLE_CACHE_CONTROL, "MetadataDirective": "REPLACE"} if target_key.startswith(IMMUTABLE_AREAS) else {}
        if extra:  # REPLACE drops the source's metadata, so the content type is set again
            extra["ContentType"] = content_type_for(target_key)
        self._call(
            "copy",
            target_key,
            "copy_object",
            Key=self._key(target_key),
            CopySource={"Bucket": self.bucket, "Key": self._key(source_key)},
            **extra,
        )

    def url(self, key: str) -> str:
        if self.public_base_url:
            return self._public_url(key)
        try:
            return self._client().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=self.presign_expiry_seconds
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error("presign", key, exc) from None

    def location(self) -> str:
        root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{root} at {self.endpoint()}"

    def endpoint(self) -> str:
        return _value(self.s3.endpoint_url) or "AWS S3" + (f" ({_value(self.s3.region_name)})" if self.s3.region_name else "")

    def check_writable(self) -> None:
        """The bucket exists, the credentials are accepted, and a probe object round-trips."""
        try:
            self._client().head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            # A HEAD response has no body, so no error code: a listing says what is wrong
            # (SignatureDoesNotMatch, InvalidAccessKeyId, AccessDenied, NoSuchBucket).
            exc = self._detailed(exc)
            if _code(exc) in _MISSING_KEY_CODES | _MISSING_BUCKET_CODES:
                raise StoreError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint()}: create it, or fix ZIMAGE_STORAGE_URL"
                ) from None
            raise self._error("open", "", exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error("open", "", exc) from None
        super().check_writable()
        self.delete("health/write-probe")

    # ---- plumbing ----

    def _detailed(self, exc: botocore.exceptions.ClientError) -> botocore.exceptions.ClientError:
        try:
            self._client().list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except botocore.exceptions.ClientError as detailed:
            return detailed
        except botocore.exceptions.BotoCoreError:
            pass
        return exc

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _client(self):
        if self._client_obj is None:
            with self._client_lock:
                if self._client_obj is None:
                    self._client_obj = make_s3_client(
                        self.s3,
                        addressing_style=self.addressing_style,
                        connect_timeout=self.connect_timeout_seconds,
                        read_timeout=self.read_timeout_seconds,
                    )
        return self._client_obj

    def _call(self, what: str, key: str, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client(), operation)(Bucket=self.bucket, **params)
        except botocore.exceptions.ClientError as exc:
            if what == "get" and _code(exc) in _MISSING_KEY_CODES:
                raise StoreError(f"{self.location()}: no object {key!r}") from None
            raise self._error(what, key, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(what, key, exc) from None

    def _error(self, what: str, key: str, exc: Exception) -> StoreError:
        target = f"s3://{self.bucket}/{self._key(key) if key else ''}".rstrip("/")
        return StoreError(describe_s3_error(exc, f"cannot {what} {target} at {self.endpoint()}", self.s3))


# ---- the connection ----


def make_s3_client(s3: S3Resource, *, addressing_style: str = "auto", connect_timeout: float = 5.0, read_timeout: float = 60.0):
    """A boto3 S3 client from a dagster-aws `S3Resource` (EnvVars resolved), with timeouts and retries."""
    if addressing_style not in ("auto", "path", "virtual"):
        raise ValueError(f"addressing style {addressing_style!r}: use auto, path or virtual")
    session = boto3.session.Session(profile_name=_value(s3.profile_name))
    config = Config(
        signature_version="s3v4",
        retries={"max_attempts": s3.max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        s3={"addressing_style": addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client(
        "s3",
        region_name=_value(s3.region_name),
        endpoint_url=_value(s3.endpoint_url),
        use_ssl=s3.use_ssl,
        verify=s3.verify,
        aws_access_key_id=_value(s3.aws_access_key_id),
        aws_secret_access_key=_value(s3.aws_secret_access_key),
        aws_session_token=_value(s3.aws_session_token),
        config=config,
    )


def s3_resource_from_settings(settings) -> S3Resource:
    """The project's S3 connection from `Settings`: endpoint, region, credentials as EnvVars."""
    from zimage_assets.settings import as_env_var

    return S3Resource(
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region or None,
        aws_access_key_id=as_env_var("ZIMAGE_S3_ACCESS_KEY_ID", settings.s3_access_key_id),
        aws_secret_access_key=as_env_var("ZIMAGE_S3_SECRET_ACCESS_KEY", settings.s3_secret_access_key),
        max_attempts=settings.s3_max_attempts,
    )


def s3_store_options(settings) -> dict[str, Any]:
    """Everything `S3ImageStore.from_url` needs besides the URL, from `Settings`."""
    return {
        "s3": s3_resource_from_settings(settings),
        "addressing_style": settings.s3_addressing_style,
        "presign_expiry_seconds": min(settings.presign_expiry_seconds, MAX_PRESIGN_SECONDS),
    }


def _settings_client(s3: S3Resource | None):
    """A client for `s3`, or for the project's settings (ZIMAGE_S3_*) when none is given."""
    style = "auto"
    if s3 is None:
        from zimage_assets.settings import Settings

        settings = Settings.from_env()
        s3, style = s3_resource_from_settings(settings), settings.s3_addressing_style
    return make_s3_client(s3, addressing_style=style), s3


# ---- helpers for other S3 users (catalog sources, catalog-drop sensors) ----


def parse_s3_uri(uri: str, *, what: str = "S3 URI") -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"), with a clear error otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{what}={uri!r}: expected s3://bucket/prefix")
    if parsed.query or parsed.fragment:
        raise ValueError(f"{what}={uri!r}: an S3 URI has no query or fragment")
    return parsed.netloc, parsed.path.strip("/")


def read_s3_uri(uri: str, *, s3: S3Resource | None = None) -> bytes:
    """The bytes of `s3://bucket/key`; connection from `s3` or the project's settings."""
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise StoreError(f"{uri!r} names a bucket, not an object")
    client, s3 = _settings_client(s3)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in _MISSING_KEY_CODES:
            raise StoreError(f"{uri} does not exist at {_value(s3.endpoint_url) or 'AWS S3'}") from None
        raise StoreError(describe_s3_error(exc, f"cannot read {uri}", s3)) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise StoreError(describe_s3_error(exc, f"cannot read {uri}", s3)) from None


def list_s3_objects(prefix_uri: str, *, s3: S3Resource | None = None) -> list[dict[str, Any]]:
    """Every object under `s3://bucket/prefix`, sorted by key.

    Each entry: `key` (inside the bucket), `uri`, `etag` (without quotes), `size` (bytes),
    `last_modified` (timezone-aware datetime). Lists page by page (1,000 keys per request).
    """
    bucket, prefix = parse_s3_uri(prefix_uri)
    client, s3 = _settings_client(s3)
    out: list[dict[str, Any]] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out.append(
                    {
                        "key": obj["Key"],
                        "uri": f"s3://{bucket}/{obj['Key']}",
                        "etag": obj["ETag"].strip('"'),
                        "size": int(obj["Size"]),
                        "last_modified": obj["LastModified"],
                    }
                )
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in _MISSING_BUCKET_CODES:
            raise StoreError(f"bucket {bucket!r} does not exist at {_value(s3.endpoint_url) or 'AWS S3'}") from None
        raise StoreError(describe_s3_error(exc, f"cannot list {prefix_uri}", s3)) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise StoreError(describe_s3_error(exc, f"cannot list {prefix_uri}", s3)) from None
    return sorted(out, key=lambda o: o["key"])


# ---- errors ----


def describe_s3_error(exc: Exception, doing: str, s3: S3Resource) -> str:
    """One sentence a person can act on, naming what failed, where, and what to check."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _CREDENTIAL_CODES:
            key_id = _value(s3.aws_access_key_id)
            who = f"access key {key_id[:4]}..." if key_id else "boto3's default credentials"
            return (
                f"{doing}: the service refused the credentials ({code}{': ' + message if message else ''}) for {who}. "
                "Check ZIMAGE_S3_ACCESS_KEY_ID / ZIMAGE_S3_SECRET_ACCESS_KEY and the key's permissions on the bucket."
            )
        if code in _MISSING_BUCKET_CODES:
            return f"{doing}: the bucket does not exist; create it, or fix ZIMAGE_STORAGE_URL"
        return f"{doing}: {code} (HTTP {status}){': ' + message if message else ''}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return f"{doing}: no credentials found; set ZIMAGE_S3_ACCESS_KEY_ID and ZIMAGE_S3_SECRET_ACCESS_KEY"
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)):
        return f"{doing}: the endpoint cannot be reached ({exc}); check ZIMAGE_S3_ENDPOINT_URL and the network"
    return f"{doing}: {type(exc).__name__}: {exc}"


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _value(value: Any) -> Any:
    """A field that may still be an unresolved `EnvVar` (the resource used outside a run)."""
    if isinstance(value, EnvVar):
        return value.get_value()
    return value


def last_modified_utc(entry: dict[str, Any]) -> datetime:
    """`last_modified` of a `list_s3_objects` entry as a naive UTC datetime (the project's convention)."""
    from datetime import timezone

    return entry["last_modified"].astimezone(timezone.utc).replace(tzinfo=None)
