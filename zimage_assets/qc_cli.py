"""`zimage-qc`: audit images and prompts outside any run, with the same gates as the pipeline.

    zimage-qc images [--profile NAME] [--mode strict|smoke] FILE...
    zimage-qc prompts FILE            (one prompt per line; - reads standard input)
    zimage-qc main-image PHOTO... --out DIR [--profile main] [--size 1024]

`main-image` runs the photo path without Dagster: each merchant photo is cut out (ZIMAGE_SEGMENTER),
placed on pure white, centred, at the profile's fill, and judged by the same gates as the pipeline
(with the product-preservation gate). PASS images are written to DIR/<name>_main.png, REVIEW ones
to DIR/review/; an unsure cut-out or an unusable file writes nothing. One JSON line per photo:
{"input", "verdict", "reasons", "fill", "mask_confidence", "output", "scores"}.

One JSON line per input: {"input", "verdict": PASS|REVIEW|BLOCK, "reasons": [codes], "scores"}
(plus "fixes" where a compliance fix would apply, "details" for humans, "error" for files that
could not be read). Works on any photos, not only generated ones: corrupt, truncated, empty,
tiny, huge, CMYK, 16-bit and transparent files each get a verdict, never a crash.

Exit status: 0 when every input is PASS, 1 when any is REVIEW or BLOCK, 2 on a usage error.
Settings: the ZIMAGE_* variables (term lists, NSFW thresholds, prompt length); see docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MAX_FILE_BYTES = 256 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader went away (`zimage-qc prompts FILE | head`): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    from zimage_assets.domain.compliance import PROFILES

    parser = argparse.ArgumentParser(prog="zimage-qc", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    images = sub.add_parser("images", help="check image files (quality, compliance profile, NSFW)")
    images.add_argument("files", nargs="+", metavar="FILE")
    images.add_argument("--profile", default="none", choices=sorted(PROFILES), help="marketplace compliance profile (default: none)")
    images.add_argument("--mode", default="strict", choices=["strict", "smoke"], help="quality mode (default: strict)")
    prompts = sub.add_parser("prompts", help="check prompts, one per line of FILE (- for standard input)")
    prompts.add_argument("file", metavar="FILE")
    main_image = sub.add_parser("main-image", help="make compliant main images from merchant photos (no model)")
    main_image.add_argument("files", nargs="+", metavar="PHOTO")
    main_image.add_argument("--out", required=True, metavar="DIR", help="folder for the images")
    main_image.add_argument("--profile", default="main", choices=sorted(PROFILES), help="marketplace compliance profile (default: main)")
    main_image.add_argument("--size", type=int, default=1024, help="square output size in px (default 1024)")
    args = parser.parse_args(argv)

    try:
        gates = _gates()
    except ValueError as exc:  # a bad ZIMAGE_* value
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "images":
        return _images(gates, args.files, args.profile, args.mode)
    if args.command == "main-image":
        return _main_images(gates, _segmenter(), args.files, Path(args.out), args.profile, args.size)
    return _prompts(gates, args.file)


def _gates():
    from resources import quality_gates_from_settings
    from zimage_assets.settings import Settings

    return quality_gates_from_settings(Settings.from_env())


def _segmenter():
    from resources import segmenter_from_settings
    from zimage_assets.settings import Settings

    return segmenter_from_settings(Settings.from_env())


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _record(label: str, row: dict, **extra) -> dict:
    scores = dict(row["scores"])
    details = scores.pop("details", None)
    fixes = scores.pop("fixes", None)
    scores.pop("reason_verdicts", None)
    record = {"input": label, "verdict": row["verdict"], "reasons": row["reasons"], "scores": scores, **extra}
    if fixes:
        record["fixes"] = fixes
    if details:
        record["details"] = details
    return record


def _images(gates, files: list[str], profile: str, mode: str) -> int:
    from resources.image_safety import ImageSafetyError

    worst = 0
    for name in files:
        path = Path(name)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise IsADirectoryError(f"{name} is not a file")
            if size > MAX_FILE_BYTES:
                _emit({"input": name, "verdict": "BLOCK", "reasons": ["file_too_large"], "scores": {"bytes": size},
                       "error": f"{size:,} bytes is more than {MAX_FILE_BYTES:,}; not read"})
                worst = 1
                continue
            data = path.read_bytes()
        except OSError as exc:
            _emit({"input": name, "verdict": "BLOCK", "reasons": ["unreadable_file"], "scores": {}, "error": f"{type(exc).__name__}: {exc}"})
            worst = 1
            continue
        try:
            result = gates.assess_image(data, profile=profile, mode=mode)
        except ImageSafetyError as exc:  # the classifier itself is broken: stop, do not pass images unscored
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop the audit of the others
            _emit({"input": name, "verdict": "BLOCK", "reasons": ["assessment_error"], "scores": {}, "error": f"{type(exc).__name__}: {exc}"})
            worst = 1
            continue
        row = result.assessment.as_row()
        extra = {"error": row["scores"]["details"][row["reasons"][0]]} if row["reasons"] and row["scores"].get("bytes") is not None else {}
        _emit(_record(name, row, **extra))
        if row["verdict"] != "PASS":
            worst = 1
    return worst


def _main_images(gates, segmenter, files: list[str], out: Path, profile: str, size: int) -> int:
    from zimage_assets.domain.compliance import TARGET_FILL, get_profile
    from zimage_assets.domain.cutout import CutoutError
    from zimage_assets.domain.encoding import to_png
    from zimage_assets.domain.compositing import PlacementRequest, photo_image
    from zimage_assets.domain.preservation import layout_of
    from zimage_assets.domain.source_decoding import PhotoRefused, decode_photo

    if size < 16:
        print("error: --size must be at least 16", file=sys.stderr)
        return 2
    fill = max(TARGET_FILL, get_profile(profile).min_fill)
    worst = 0
    for name in files:
        record = {"input": name, "verdict": "BLOCK", "reasons": [], "fill": None, "mask_confidence": None, "output": None, "scores": {}}
        try:
            path = Path(name)
            if path.stat().st_size > MAX_FILE_BYTES:
                raise PhotoRefused("photo_too_large", f"more than {MAX_FILE_BYTES:,} bytes; not read")
            photo = decode_photo(path.read_bytes())
            cut = segmenter.cut(photo)
        except OSError as exc:
            record.update(reasons=["unreadable_file"], error=f"{type(exc).__name__}: {exc}")
        except PhotoRefused as exc:
            record.update(reasons=[exc.code], error=exc.detail)
        except CutoutError as exc:
            record.update(reasons=[exc.code], error=str(exc))
        else:
            record["mask_confidence"] = cut.confidence
            if cut.confidence < segmenter.min_confidence:
                record.update(verdict="REVIEW", reasons=["mask_unsure"], error="; ".join(cut.reasons) or "unsure cut-out")
            else:
                rgb, placement = photo_image(cut.rgba, cut.touches, (size, size), PlacementRequest(fill))
                png = to_png(rgb)
                row = gates.assess_composite(png, view=None, profile=profile, mode="photo", expected_size=(size, size), cutout_rgba=cut.rgba,
                                             placement=placement, notes=photo.notes).assessment.as_row()
                folder = out if row["verdict"] == "PASS" else out / "review" if row["verdict"] == "REVIEW" else None
                target = None
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / f"{path.stem}_main.png"
                    target.write_bytes(png)
                record = _record(name, row, fill=round(layout_of(placement)[0], 4), mask_confidence=cut.confidence,
                                 output=str(target) if target else None)
        _emit(record)
        if record["verdict"] != "PASS":
            worst = 1
    return worst


def _prompts(gates, name: str) -> int:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {name}: {exc}", file=sys.stderr)
        return 2
    try:
        gates.terms()
    except ValueError as exc:  # a broken term list (ZIMAGE_SAFETY_TERMS_DIR)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worst = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = gates.assess_prompt(line).as_row()
        _emit(_record(line, row, line=number))
        if row["verdict"] != "PASS":
            worst = 1
    return worst


if __name__ == "__main__":
    sys.exit(main())
