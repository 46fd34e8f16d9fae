"""Prompt templates: validation, category matching, rendering and seeds (no Dagster)."""

from __future__ import annotations

import pytest

from conftest import SMALL_TEMPLATES
from zimage_assets.domain.templates import TemplateError, item_seed, load_templates, parse_templates, render_prompt
from zimage_assets.settings import DEFAULT_TEMPLATES

HOODIE = {
    "sku": "MH01-XS-Black",
    "product_name": "Chaz Kangeroo Hoodie",
    "title": "Chaz Kangeroo Hoodie-XS-Black",
    "category": "Men/Tops/Hoodies & Sweatshirts",
    "attributes": {"color": "Black", "material": "Wool", "size": "XS", "pattern": "Color-Blocked"},
    "description": "Ideal for cold-weather training or work outdoors. Thick material blocks out the wind.",
    "content_hash": "abc",
}


def _raw(**view_overrides):
    view = {"width": 64, "height": 64, "prompt": "photo of {subject}"}
    view.update(view_overrides)
    return {"version": "1", "views": {"front": view}, "categories": {"*": ["front"]}}


def test_default_templates_load_and_every_size_is_valid():
    templates = load_templates(DEFAULT_TEMPLATES)
    assert templates.views["front"].width == 1024 and templates.views["lifestyle"].height == 1280
    for view in templates.views.values():
        assert view.width % 16 == 0 and view.height % 16 == 0
    assert templates.version


@pytest.mark.parametrize("field, value", [("width", 1000), ("height", 72 + 1), ("width", 0), ("height", 4096)])
def test_sizes_that_are_not_multiples_of_16_fail_naming_the_view(field, value):
    with pytest.raises(TemplateError, match=rf"view 'front' has {field} {value}"):
        parse_templates(_raw(**{field: value}))


def test_unknown_placeholder_and_unknown_view_fail_clearly():
    with pytest.raises(TemplateError, match=r"unknown placeholder\(s\) \['price'\]"):
        parse_templates(_raw(prompt="{subject} for {price}"))
    raw = _raw()
    raw["categories"]["Men"] = ["front", "back"]
    with pytest.raises(TemplateError, match=r"category 'Men' uses undefined view\(s\) \['back'\]"):
        parse_templates(raw)
    with pytest.raises(TemplateError, match="does not exist"):
        load_templates("/nonexistent/templates.yaml")


def test_longest_category_prefix_wins_on_whole_segments():
    templates = load_templates(DEFAULT_TEMPLATES)
    assert templates.views_for_category("Men/Tops/Jackets") == ("front", "back", "detail", "lifestyle")
    assert templates.views_for_category("men/bottoms/Pants") == ("front", "back", "lifestyle")
    assert templates.views_for_category("Gear/Watches") == ("front", "detail")
    assert templates.views_for_category("Mens/Tops") == ("front", "side")  # not a segment match
    assert templates.views_for_category("") == ("front", "side")


def test_prompt_rendering_is_deterministic_and_uses_the_catalog():
    templates = load_templates(DEFAULT_TEMPLATES)
    prompt = render_prompt(templates, "front", HOODIE)
    assert prompt == render_prompt(templates, "front", dict(HOODIE))
    assert "black wool Chaz Kangeroo Hoodie" in prompt
    assert "pattern: Color-Blocked" in prompt and "Ideal for cold-weather training or work outdoors." in prompt
    assert "XS" not in prompt  # size never reaches the picture
    assert "{" not in prompt and "  " not in prompt


def test_catalog_text_is_never_interpreted_as_a_template():
    templates = load_templates(SMALL_TEMPLATES)
    hostile = {**HOODIE, "product_name": "Hoodie {details} {0} {__class__}", "attributes": {"color": "{subject}"}}
    prompt = render_prompt(templates, "front", hostile)
    assert "__class__" in prompt and "{" not in prompt


def test_seeds_are_deterministic_per_look_view_and_attempt():
    assert item_seed("h1", "front") == item_seed("h1", "front")
    seeds = {item_seed("h1", "front"), item_seed("h1", "back"), item_seed("h2", "front"), item_seed("h1", "front", 1)}
    assert len(seeds) == 4
    assert all(0 <= s < 2**31 for s in seeds)
