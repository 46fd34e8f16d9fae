"""`zimage-qc`, the console script installed by the package, on real photos, bad files and prompts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import SHARED

PHOTOS = SHARED / "photos" / "magento"
SCRIPT = Path(sys.executable).parent / "zimage-qc"


def _run(*args: str, stdin: str | None = None, env: dict | None = None) -> tuple[int, list[dict], str]:
    assert SCRIPT.is_file(), "zimage-qc is installed with the package ([project.scripts])"
    proc = subprocess.run([str(SCRIPT), *args], input=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr


def test_images_mixed_with_bad_files_give_one_line_each(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes((PHOTOS / "ms03-black_main.jpg").read_bytes()[:4000])
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    Image.fromarray(np.asarray(Image.open(PHOTOS / "wb01-black-0.jpg"))).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    files = [str(PHOTOS / "ms03-black_main.jpg"), str(tmp_path / "empty.jpg"), str(tmp_path / "truncated.jpg"),
             str(tmp_path / "one.png"), str(tmp_path / "cmyk.jpg"), str(tmp_path / "missing.png"), str(tmp_path)]
    code, lines, stderr = _run("images", *files)
    assert code == 1, stderr
    by_input = {line["input"]: line for line in lines}
    assert list(by_input) == files  # one line per input, in order
    for line in lines:
        assert set(line) >= {"input", "verdict", "reasons", "scores"} and line["verdict"] in ("PASS", "REVIEW", "BLOCK")
    assert by_input[files[0]]["verdict"] == "PASS" and by_input[files[0]]["scores"]["nsfw"] < 0.6
    assert by_input[files[1]]["reasons"] == ["empty_file"] and "0 bytes" in by_input[files[1]]["error"]
    assert by_input[files[2]]["reasons"] == ["truncated_image"]
    assert by_input[files[3]]["reasons"] == ["image_too_small"]
    assert by_input[files[4]]["verdict"] == "PASS"
    assert by_input[files[5]]["reasons"] == ["unreadable_file"] and "No such file" in by_input[files[5]]["error"]
    assert by_input[files[6]]["reasons"] == ["unreadable_file"]


def test_images_with_a_profile_report_fixes_and_exit_0_when_all_pass(tmp_path):
    code, lines, stderr = _run("images", "--profile", "main", str(PHOTOS / "wb01-black-0.jpg"))
    assert code == 0, stderr
    (line,) = lines
    assert line["verdict"] == "PASS" and line["scores"]["profile"] == "main"
    assert "cropped_to_fill" in line["fixes"]

    blurred = tmp_path / "blurred.png"
    import cv2

    Image.fromarray(cv2.GaussianBlur(np.asarray(Image.open(PHOTOS / "wb01-black-0.jpg")), (0, 0), 3)).save(blurred)
    code, lines, _ = _run("images", str(blurred))
    assert code == 1 and lines[0]["verdict"] == "REVIEW" and lines[0]["reasons"] == ["blurry"]


def test_prompts_one_per_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("Studio photo of a black hoodie\n\np 0 r n photo\n性感少女\nsexy evening dress\n", encoding="utf-8")
    code, lines, _ = _run("prompts", str(path))
    assert code == 1
    assert [(line["line"], line["verdict"]) for line in lines] == [(1, "PASS"), (3, "BLOCK"), (4, "BLOCK"), (5, "REVIEW")]
    assert lines[1]["reasons"] == ["unsafe_sexual"] and lines[1]["input"] == "p 0 r n photo"
    code, lines, _ = _run("prompts", "-", stdin="Leather tote bag on white\n")
    assert code == 0 and lines[0]["verdict"] == "PASS"


def test_user_term_lists_and_usage_errors(tmp_path):
    (tmp_path / "brands.txt").write_text("acme\n", encoding="utf-8")
    code, lines, _ = _run("prompts", "-", stdin="Acme mug\n", env={"ZIMAGE_SAFETY_TERMS_DIR": str(tmp_path)})
    assert code == 1 and lines[0]["reasons"] == ["unsafe_brands"]
    code, _, stderr = _run("prompts", "-", stdin="x\n", env={"ZIMAGE_SAFETY_TERMS_DIR": str(tmp_path / "nope")})
    assert code == 2 and "does not exist" in stderr
    code, _, stderr = _run("images", "--profile", "amazon", "x.png")
    assert code == 2 and "invalid choice" in stderr
