"""Photo-first end to end: real Dagster runs over the sample's real photos (AFL-3.0), the tiny
Z-Image's inpaint pipeline built with from_pipe, a batch mixing photo, scene and text views."""

from __future__ import annotations

import csv
import io
import json
import shutil

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, Project, metadata_of

PHOTO_TEMPLATES = FIXTURES / "templates_photo.yaml"
TEE, TEE_TOO, SHORTS, NO_PHOTO = "MS09-M-Blue", "MS09-L-Blue", "WSH08-28-Purple", "MH01-XS-Black"


def photo_project(monkeypatch, instance, **env) -> Project:
    from resources import build_resources
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_TEMPLATES", str(PHOTO_TEMPLATES))
    monkeypatch.delenv("ZIMAGE_ILLUSTRATIVE_REVIEW", raising=False)  # the default: text images go to REVIEW
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Project(build_resources(Settings.from_env()), instance)


def run_with_checks(project: Project, batch_id: str):
    from zimage_assets.assets.images import product_images
    from zimage_assets.assets.prompts import product_prompts
    from zimage_assets.assets.publish import published_images
    from zimage_assets.assets.source_photos import source_photos
    from zimage_assets.checks import QUALITY_CHECKS

    return project.generate(batch_id, assets=[product_prompts, source_photos, product_images, published_images, *QUALITY_CHECKS])


def _rgb(project: Project, key: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(project.store.get(key))).convert("RGB"))


def _rgba(project: Project, key: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(project.store.get(key))).convert("RGBA"))


@pytest.fixture
def mixed(project_env, monkeypatch, instance):
    project = photo_project(monkeypatch, instance)
    project.ingest()
    (batch_id,) = project.mint(skus=[TEE, TEE_TOO, SHORTS, NO_PHOTO])
    result = run_with_checks(project, batch_id)
    return project, batch_id, result


def test_a_batch_mixing_photo_scene_and_text_views(mixed):
    from zimage_assets.domain import compliance, preservation
    from zimage_assets.domain.compositing import Placement

    project, batch_id, result = mixed
    db = project.state_db
    sources = db.item_sources(batch_id)
    assert {v: sources[(TEE, v)]["mode"] for v in ("front", "back", "lifestyle", "detail")} == {
        "front": "photo", "back": "photo", "lifestyle": "scene", "detail": "text"}
    assert sources[(TEE, "back")]["ref"] == "/m/s/ms09-blue_back.jpg" and sources[(TEE, "back")]["role"] == "back"
    assert sources[(NO_PHOTO, "front")]["mode"] == "text" and sources[(NO_PHOTO, "front")]["reason"].startswith("photo_not_found")
    photos = metadata_of(result, "source_photos")
    assert photos["modes"] == {"photo": 6, "scene": 3, "text": 7} and photos["fallbacks_to_text"] == 3
    assert photos["downloaded"] == 4 and photos["cutouts_made"] == 4  # two SKUs share their photos: each fetched and cut once
    records = {(r["sku"], r["ref"]): r for r in db.source_photo_records([TEE, TEE_TOO, NO_PHOTO])}
    assert records[(TEE_TOO, "/m/s/ms09-blue_main.jpg")]["sha256"] == records[(TEE, "/m/s/ms09-blue_main.jpg")]["sha256"]  # a record per SKU x photo
    assert records[(TEE, "/m/s/ms09-blue_main.jpg")]["storage_key"].startswith("sources/")
    assert (records[(TEE, "/m/s/ms09-blue_main.jpg")]["width"], records[(TEE, "/m/s/ms09-blue_main.jpg")]["status"]) == (1274, "ok")
    assert records[(NO_PHOTO, "/m/h/mh01-black_main.jpg")]["status"] == "unusable"

    receipts = {(r["sku"], r["view"]): r for r in db.receipts(batch_id)}
    made = db.provenance(batch_id)
    verdicts = {(f["sku"], f["view"]): f for f in db.final_verdicts(batch_id)}
    front = receipts[(TEE, "front")]
    assert front["model_id"] == "none" and front["steps"] == 0 and (front["width"], front["height"]) == (1024, 1024)
    assert receipts[(TEE, "lifestyle")]["model_id"] == "tiny-random-zimage"
    assert {k[1]: (p["mode"], p["generated"], p["illustrative"]) for k, p in made.items() if k[0] == TEE} == {
        "front": ("photo", False, False), "back": ("photo", False, False), "lifestyle": ("scene", True, False), "detail": ("text", True, True)}
    assert receipts[(TEE, "front")]["sha256"] == receipts[(TEE_TOO, "front")]["sha256"]  # one look, one image
    assert metadata_of(result, "product_images")["modes"] == {"photo": 6, "scene": 3, "text": 7}

    # Pixel-exact preservation of the real product, in the photo and in the painted scene.
    for view in ("front", "back", "lifestyle"):
        provenance = made[(TEE, view, 0)]
        cutout = db.cutouts([(provenance["source_sha256"], provenance["mask_method"], provenance["mask_version"])])
        (record,) = cutout.values()
        measured = preservation.measure(_rgb(project, receipts[(TEE, view)]["storage_key"]), _rgba(project, record["cutout_key"]),
                                        Placement.from_dict(provenance["placement"]))
        assert measured["max_abs_diff"] == 0 and measured["ssim"] == 1.0 and measured["product_pixels"] > 1000, (view, measured)
    # The main image passes the `main` profile: pure white, filled, square, >= 1000 px; and PASSes every gate.
    main = _rgb(project, receipts[(TEE, "front")]["storage_key"])
    checked, _ = compliance.assess_compliance(main, compliance.PROFILES["main"], fix=False)
    assert checked.findings == [] and (main[0, 0] == 255).all()
    assert verdicts[(TEE, "front")]["verdict"] == "PASS" and verdicts[(TEE, "back")]["verdict"] == "PASS"
    # Text images are illustrative: REVIEW by default; a photo view that fell back says why.
    assert verdicts[(TEE, "detail")]["verdict"] == "REVIEW" and "illustrative" in verdicts[(TEE, "detail")]["reasons"]
    assert {"illustrative", "photo_fallback"} <= set(verdicts[(NO_PHOTO, "front")]["reasons"])

    manifest = {(r["sku"], r["view"]): r for r in csv.DictReader(io.StringIO(project.store.get(f"manifests/{batch_id}/manifest.csv").decode()))}
    assert (manifest[(TEE, "front")]["mode"], manifest[(TEE, "front")]["generated"], manifest[(TEE, "front")]["source_photo"]) == (
        "photo", "False", "/m/s/ms09-blue_main.jpg")
    assert manifest[(TEE, "front")]["source_sha256"] == made[(TEE, "front", 0)]["source_sha256"]
    assert (TEE, "detail") not in manifest  # REVIEW: not published

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    kept = checks["product_preservation"]
    assert kept.metadata["max_abs_diff"].value == 0 and json.loads(json.dumps(kept.metadata["modes"].value)) == {"photo": 6, "scene": 3, "text": 7}
    assert "data:image/jpeg;base64," in metadata_of(result, "product_images")["contact_sheet"]


def test_an_unchanged_photo_is_a_cache_hit_and_is_not_fetched_again(mixed):
    project, batch_id, _ = mixed
    (second,) = project.mint(skus=[TEE, SHORTS])
    result = run_with_checks(project, second)
    photos = metadata_of(result, "source_photos")
    assert photos["downloaded"] == 0 and photos["not_modified"] == photos["photos"] == 4 and photos["cutouts_made"] == 0
    images = metadata_of(result, "product_images")
    assert images["generated"] == 0 and images["cache_hits"] == 8


def test_a_changed_photo_regenerates_and_a_changed_reference_re_mints(project_env, monkeypatch, instance, tmp_path):
    media = tmp_path / "media"
    shutil.copytree(FIXTURES.parent.parent / "zimage_assets" / "sample_data" / "media", media)
    catalog = tmp_path / "shop.csv"
    catalog.write_text("sku,title,category,color,image,image_back\nTEE-1,Tee,Men/Tops,Blue,m/s/ms09-blue_main.jpg,m/s/ms09-blue_back.jpg\n")
    project = photo_project(monkeypatch, instance, ZIMAGE_MEDIA_ROOT=str(media), ZIMAGE_CATALOG_SOURCE=str(catalog))
    project.ingest(catalog, fmt="generic")
    (first,) = project.mint(skus=["TEE-1"])
    run_with_checks(project, first)
    before = {r["view"]: r["spec_hash"] for r in project.state_db.receipts(first)}

    # The merchant replaces the photo under the same name: fetched again, new sha256, new specs.
    flipped = Image.open(media / "m" / "s" / "ms09-blue_main.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flipped.save(media / "m" / "s" / "ms09-blue_main.jpg", quality=90)
    (second,) = project.mint(skus=["TEE-1"])
    result = run_with_checks(project, second)
    after = {r["view"]: r["spec_hash"] for r in project.state_db.receipts(second)}
    assert metadata_of(result, "source_photos")["downloaded"] == 1  # the back photo did not change
    assert after["front"] != before["front"] and after["lifestyle"] != before["lifestyle"] and after["back"] == before["back"]
    assert metadata_of(result, "product_images")["generated"] == 2  # front and scene made again; back and detail from the cache

    # The catalog names another photo: the SKU's content changed, so it is new work for the sensor.
    catalog.write_text("sku,title,category,color,image,image_back\nTEE-1,Tee,Men/Tops,Blue,m/s/msh09-blue_main.jpg,m/s/ms09-blue_back.jpg\n")
    counts = metadata_of(project.ingest(catalog, fmt="generic"), "sku_catalog")
    assert counts["changed_skus"] == 1
    assert [r["sku"] for r in project.state_db.skus_needing_images(10)] == ["TEE-1"]


def test_a_scene_without_the_composite_would_be_blocked(mixed):
    """The gate is real: the inpainting's own product pixels (before compositing) fail it."""
    from resources.scene_painter import SceneJob, paint
    from zimage_assets.domain import preservation
    from zimage_assets.domain.compositing import PlacementRequest, scene_canvas
    from zimage_assets.domain.specs import build_spec

    project, batch_id, _ = mixed
    made = project.state_db.provenance(batch_id)[(TEE, "lifestyle", 0)]
    (record,) = project.state_db.cutouts([(made["source_sha256"], made["mask_method"], made["mask_version"])]).values()
    rgba = _rgba(project, record["cutout_key"])
    start, mask, _, placement = scene_canvas(rgba, record["touches"], (128, 128), PlacementRequest(0.6, (0.5, 0.55), True))
    generator = project.resources["generator"]
    spec = build_spec(generator.model_info(), prompt="a beach", negative_prompt="", width=128, height=128, seed=1)
    (painted,) = list(paint(generator, [SceneJob("x", spec, start, mask)]))
    gates = project.resources["quality_gates"]
    verdict = preservation.assess(painted.image, rgba, placement, gates.profile_for("lifestyle"))
    assert verdict.verdict == "BLOCK" and verdict.reasons == ["product_altered"]


BAD_INPUTS = {  # reference -> the reason recorded when the SKU falls back to text
    "missing.jpg": "photo_not_found",
    "server-error.jpg": "photo_server_error",
    "slow.jpg": "photo_timeout",
    "huge.jpg": "photo_too_large",
    "notes.txt": "photo_not_an_image",
    "corrupt.jpg": "photo_corrupt",
    "truncated.jpg": "photo_truncated",
    "vector.svg": "photo_svg_refused",
    "bomb.png": "photo_too_many_pixels",
    "busy.jpg": "mask_unsure",
    "https://not-allowed.example.com/x.jpg": "photo_host_not_allowed",
    "redirect-loopback.jpg": "photo_address_refused",
    "file:///etc/passwd": "photo_scheme_refused",
    "../../etc/passwd": "photo_path_escapes_root",
}
CONVERTED = {"cmyk.jpg": "REVIEW", "animated.gif": "REVIEW", "grey16.png": "PASS", "palette.png": "PASS"}  # used, with a note


def test_every_bad_input_is_recorded_and_falls_back_to_text_for_review(project_env, monkeypatch, instance, tmp_path):
    from photo_server import PhotoServer

    server = PhotoServer(slow_seconds=3.0)
    try:
        refs = list(BAD_INPUTS) + list(CONVERTED)
        catalog = tmp_path / "bad.csv"
        with catalog.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sku", "title", "category", "image"])
            writer.writerows([[f"BAD-{i:02d}", f"Thing {i}", "Gear/Misc", ref] for i, ref in enumerate(refs)])
        templates = tmp_path / "front_only.yaml"
        templates.write_text('version: "bad-1"\nviews:\n  front: {mode: photo, photos: [main], width: 256, height: 256, prompt: "Photo of {subject}."}\n'
                             'categories:\n  "*": [front]\n')
        project = photo_project(
            monkeypatch, instance, ZIMAGE_MEDIA_ROOT=server.url("/media"), ZIMAGE_MEDIA_ALLOWED_HOSTS="127.0.0.1,localhost",
            ZIMAGE_MEDIA_PRIVATE_HOSTS="127.0.0.1", ZIMAGE_MEDIA_TIMEOUT_SECONDS="1", ZIMAGE_MEDIA_MAX_ATTEMPTS="2",
            ZIMAGE_MEDIA_MAX_BYTES=str(5 * 1024 * 1024), ZIMAGE_CATALOG_SOURCE=str(catalog), ZIMAGE_TEMPLATES=str(templates),
            ZIMAGE_VIEW_PROFILES="front=none")  # small frames keep the text fallbacks quick; the main profile is tested above
        project.ingest(catalog, fmt="generic")
        (batch_id,) = project.mint(skus=[f"BAD-{i:02d}" for i in range(len(refs))])
        run_with_checks(project, batch_id)
    finally:
        server.stop()

    db = project.state_db
    sources = {sku: s for (sku, _), s in db.item_sources(batch_id).items()}
    records = {r["sku"]: r for r in db.source_photo_records(sources)}
    verdicts = {f["sku"]: f for f in db.final_verdicts(batch_id)}
    for i, ref in enumerate(refs):
        sku = f"BAD-{i:02d}"
        if ref in BAD_INPUTS:
            code = BAD_INPUTS[ref]
            assert sources[sku]["mode"] == "text" and sources[sku]["reason"].startswith(code), (ref, sources[sku]["reason"])
            assert records[sku]["status"] == "unusable" and records[sku]["reason"].startswith(code), (ref, records[sku])
            assert verdicts[sku]["verdict"] == "REVIEW" and {"illustrative", "photo_fallback"} <= set(verdicts[sku]["reasons"]), ref
        else:
            assert sources[sku]["mode"] == "photo" and records[sku]["status"] == "converted", (ref, records[sku])
            assert verdicts[sku]["verdict"] == CONVERTED[ref], (ref, verdicts[sku]["reasons"])
    assert "first_frame_of_animation" in records[f"BAD-{refs.index('animated.gif'):02d}"]["reason"]  # the first frame, said so
