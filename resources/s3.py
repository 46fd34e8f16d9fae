"""S3 plumbing shared by every S3 user of the project: the image store and the catalog source.

One place for the client (timeouts, retries, SigV4, checksums only where required: several
S3-compatible services reject the optional ones), `s3://bucket/prefix` URIs, reading and
listing objects, and the translation of botocore errors into one sentence a person can act on
(`s3_errors`, a context manager). The connection itself is a dagster-aws `S3Resource`, so
secrets reach it as `EnvVar`s and the Dagster UI shows variable names, never keys.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import urlparse

import boto3
import botocore.exceptions
from botocore.config import Config
from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from resources.image_store import StoreError

ADDRESSING_STYLES = ("auto", "path", "virtual")

CREDENTIAL_CODES = frozenset(
    {
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
)
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


# ---- the connection ----


def make_s3_client(s3: S3Resource, *, addressing_style: str = "auto", connect_timeout: float = 5.0, read_timeout: float = 60.0):
    """A boto3 S3 client from a dagster-aws `S3Resource` (EnvVars resolved), with timeouts and retries."""
    if addressing_style not in ADDRESSING_STYLES:
        raise ValueError(f"addressing style {addressing_style!r}: use auto, path or virtual")
    session = boto3.session.Session(profile_name=resolved(s3.profile_name))
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
        region_name=resolved(s3.region_name),
        endpoint_url=resolved(s3.endpoint_url),
        use_ssl=s3.use_ssl,
        verify=s3.verify,
        aws_access_key_id=resolved(s3.aws_access_key_id),
        aws_secret_access_key=resolved(s3.aws_secret_access_key),
        aws_session_token=resolved(s3.aws_session_token),
        config=config,
    )


def endpoint_of(s3: S3Resource) -> str:
    """The service's endpoint for messages: the URL, or AWS S3 with its region."""
    return resolved(s3.endpoint_url) or "AWS S3" + (f" ({resolved(s3.region_name)})" if s3.region_name else "")


def resolved(value: Any) -> Any:
    """A field that may still be an unresolved `EnvVar` (the resource used outside a run)."""
    if isinstance(value, EnvVar):
        return value.get_value()
    return value


# ---- URIs ----


def parse_s3_uri(uri: str, *, what: str = "S3 URI") -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"), with a clear error otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{what}={uri!r}: expected s3://bucket/prefix")
    if parsed.query or parsed.fragment:
        raise ValueError(f"{what}={uri!r}: an S3 URI has no query or fragment")
    return parsed.netloc, parsed.path.strip("/")


# ---- reading and listing (catalog sources, watched catalog locations) ----


def read_s3_uri(uri: str, s3: S3Resource, *, addressing_style: str = "auto") -> bytes:
    """The bytes of `s3://bucket/key`."""
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise StoreError(f"{uri!r} names a bucket, not an object")
    client = make_s3_client(s3, addressing_style=addressing_style)
    with s3_errors(f"cannot read {uri}", s3, not_found=f"{uri} does not exist at {endpoint_of(s3)}"):
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def list_s3_objects(prefix_uri: str, s3: S3Resource, *, addressing_style: str = "auto") -> list[dict[str, Any]]:
    """Every object under `s3://bucket/prefix`, sorted by key.

    Each entry: `key` (inside the bucket), `uri`, `etag` (without quotes), `size` (bytes),
    `last_modified` (timezone-aware datetime). Lists page by page (1,000 keys per request).
    """
    bucket, prefix = parse_s3_uri(prefix_uri)
    client = make_s3_client(s3, addressing_style=addressing_style)
    out: list[dict[str, Any]] = []
    missing_bucket = f"bucket {bucket!r} does not exist at {endpoint_of(s3)}"
    with s3_errors(f"cannot list {prefix_uri}", s3, not_found=missing_bucket, missing_codes=MISSING_BUCKET_CODES):
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
    return sorted(out, key=lambda o: o["key"])


def last_modified_utc(entry: dict[str, Any]) -> datetime:
    """`last_modified` of a `list_s3_objects` entry as a naive UTC datetime (the project's convention)."""
    return entry["last_modified"].astimezone(timezone.utc).replace(tzinfo=None)


# ---- errors ----


@contextmanager
def s3_errors(doing: str, s3: S3Resource, *, not_found: str = "", missing_codes: frozenset = MISSING_KEY_CODES) -> Iterator[None]:
    """Turn any botocore error inside the block into a `StoreError` with one actionable sentence.

    `doing` says what was attempted ("cannot read s3://..."); `not_found`, when given, is the whole
    message for an error whose code is in `missing_codes` (a missing key, or a missing bucket).
    """
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if not_found and error_code(exc) in missing_codes:
            raise StoreError(not_found) from None
        raise StoreError(describe_s3_error(exc, doing, s3)) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise StoreError(describe_s3_error(exc, doing, s3)) from None


def describe_s3_error(exc: Exception, doing: str, s3: S3Resource) -> str:
    """One sentence a person can act on, naming what failed, where, and what to check."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in CREDENTIAL_CODES:
            key_id = resolved(s3.aws_access_key_id)
            who = f"access key {key_id[:4]}..." if key_id else "boto3's default credentials"
            return (
                f"{doing}: the service refused the credentials ({code}{': ' + message if message else ''}) for {who}. "
                "Check ZIMAGE_S3_ACCESS_KEY_ID / ZIMAGE_S3_SECRET_ACCESS_KEY and the key's permissions on the bucket."
            )
        if code in MISSING_BUCKET_CODES:
            return f"{doing}: the bucket does not exist; create it, or fix ZIMAGE_STORAGE_URL"
        return f"{doing}: {code} (HTTP {status}){': ' + message if message else ''}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return f"{doing}: no credentials found; set ZIMAGE_S3_ACCESS_KEY_ID and ZIMAGE_S3_SECRET_ACCESS_KEY"
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)):
        return f"{doing}: the endpoint cannot be reached ({exc}); check ZIMAGE_S3_ENDPOINT_URL and the network"
    return f"{doing}: {type(exc).__name__}: {exc}"


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
