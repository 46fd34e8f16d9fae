"""Fetching and decoding source photos: a real HTTP server on 127.0.0.1, real files, real S3 (SeaweedFS).

Every bad input gets a reason code; nothing is read that the rules refuse (SSRF)."""

from __future__ import annotations

import os

import pytest

from photo_server import MEDIA, PhotoServer
from resources.photo_source import PhotoSource
from zimage_assets.domain.media_refs import MediaRoot, RefRefused, address_refusal, resolve
from zimage_assets.domain.source_decoding import PhotoRefused, decode_photo


@pytest.fixture(scope="module")
def server():
    srv = PhotoServer(slow_seconds=3.0)
    yield srv
    srv.stop()


def _http_source(server: PhotoServer, **fields) -> PhotoSource:
    options = {"media_root": server.url("/media"), "allowed_hosts": ["127.0.0.1", "localhost"], "private_hosts": ["127.0.0.1"],
               "timeout_seconds": 1.0, "max_attempts": 2, "backoff_seconds": 0.05, **fields}
    return PhotoSource(**options)


def test_photos_over_http_and_conditional_refetch(server):
    source = _http_source(server)
    first = source.fetch("ok.jpg")
    assert first.status == "ok" and first.data[:3] == b"\xff\xd8\xff" and first.identity.startswith('http:"')
    again = source.fetch("ok.jpg", first.identity)  # unchanged: the server answers 304, nothing downloaded
    assert again.status == "not_modified" and again.data == b"" and server.not_modified["/media/ok.jpg"] == 1
    followed = source.fetch("redirect-ok.jpg")
    assert followed.status == "ok" and followed.location.endswith("/media/ok.jpg")
    absolute = source.fetch(server.url("/media/back.jpg"))  # an absolute URL to an allowed host
    assert absolute.status == "ok"


@pytest.mark.parametrize(
    "ref, code",
    [
        ("missing.jpg", "photo_not_found"),  # 404
        ("server-error.jpg", "photo_server_error"),  # 5xx, after bounded retries
        ("slow.jpg", "photo_timeout"),
        ("huge.jpg", "photo_too_large"),  # declared length over the limit
        ("redirect-loopback.jpg", "photo_address_refused"),  # redirect to loopback by another name
        ("redirect-metadata.jpg", "photo_host_not_allowed"),  # redirect to the cloud metadata address
        ("redirect-loop.jpg", "photo_too_many_redirects"),
        ("file:///etc/passwd", "photo_scheme_refused"),
        ("../../etc/passwd", "photo_path_escapes_root"),
        ("a/%2e%2e/%2e%2e/etc/passwd", "photo_path_escapes_root"),
        ("https://evil.example.com/x.jpg", "photo_host_not_allowed"),
        ("data:image/png;base64,AAAA", "photo_scheme_refused"),
    ],
)
def test_every_fetch_failure_has_its_reason(server, ref, code):
    before = dict(server.hits)
    got = _http_source(server).fetch(ref)
    assert (got.status, got.reason) == ("unusable", code), got
    assert got.detail
    if code == "photo_server_error":
        assert server.hits["/media/server-error.jpg"] - before.get("/media/server-error.jpg", 0) == 2  # bounded retries
    if code in ("photo_scheme_refused", "photo_path_escapes_root", "photo_host_not_allowed") and "redirect" not in ref:
        assert server.hits == before  # refused before any request


def test_a_transient_503_is_retried_and_loopback_needs_the_private_list(server):
    server.fail_first["/media/back.jpg"] = 1
    got = _http_source(server).fetch("back.jpg")
    assert got.status == "ok" and got.attempts == 2
    refused = _http_source(server, private_hosts=[]).fetch("ok.jpg")
    assert refused.reason == "photo_address_refused" and "loopback" in refused.detail
    assert address_refusal("169.254.169.254", "metadata", []) and address_refusal("10.0.0.5", "nas", [])
    assert address_refusal("::ffff:127.0.0.1", "x", []) and address_refusal("93.184.216.34", "example.com", []) is None


def test_a_folder_media_root_never_lets_a_reference_out(tmp_path):
    root = tmp_path / "media"
    (root / "m").mkdir(parents=True)
    (root / "m" / "a.jpg").write_bytes((MEDIA / "m" / "s" / "ms09-blue_main.jpg").read_bytes())
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.jpg", root / "m" / "link.jpg")
    source = PhotoSource(media_root=str(root), max_bytes=200_000)
    first = source.fetch("/m/a.jpg")
    assert first.status == "ok" and source.fetch("/m/a.jpg", first.identity).status == "not_modified"
    assert source.fetch("/m/link.jpg").reason == "photo_path_escapes_root"  # a symlink out of the root
    assert source.fetch("/m/nope.jpg").reason == "photo_not_found"
    assert PhotoSource(media_root=str(root), max_bytes=1000).fetch("/m/a.jpg").reason == "photo_too_large"
    assert PhotoSource(media_root="").fetch("/m/a.jpg").reason == "no_media_root"
    with pytest.raises(RefRefused):
        resolve("..\\..\\win.ini", MediaRoot.parse(str(root)), [])


def test_an_s3_media_root(project_env, s3_env, seaweedfs):
    from resources import build_resources
    from zimage_assets.settings import Settings

    env = s3_env()
    client = seaweedfs.client()
    client.put_object(Bucket=env["bucket"], Key="catalog/product/m/s/ms09-blue_main.jpg", Body=(MEDIA / "m" / "s" / "ms09-blue_main.jpg").read_bytes())
    os.environ["ZIMAGE_MEDIA_ROOT"] = f"s3://{env['bucket']}/catalog/product"
    try:
        source = build_resources(Settings.from_env())["photo_source"]
    finally:
        del os.environ["ZIMAGE_MEDIA_ROOT"]
    got = source.fetch("/m/s/ms09-blue_main.jpg")
    assert got.status == "ok" and got.identity.startswith("s3:")
    assert source.fetch("/m/s/ms09-blue_main.jpg", got.identity).status == "not_modified"
    assert source.fetch("/m/s/missing.jpg").reason == "photo_not_found"


def test_decoding_refuses_or_converts_each_odd_file(server):
    files = server.files
    for path, code in [("/media/vector.svg", "photo_svg_refused"), ("/media/bomb.png", "photo_too_many_pixels"),
                       ("/media/truncated.jpg", "photo_truncated"), ("/media/corrupt.jpg", "photo_corrupt"),
                       ("/media/notes.txt", "photo_not_an_image")]:
        with pytest.raises(PhotoRefused) as refused:
            decode_photo(files[path][0])
        assert refused.value.code == code, path
    assert decode_photo(files["/media/cmyk.jpg"][0]).notes == ["converted_cmyk"]
    assert decode_photo(files["/media/grey16.png"][0]).notes == ["converted_16bit"]
    palette = decode_photo(files["/media/palette.png"][0])
    assert palette.notes == ["converted_palette_transparency"] and palette.alpha is not None  # its transparency is a cut-out
    assert decode_photo(files["/media/animated.gif"][0]).notes[0] == "first_frame_of_animation"  # the first frame, said so
    plain = decode_photo(files["/media/ok.jpg"][0])
    assert plain.notes == [] and plain.alpha is None and plain.size == (1274, 1580)
