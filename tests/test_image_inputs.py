"""Image files as people hand them in: animated images are refused with a reason (a product
image is still), and no message carries a memory address."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED

PHOTO = SHARED / "photos" / "magento" / "ms03-black_main.jpg"
SCRIPT = Path(sys.executable).parent / "zimage-qc"


def _frames(n: int) -> list[Image.Image]:
    base = np.asarray(Image.open(PHOTO).convert("RGB").resize((400, 500)))
    return [Image.fromarray(np.roll(base, 20 * i, axis=1)) for i in range(n)]


def _animated(fmt: str) -> bytes:
    frames = _frames(3)
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_are_refused_as_animated(fmt):
    from zimage_assets.domain.image_quality import ImageLoadError, load_image

    with pytest.raises(ImageLoadError) as err:
        load_image(_animated(fmt))
    assert err.value.code == "animated_image" and "3 frames" in str(err.value)


def test_a_still_gif_and_png_are_judged_as_usual():
    from zimage_assets.domain.image_quality import load_image

    for fmt in ("GIF", "PNG"):
        buffer = io.BytesIO()
        _frames(1)[0].save(buffer, format=fmt)
        assert load_image(buffer.getvalue()).info["format"] == fmt


def test_zimage_qc_blocks_animated_images_under_the_main_profile_and_shows_no_memory_address(tmp_path):
    (tmp_path / "anim.gif").write_bytes(_animated("GIF"))
    (tmp_path / "anim.png").write_bytes(_animated("PNG"))
    (tmp_path / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    files = [str(tmp_path / n) for n in ("anim.gif", "anim.png", "garbage.jpg")]
    done = subprocess.run([str(SCRIPT), "images", "--profile", "main", *files], capture_output=True, text=True, timeout=120)
    lines = {line["input"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 1, done.stderr
    for name in files[:2]:
        assert lines[name]["verdict"] == "BLOCK" and lines[name]["reasons"] == ["animated_image"]
    assert lines[files[2]]["reasons"] == ["unreadable_image"]
    assert not re.search(r"0x[0-9a-f]{6,}", done.stdout + done.stderr), done.stdout
    assert "not an image format" in lines[files[2]]["error"]
