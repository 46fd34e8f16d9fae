"""The request contract's pure rules, without Dagster or a server: defaults, bounds, seeds,
hashes, idempotency keys, queue messages, deadlines, API keys and how a task's status reads."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from zimage_assets.domain import api_keys
from zimage_assets.domain import requests as rules
from zimage_assets.domain.task_status import task_status
from zimage_assets.domain.templates import parse_templates

LIMITS = rules.Limits(served_models=("z-image-turbo",), max_prompt_chars=100, max_images=10)


def parse(**body):
    return rules.parse_generation_request(body, LIMITS)


def test_every_field_has_its_documented_default():
    request = parse(prompt="a mug")
    assert request.as_dict() == {
        "prompt": "a mug", "negative_prompt": "", "model": "z-image-turbo", "quality": "standard", "width": 1024, "height": 1024,
        "seed": None, "num_images": 1, "priority": "normal", "callback_url": None,
    }  # fmt: skip
    assert {name: spec.default for name, spec in rules.FIELDS.items()}["width"] == 1024


def test_the_same_request_has_the_same_hash_however_it_is_spelled():
    assert parse(prompt="a mug", width=512).request_hash == parse(width=512, prompt="a mug", quality="standard", seed=None).request_hash
    assert parse(prompt="a mug").request_hash != parse(prompt="a mug", callback_url="https://x.example.com/").request_hash


def test_given_seeds_count_up_and_wrap():
    assert parse(prompt="a mug", seed=7, num_images=3).seeds() == [7, 8, 9]
    assert parse(prompt="a mug", seed=rules.MAX_SEED, num_images=2).seeds() == [rules.MAX_SEED, 0]


def test_derived_seeds_depend_on_the_look_only():
    four = parse(prompt="a mug", num_images=4).seeds()
    assert four == parse(prompt="a mug", num_images=4).seeds()  # a retried request makes the same images
    assert parse(prompt="a mug", num_images=2, priority="high", callback_url="https://x.example.com/").seeds() == four[:2]
    assert parse(prompt="a cup", num_images=4).seeds() != four
    assert len(set(four)) == 4 and all(0 <= s <= rules.MAX_SEED for s in four)


def test_items_carry_their_own_prompt_seed_size_and_steps():
    request = parse(prompt="a mug", num_images=2, width=512, height=768, seed=3)
    items = rules.request_items("t1", request, 12)
    assert [(i["sku"], i["view"], i["seed"], i["width"], i["height"], i["steps"]) for i in items] == [
        ("task:t1:0001", "request", 3, 512, 768, 12), ("task:t1:0002", "request", 4, 512, 768, 12)
    ]  # fmt: skip
    assert items[0]["content_hash"] != items[1]["content_hash"]  # each image's retries get their own seeds
    assert rules.request_items("t2", request, 12)[0]["content_hash"] == items[0]["content_hash"]


def test_quality_multiplies_the_models_steps():
    assert [rules.quality_steps(q, 8) for q in ("standard", "high", "ultra")] == [None, 12, 16]
    assert rules.quality_steps("high", 28) == 42


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"prompt": "a", "width": 1000}, "width", "not_multiple_of_16"),
        ({"prompt": "a", "width": 32}, "width", "out_of_range"),
        ({"prompt": "a", "height": 2064}, "height", "out_of_range"),
        ({"prompt": "a", "num_images": 11}, "num_images", "out_of_range"),
        ({"prompt": "a", "seed": 2**31}, "seed", "out_of_range"),
        ({"prompt": "a", "seed": 1.5}, "seed", "invalid_type"),
        ({"prompt": None}, "prompt", "invalid_type"),
        ({"prompt": "a\x00b"}, "prompt", "invalid_characters"),
        ({"prompt": "x" * 101}, "prompt", "too_long"),
        ({"prompt": "a", "negative_prompt": "n" * 2001}, "negative_prompt", "too_long"),
        ({"prompt": "a", "model": "z-image-base"}, "model", "model_not_served"),
        ({"prompt": "a", "callback_url": 5}, "callback_url", "invalid_type"),
        ({"prompt": "a", "extra": 1}, "extra", "unknown_field"),
    ],
)
def test_each_bound_is_refused_naming_its_field(body, field, code):
    with pytest.raises(rules.RequestError) as caught:
        rules.parse_generation_request(body, LIMITS)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert caught.value.as_dict()["message"]


def test_idempotency_keys_belong_to_a_key_and_a_scope():
    body = parse(prompt="a mug").request_hash
    key = rules.idempotency_key("k1", "generate", None, body)
    assert key == rules.idempotency_key("k1", "generate", None, body)
    assert key != rules.idempotency_key("k2", "generate", None, body) != rules.idempotency_key("k1", "regenerate", None, body)
    by_header = rules.idempotency_key("k1", "generate", "order-1", body)
    assert by_header == rules.idempotency_key("k1", "generate", "order-1", parse(prompt="another").request_hash)
    with pytest.raises(rules.RequestError, match="printable"):
        rules.idempotency_key("k1", "generate", "a b", body)


def test_queue_messages_are_parsed_and_their_priority_wins():
    task_id, priority, created, payload = rules.parse_message(
        {"task_id": "pim:42", "priority": "high", "created_at": "2026-11-24T15:05:00+01:00", "payload": {"prompt": "a"}}, "low"
    )
    assert (task_id, priority, created, payload) == ("pim:42", "high", datetime(2026, 11, 24, 14, 5), {"prompt": "a"})
    assert rules.parse_message({"task_id": "x", "created_at": "2026-11-24T14:05:00Z", "payload": {}}, "low")[1] == "low"
    for message, field in (
        ({"created_at": "2026-01-01T00:00:00Z", "payload": {}}, "task_id"),
        ({"task_id": "a/b", "created_at": "2026-01-01T00:00:00Z", "payload": {}}, "task_id"),
        ({"task_id": "a", "payload": {}}, "created_at"),
        ({"task_id": "a", "priority": "asap", "created_at": "2026-01-01T00:00:00Z", "payload": {}}, "priority"),
    ):
        with pytest.raises(rules.RequestError) as caught:
            rules.parse_message(message, "normal")
        assert caught.value.field == field


def test_deadlines_and_served_models_are_read_from_settings_text():
    assert rules.deadline_hours("high=0.5,normal=2,low=24") == {"high": 0.5, "normal": 2.0, "low": 24.0}
    for text in ("high=0.5,normal=2", "high=x,normal=2,low=3", "urgent=1,high=1,normal=2,low=3", "high=0,normal=1,low=1"):
        with pytest.raises(ValueError):
            rules.deadline_hours(text)
    assert [rules.served_models_for(m) for m in ("tiny", "turbo", "base", "/models/Z-Image-Turbo", "org/z-image-omni")] == [
        ("z-image-turbo",), ("z-image-turbo",), ("z-image-base",), ("z-image-turbo",), ("z-image-omni",)
    ]  # fmt: skip


def test_regeneration_items_are_the_skus_template_views():
    templates = parse_templates(
        {"version": "1", "views": {v: {"width": 64, "height": 64, "prompt": "x"} for v in ("front", "back", "side")},
         "categories": {"*": ["front", "side"], "Men": ["front", "back"]}}
    )  # fmt: skip
    products = {"A": {"category": "Men/Tops"}, "B": {"category": "Gear"}}
    assert rules.regeneration_items(products, templates, ["A", "B"], []) == [("A", "front"), ("A", "back"), ("B", "front"), ("B", "side")]
    assert rules.regeneration_items(products, templates, ["A", "B"], ["front"]) == [("A", "front"), ("B", "front")]
    with pytest.raises(rules.RequestError, match="not in the catalog"):
        rules.regeneration_items(products, templates, ["C"], [])
    with pytest.raises(rules.RequestError) as caught:
        rules.regeneration_items(products, templates, ["B"], ["back"])
    assert caught.value.field == "views"


def test_api_keys_are_shown_once_and_checked_by_digest():
    key_id, key, digest = api_keys.new_key()
    assert api_keys.parse_key(key) == (key_id, key.split("_", 2)[2])
    assert api_keys.secret_matches(key.split("_", 2)[2], digest) and not api_keys.secret_matches("guess" * 9, digest)
    assert digest not in key and api_keys.parse_key("zk_short_x") is None and api_keys.parse_key(key + " ") is not None
    assert api_keys.parse_scopes("read, generate") == ("read", "generate")
    with pytest.raises(ValueError):
        api_keys.parse_scopes("read,admin")
    now = datetime(2026, 11, 24, 14, 5, 30, 500000)
    assert api_keys.retry_after_seconds(now, api_keys.minute_window(now), api_keys.MINUTE) == 30
    assert api_keys.retry_after_seconds(now, api_keys.day_window(now), api_keys.DAY) == int(timedelta(hours=9, minutes=54, seconds=29.5).total_seconds()) + 1


@pytest.mark.parametrize(
    ("row", "batch", "verdicts", "expected"),
    [
        ("queued", None, [], "queued"),
        ("blocked", None, [], "blocked"),
        ("minted", "minted", [], "queued"),
        ("minted", "running", [], "running"),
        ("minted", "generated", ["PASS"], "running"),
        ("minted", "published", ["PASS", "REVIEW"], "succeeded"),
        ("minted", "published", ["BLOCK", "BLOCK"], "blocked"),
        ("minted", "published", ["BLOCK", "PASS"], "succeeded"),
        ("minted", "failed", [], "failed"),
        ("succeeded", "published", ["PASS", "PASS"], "succeeded"),
    ],
)
def test_a_tasks_status_follows_its_batch(row, batch, verdicts, expected):
    assert task_status(row, batch, verdicts, 2) == expected
