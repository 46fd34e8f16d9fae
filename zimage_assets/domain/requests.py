"""Requests from other systems (the generations API, the RabbitMQ intake): the contract's fields,
their defaults and bounds, validation whose errors name the field, seeds, and the hashes that
make a retried request the same request.

Pure functions: the HTTP face, the queue consumer and the OpenAPI document all read `FIELDS`,
so a default or a bound is written once. A request becomes a task (resources/state_db/requests.py)
whose items carry their own prompt, seed and size (`request_items`), minted into a `request`
batch by a sensor and generated, gated and published like any batch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from zimage_assets.domain.batching import PRIORITY_TAG_VALUES
from zimage_assets.domain.prompt_safety import DEFAULT_MAX_CHARS
from zimage_assets.domain.templates import MAX_SIDE, SIZE_MULTIPLE

MODELS = ("z-image-turbo", "z-image-base", "z-image-omni")
# quality -> factor on the served model's inference steps (Turbo: 8, 12, 16 steps)
QUALITY_STEP_FACTORS = {"standard": 1.0, "high": 1.5, "ultra": 2.0}
PRIORITIES = tuple(sorted(PRIORITY_TAG_VALUES, key=lambda p: -PRIORITY_TAG_VALUES[p]))  # high, normal, low
MAX_SEED = 2**31 - 1  # seeds are stored as 32-bit signed integers
MIN_SIDE = 64
MAX_NEGATIVE_PROMPT_CHARS = 2000
MAX_URL_CHARS = 2048
REQUEST_VIEW = "request"  # the view of every generated item (compliance profile "none" by default)
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


@dataclass(frozen=True)
class Field:
    kind: str  # string | integer | choice | url
    default: Any
    description: str
    nullable: bool = False
    choices: tuple[str, ...] = ()


FIELDS: dict[str, Field] = {
    "prompt": Field("string", "", "What to draw; BLOCKed prompts are refused with their reasons"),
    "negative_prompt": Field("string", "", f"What to avoid (only z-image-base uses it); at most {MAX_NEGATIVE_PROMPT_CHARS} characters"),
    "model": Field("choice", None, "The model; one this deployment serves (default: the first it serves)", choices=MODELS),
    "quality": Field("choice", "standard", "standard, high (1.5x steps) or ultra (2x steps)", choices=tuple(QUALITY_STEP_FACTORS)),
    "width": Field("integer", 1024, f"Pixels, a multiple of {SIZE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE}"),
    "height": Field("integer", 1024, f"Pixels, a multiple of {SIZE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE}"),
    "seed": Field("integer", None, f"Seed of the first image (0..{MAX_SEED}; image i uses seed + i); null: derived from the request", nullable=True),
    "num_images": Field("integer", 1, "How many images (variations with consecutive seeds)"),
    "priority": Field("choice", "normal", "Place in the run queue; also sets the deadline", choices=PRIORITIES),
    "callback_url": Field("url", None, "Signed POST of the task's result when it is done (an allowed webhook host)", nullable=True),
}


@dataclass(frozen=True)
class Limits:
    served_models: tuple[str, ...]
    max_prompt_chars: int = DEFAULT_MAX_CHARS
    max_images: int = 100
    max_skus: int = 100
    max_items: int = 200


class RequestError(ValueError):
    """A request that cannot be accepted: which field, a machine-readable code, and why."""

    def __init__(self, field: str | None, code: str, message: str):
        super().__init__(message)
        self.field, self.code, self.message = field, code, message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str
    model: str
    quality: str
    width: int
    height: int
    seed: int | None
    num_images: int
    priority: str
    callback_url: str | None

    def as_dict(self) -> dict[str, Any]:
        """The body with every default applied: two bodies that mean the same are equal here."""
        return asdict(self)

    @property
    def request_hash(self) -> str:
        return _hash(self.as_dict())

    @property
    def look_hash(self) -> str:
        """What the pictures depend on (not the count, priority or callback)."""
        fields = ("prompt", "negative_prompt", "model", "quality", "width", "height", "seed")
        return _hash({k: getattr(self, k) for k in fields})

    def seeds(self) -> list[int]:
        """Given: seed, seed + 1, ...; else derived from the look, so a retry makes the same images."""
        if self.seed is not None:
            return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.num_images)]
        return [derived_seed(self.look_hash, i) for i in range(self.num_images)]


@dataclass(frozen=True)
class RegenerationRequest:
    skus: tuple[str, ...]
    views: tuple[str, ...]  # empty: every view the SKU's category has
    priority: str
    callback_url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"skus": list(self.skus), "views": list(self.views), "priority": self.priority, "callback_url": self.callback_url}

    @property
    def request_hash(self) -> str:
        return _hash(self.as_dict())


def parse_generation_request(body: Any, limits: Limits) -> GenerationRequest:
    """The POST body (or a queue message's payload) -> a request, or `RequestError` naming the field."""
    body = _object(body, "the body")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(unknown[0], "unknown_field", f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    values = {name: _value(name, spec, body.get(name, spec.default)) for name, spec in FIELDS.items()}
    values["model"] = values["model"] or (limits.served_models[0] if limits.served_models else MODELS[0])
    if values["model"] not in limits.served_models:
        served = ", ".join(limits.served_models) or "none"
        raise RequestError("model", "model_not_served", f"model {values['model']!r} is not served by this deployment (it serves: {served})")
    if len(values["prompt"]) > limits.max_prompt_chars:
        raise RequestError("prompt", "too_long", f"prompt has {len(values['prompt'])} characters; at most {limits.max_prompt_chars}")
    if len(values["negative_prompt"]) > MAX_NEGATIVE_PROMPT_CHARS:
        raise RequestError("negative_prompt", "too_long", f"negative_prompt has {len(values['negative_prompt'])} characters; at most {MAX_NEGATIVE_PROMPT_CHARS}")
    for side in ("width", "height"):
        value = values[side]
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise RequestError(side, "out_of_range", f"{side} {value} is outside {MIN_SIDE}..{MAX_SIDE}")
        if value % SIZE_MULTIPLE:
            lower = value - value % SIZE_MULTIPLE
            raise RequestError(
                side, "not_multiple_of_16", f"{side} {value} is not a multiple of {SIZE_MULTIPLE} (Z-Image needs one): use {lower} or {lower + SIZE_MULTIPLE}"
            )
    if not 1 <= values["num_images"] <= limits.max_images:
        raise RequestError("num_images", "out_of_range", f"num_images {values['num_images']} is outside 1..{limits.max_images}")
    if values["seed"] is not None and not 0 <= values["seed"] <= MAX_SEED:
        raise RequestError("seed", "out_of_range", f"seed {values['seed']} is outside 0..{MAX_SEED}")
    return GenerationRequest(**values)


def parse_regeneration_request(body: Any, limits: Limits) -> RegenerationRequest:
    """`{"skus": [...], "views": [...], "priority": ..., "callback_url": ...}` -> a request."""
    body = _object(body, "the body")
    known = ("skus", "views", "priority", "callback_url")
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise RequestError(unknown[0], "unknown_field", f"unknown field {unknown[0]!r}; the fields are {', '.join(known)}")
    skus = _strings(body.get("skus"), "skus", limit=limits.max_skus, max_chars=255)
    if not skus:
        raise RequestError("skus", "missing", "skus must list at least one SKU")
    views = _strings(body.get("views", []), "views", limit=20, max_chars=64)
    priority = _value("priority", FIELDS["priority"], body.get("priority", FIELDS["priority"].default))
    callback = _value("callback_url", FIELDS["callback_url"], body.get("callback_url"))
    return RegenerationRequest(skus=tuple(dict.fromkeys(skus)), views=tuple(dict.fromkeys(views)), priority=priority, callback_url=callback)


def parse_message(message: Any, queue_priority: str) -> tuple[str, str, datetime, Any]:
    """A queue message `{task_id, priority, created_at, payload}` -> its parts (payload unchecked).

    The message's priority wins over its queue's; the payload's own `priority` is ignored.
    """
    message = _object(message, "the message")
    missing = [k for k in ("task_id", "payload") if k not in message]
    if missing:
        raise RequestError(missing[0], "missing", f"the message has no {missing[0]!r}")
    unknown = sorted(set(message) - {"task_id", "priority", "created_at", "payload"})
    if unknown:
        raise RequestError(unknown[0], "unknown_field", f"unknown message field {unknown[0]!r}")
    task_id = message["task_id"]
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        raise RequestError("task_id", "invalid_task_id", f"task_id {task_id!r} must be 1-64 letters, digits, '.', '_', ':' or '-'")
    priority = _value("priority", FIELDS["priority"], message.get("priority") or queue_priority)
    created = message.get("created_at")
    if not isinstance(created, str):
        raise RequestError("created_at", "invalid_type", "created_at must be an ISO 8601 timestamp string")
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError("created_at", "invalid_timestamp", f"created_at {created[:40]!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return task_id, priority, moment, message["payload"]


def regeneration_items(products: Mapping[str, Mapping[str, Any]], templates, skus, views) -> list[tuple[str, str]]:
    """(sku, view) items of a regeneration request: each SKU's template views (a `TemplateSet`),
    or those of them asked for; `RequestError` naming an unknown SKU, or a SKU none of whose
    views was asked for."""
    items: list[tuple[str, str]] = []
    for sku in skus:
        product = products.get(sku)
        if product is None:
            raise RequestError("skus", "unknown_sku", f"SKU {sku[:80]!r} is not in the catalog (ingest it first)")
        known = templates.views_for_category(product["category"])
        chosen = [v for v in known if not views or v in views]
        if not chosen:
            raise RequestError("views", "unknown_view", f"SKU {sku[:80]!r} ({product['category']}) has the views {', '.join(known)}, not {', '.join(views)}")
        items += [(sku, view) for view in chosen]
    return items


def served_models_for(model: str) -> tuple[str, ...]:
    """The API model name of a ZIMAGE_MODEL: the presets, else a guess from the name.

    `tiny` stands in for Turbo (the same preset: 8 steps, no guidance) in tests and the demo.
    """
    name = model.lower()
    if name in ("tiny", "turbo") or "turbo" in name:
        return ("z-image-turbo",)
    if "omni" in name:
        return ("z-image-omni",)
    return ("z-image-base",)


# ---- seeds, item keys, idempotency ----


def derived_seed(look_hash: str, index: int) -> int:
    digest = hashlib.sha256(f"{look_hash}:{index}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & MAX_SEED


def request_items(task_id: str, request: GenerationRequest, steps: int | None) -> list[dict[str, Any]]:
    """The batch items of a generation task: one per image, each with its own prompt, seed and size.

    The item's `content_hash` is its look plus its seed, so regeneration attempts of one image get
    seeds of their own, and the same request made again gets the same ones.
    """
    return [
        {
            "sku": item_sku(task_id, i),
            "view": REQUEST_VIEW,
            "content_hash": _hash({"look": request.look_hash, "seed": seed}),
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": seed,
            "width": request.width,
            "height": request.height,
            "steps": steps,
        }
        for i, seed in enumerate(request.seeds())
    ]


def item_sku(task_id: str, index: int) -> str:
    """The item key of image `index` of a task (in the place of a SKU: tables key items by it)."""
    return f"task:{task_id}:{index + 1:04d}"


def quality_steps(quality: str, model_steps: int) -> int | None:
    """Inference steps for a quality; None = the model's own (standard)."""
    factor = QUALITY_STEP_FACTORS[quality]
    return None if factor == 1.0 else max(1, round(model_steps * factor))


def idempotency_key(key_id: str, scope: str, header: str | None, request_hash: str) -> str:
    """Same API key + same Idempotency-Key header (or, without one, the same body) = same task."""
    if header is not None and not IDEMPOTENCY_KEY.match(header):
        raise RequestError("Idempotency-Key", "invalid_header", "Idempotency-Key must be 1-255 printable ASCII characters without spaces")
    basis = f"header:{header}" if header is not None else f"body:{request_hash}"
    return hashlib.sha256(f"{key_id}\n{scope}\n{basis}".encode("utf-8")).hexdigest()


def deadline_hours(text: str) -> dict[str, float]:
    """`high=0.5,normal=2,low=24` -> hours per priority (every priority must be given)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, hours = part.partition("=")
        try:
            value = float(hours)
        except ValueError:
            value = -1.0
        if not sep or name.strip() not in PRIORITIES or not 0 < value < 24 * 365:
            raise ValueError(f"deadline entry {part!r}: expected PRIORITY=HOURS with PRIORITY one of {', '.join(PRIORITIES)}")
        out[name.strip()] = value
    missing = [p for p in PRIORITIES if p not in out]
    if missing:
        raise ValueError(f"deadlines {text!r} name no hours for {', '.join(missing)}")
    return out


# ---- helpers ----


def _hash(value: Mapping[str, Any]) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RequestError(None, "invalid_body", f"{what} must be a JSON object, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _value(name: str, spec: Field, value: Any) -> Any:
    if value is None:
        if spec.nullable or spec.default is None:
            return None
        raise RequestError(name, "invalid_type", f"{name} must not be null")
    if spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(name, "invalid_type", f"{name} must be an integer, got {_type_name(value)}")
        return value
    if not isinstance(value, str):
        raise RequestError(name, "invalid_type", f"{name} must be a string, got {_type_name(value)}")
    if spec.kind == "choice" and value not in spec.choices:
        raise RequestError(name, "invalid_choice", f"{name} {value[:40]!r} is not one of {', '.join(spec.choices)}")
    if spec.kind == "url" and len(value) > MAX_URL_CHARS:
        raise RequestError(name, "too_long", f"{name} is longer than {MAX_URL_CHARS} characters")
    if spec.kind == "string" and "\x00" in value:
        raise RequestError(name, "invalid_characters", f"{name} contains a NUL character")
    return value


def _strings(value: Any, name: str, *, limit: int, max_chars: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RequestError(name, "invalid_type", f"{name} must be an array of non-empty strings")
    if len(value) > limit:
        raise RequestError(name, "too_many", f"{name} lists {len(value)} entries; at most {limit}")
    long = [v for v in value if len(v) > max_chars]
    if long:
        raise RequestError(name, "too_long", f"{name} entry {long[0][:40]!r}... is longer than {max_chars} characters")
    return value
