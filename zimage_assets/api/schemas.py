"""The OpenAPI document's schemas, built from the domain's field table (one place for defaults)."""

from __future__ import annotations

from typing import Any

from zimage_assets.domain.requests import FIELDS, MAX_SEED, MIN_SIDE, PRIORITIES
from zimage_assets.domain.task_status import TASK_STATUSES
from zimage_assets.domain.templates import MAX_SIDE, SIZE_MULTIPLE


def generation_request_schema(served_models: tuple[str, ...], max_images: int, max_prompt_chars: int) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, spec in FIELDS.items():
        schema: dict[str, Any] = {"description": spec.description}
        if spec.kind == "integer":
            schema["type"] = "integer"
        else:
            schema["type"] = "string"
        if spec.choices:
            schema["enum"] = list(spec.choices)
        if spec.kind == "url":
            schema["format"] = "uri"
        default = served_models[0] if name == "model" and served_models else spec.default
        schema["default"] = default
        if spec.nullable:
            schema["type"] = [schema["type"], "null"]
        properties[name] = schema
    properties["prompt"]["maxLength"] = max_prompt_chars
    for side in ("width", "height"):
        properties[side].update(minimum=MIN_SIDE, maximum=MAX_SIDE, multipleOf=SIZE_MULTIPLE)
    properties["seed"].update(minimum=0, maximum=MAX_SEED)
    properties["num_images"].update(minimum=1, maximum=max_images)
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "example": {"prompt": "a red leather handbag on a white background", "num_images": 2, "width": 1024, "height": 1024},
    }


REGENERATION_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["skus"],
    "properties": {
        "skus": {"type": "array", "items": {"type": "string"}, "description": "Catalog SKUs to make again now"},
        "views": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Only these views (default: every view of each SKU)"},
        "priority": {"type": "string", "enum": list(PRIORITIES), "default": "normal"},
        "callback_url": {"type": ["string", "null"], "format": "uri", "default": None},
    },
    "example": {"skus": ["MH01-XS-Black"], "views": ["front"], "priority": "high"},
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable reason, e.g. not_multiple_of_16, model_not_served, prompt_blocked"},
                "field": {"type": ["string", "null"], "description": "The field (or header) at fault, when one is"},
                "message": {"type": "string"},
            },
            "additionalProperties": True,
        }
    },
}

TASK = {
    "type": "object",
    "properties": {
        "task_id": {"type": "string"},
        "status": {"type": "string", "enum": list(TASK_STATUSES)},
        "kind": {"type": "string", "enum": ["generate", "regenerate"]},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "progress": {"type": "object"},
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "url": {"type": ["string", "null"]},
                    "seed": {"type": ["integer", "null"]},
                    "width": {"type": ["integer", "null"]},
                    "height": {"type": ["integer", "null"]},
                    "verdict": {"type": ["string", "null"], "enum": ["PASS", "REVIEW", "BLOCK", None]},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "batch_id": {"type": ["string", "null"]},
        "run_id": {"type": ["string", "null"]},
        "timings": {"type": "object"},
        "request": {"type": "object"},
    },
}


def error_responses(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON or header",
        401: "Missing, unknown or revoked API key",
        403: "The key lacks the scope",
        404: "No such task (for this key) or SKU",
        413: "Body too large",
        415: "Not application/json",
        422: "A field is invalid, the model is not served, or the prompt is blocked",
        429: "Requests per minute or images per day exhausted (see Retry-After)",
    }
    return {str(s): {"description": reasons[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}} for s in statuses}


def json_body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


def task_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}}
