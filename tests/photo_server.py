"""A real HTTP server on 127.0.0.1 for the photo fetcher's tests: photos, 404s, 5xx, slow answers,
redirects (to the same host, to loopback by another name), oversized and odd files.

Every bad input of the photo-first path is made here from a real photo of the sample (AFL-3.0,
zimage_assets/sample_data/README.md): CMYK, 16-bit, palette with transparency, animated GIF, SVG,
a declared 30000x30000 PNG (a decompression bomb), truncated and corrupt JPEGs, the product pasted
on a busy background. The server counts requests per path and answers If-None-Match with 304.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zlib
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO / "zimage_assets" / "sample_data" / "media"
PHOTO = MEDIA / "m" / "s" / "ms09-blue_main.jpg"
BACK = MEDIA / "m" / "s" / "ms09-blue_back.jpg"


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def busy_background_photo() -> bytes:
    """The sample's product photo with its white background replaced by coloured stripes and noise."""
    rgb = np.asarray(Image.open(PHOTO).convert("RGB")).copy()
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = np.stack([(np.sin(xx / 9.0) * 100 + 120), (np.cos(yy / 13.0) * 90 + 110), ((xx + yy) % 200)], axis=2)
    busy = np.clip(stripes + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    background = rgb.min(axis=2) > 235
    rgb[background] = busy[background]
    return _encode(Image.fromarray(rgb), "JPEG", quality=90)


def bad_files() -> dict[str, tuple[bytes, str]]:
    """path -> (body, content type) of every file the server serves."""
    photo = Image.open(PHOTO).convert("RGB")
    jpeg = PHOTO.read_bytes()
    small = photo.resize((photo.width // 4, photo.height // 4))
    palette = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = palette.getpixel((0, 0))  # the white background's index
    frames = [small.convert("P"), small.rotate(5).convert("P")]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    grey16 = Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257).astype(np.uint16))
    return {
        "/media/ok.jpg": (jpeg, "image/jpeg"),
        "/media/back.jpg": (BACK.read_bytes(), "image/jpeg"),
        "/media/cmyk.jpg": (_encode(photo.convert("CMYK"), "JPEG", quality=92), "image/jpeg"),
        "/media/grey16.png": (_encode(grey16, "PNG"), "image/png"),
        "/media/palette.png": (_encode(palette, "PNG", transparency=palette.info["transparency"]), "image/png"),
        "/media/animated.gif": (animated.getvalue(), "image/gif"),
        "/media/vector.svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><image href="http://169.254.169.254/"/></svg>', "image/svg+xml"),
        "/media/bomb.png": (png_with_declared_size(30000, 30000), "image/png"),
        "/media/truncated.jpg": (jpeg[: len(jpeg) // 2], "image/jpeg"),
        "/media/corrupt.jpg": (jpeg[:200] + bytes(range(256)) * 40, "image/jpeg"),
        "/media/notes.txt": (b"this is not an image", "text/plain"),
        "/media/busy.jpg": (busy_background_photo(), "image/jpeg"),
    }


class PhotoServer:
    """`url(path)`; `hits[path]` counts requests; `not_modified[path]` counts 304 answers."""

    def __init__(self, slow_seconds: float = 3.0) -> None:
        self.files = bad_files()
        self.hits: dict[str, int] = {}
        self.not_modified: dict[str, int] = {}
        self.fail_first: dict[str, int] = {}  # path -> how many 503s to give before answering
        self.slow_seconds = slow_seconds
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                if server.fail_first.get(path, 0) > 0:
                    server.fail_first[path] -= 1
                    return self._send(503, b"busy", "text/plain")
                if path == "/media/server-error.jpg":
                    return self._send(500, b"oops", "text/plain")
                if path == "/media/slow.jpg":
                    time.sleep(server.slow_seconds)
                    return self._send(200, server.files["/media/ok.jpg"][0], "image/jpeg")
                if path == "/media/huge.jpg":  # declares more than any limit, sends little
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(10 * 1024 * 1024 * 1024))
                    self.end_headers()
                    self.wfile.write(b"\xff\xd8\xff" + b"\x00" * 1024)
                    return
                if path == "/media/redirect-ok.jpg":
                    return self._redirect("/media/ok.jpg")
                if path == "/media/redirect-loopback.jpg":  # the same machine under another name
                    return self._redirect(f"http://localhost:{server.port}/media/ok.jpg")
                if path == "/media/redirect-metadata.jpg":
                    return self._redirect("http://169.254.169.254/latest/meta-data/")
                if path == "/media/redirect-loop.jpg":
                    return self._redirect("/media/redirect-loop.jpg")
                if path not in server.files:
                    return self._send(404, b"not found", "text/plain")
                body, kind = server.files[path]
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    server.not_modified[path] = server.not_modified.get(path, 0) + 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self._send(200, body, kind, etag)

            def _redirect(self, target: str) -> None:
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, body: bytes, kind: str, etag: str = "") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def replace(self, path: str, body: bytes) -> None:
        self.files[path] = (body, self.files.get(path, (b"", "image/jpeg"))[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
