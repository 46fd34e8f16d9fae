"""The image store on any S3-compatible service: AWS S3, Cloudflare R2, Alibaba OSS, MinIO, SeaweedFS.

`ZIMAGE_STORAGE_URL=s3://bucket/prefix` selects it; the connection (endpoint URL, region,
credentials, retry budget) is a dagster-aws `S3Resource` nested in the store, so secrets reach it
as `EnvVar`s. The client, URIs and error messages are `resources/s3.py`'s.

Keys stay those of `zimage_assets.domain.storage_keys` (content-addressed image keys, immutable
public keys) under the store's prefix. `copy` is a server-side copy. `url` is the CDN URL when a
public base URL is configured, else a presigned GET URL that expires. `check_writable` runs before
any GPU work and turns wrong credentials, a missing bucket or an unreachable endpoint into one
clear message.
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.exceptions
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from resources.image_store import ImageStore, content_type_for
from resources.s3 import (
    MISSING_BUCKET_CODES,
    MISSING_KEY_CODES,
    endpoint_of,
    error_code,
    make_s3_client,
    parse_s3_uri,
    s3_errors,
)
from zimage_assets.domain.storage_keys import validate_key

# SigV4 presigned URLs cannot live longer than 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# Content-addressed areas never change under a key: CDNs and browsers may keep them for a year.
IMMUTABLE_AREAS = ("images/", "public/")
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


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

    @classmethod
    def from_url(cls, url: str, *, public_base_url: str = "", s3: S3Resource | None = None, **options: Any) -> "S3ImageStore":
        bucket, prefix = parse_s3_uri(url, what="ZIMAGE_STORAGE_URL")
        return cls(bucket=bucket, prefix=prefix, s3=s3 or S3Resource(), public_base_url=public_base_url, **options)

    # ---- the ImageStore interface ----

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        extra = {"CacheControl": IMMUTABLE_CACHE_CONTROL} if key.startswith(IMMUTABLE_AREAS) else {}
        with self._errors("put", key):
            self._client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type, **extra)

    def get(self, key: str) -> bytes:
        with self._errors("get", key, not_found=f"{self.location()}: no object {key!r}"):
            return self._client().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        with self._errors("check", key):
            try:
                self._client().head_object(Bucket=self.bucket, Key=self._key(key))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in MISSING_KEY_CODES:
                    return False
                raise
        return True

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client().delete_object(Bucket=self.bucket, Key=self._key(key))

    def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy: the bytes never leave the service."""
        extra = {"CacheControl": IMMUTABLE_CACHE_CONTROL, "MetadataDirective": "REPLACE"} if target_key.startswith(IMMUTABLE_AREAS) else {}
        if extra:  # REPLACE drops the source's metadata, so the content type is set again
            extra["ContentType"] = content_type_for(target_key)
        with self._errors("copy", target_key):
            self._client().copy_object(
                Bucket=self.bucket,
                Key=self._key(target_key),
                CopySource={"Bucket": self.bucket, "Key": self._key(source_key)},
                **extra,
            )

    def url(self, key: str) -> str:
        if self.public_base_url:
            return self._public_url(key)
        with self._errors("presign", key):
            return self._client().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=self.presign_expiry_seconds
            )

    def location(self) -> str:
        root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{root} at {self.endpoint()}"

    def endpoint(self) -> str:
        return endpoint_of(self.s3)

    def check_writable(self) -> None:
        """The bucket exists, the credentials are accepted, and a probe object round-trips."""
        missing = f"bucket {self.bucket!r} does not exist at {self.endpoint()}: create it, or fix ZIMAGE_STORAGE_URL"
        with self._errors("open", "", not_found=missing, missing_codes=MISSING_KEY_CODES | MISSING_BUCKET_CODES):
            try:
                self._client().head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                # A HEAD response has no body, so no error code: a listing says what is wrong
                # (SignatureDoesNotMatch, InvalidAccessKeyId, AccessDenied, NoSuchBucket).
                raise self._detailed(exc) from None
        super().check_writable()
        self.delete("health/write-probe")

    # ---- plumbing ----

    def _errors(self, what: str, key: str, **kwargs):
        target = f"s3://{self.bucket}/{self._key(key) if key else ''}".rstrip("/")
        return s3_errors(f"cannot {what} {target} at {self.endpoint()}", self.s3, **kwargs)

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
