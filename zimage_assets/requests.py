"""Requests from other systems, between the faces (the HTTP API, the RabbitMQ intake) and the tables.

Each function validates (pure rules in zimage_assets/domain/requests.py), runs the prompt gate,
checks the callback URL against the webhook allow-list, and records the request in one
transaction; nothing here generates. A refused request raises `Refusal`, which names the field
or the reason; the API turns it into a JSON error, the intake into a dead-lettered message.
A BLOCKed prompt is recorded too (a `blocked` task with its reasons), so nothing refused at the
door is lost from the audit.

`describe_task` is the task document both the API and the callbacks send.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from resources.image_store import ImageStore
from resources.quality_gates import QualityGates
from resources.request_policy import RequestPolicy
from resources.state_db import StateDB
from resources.state_db.requests import IdempotencyConflict, ImagesPerDayExceeded
from resources.webhooks import WebhookClient
from zimage_assets.domain import api_keys
from zimage_assets.domain import requests as rules
from zimage_assets.domain.storage_keys import public_image_key
from zimage_assets.domain.task_status import describe_task as task_document
from zimage_assets.domain.templates import TemplateSet
from zimage_assets.domain.verdicts import BLOCK


@dataclass
class Refusal(Exception):
    """A request that is not accepted: HTTP status, machine-readable code, message, field."""

    status: int
    code: str
    message: str
    field: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class Submitted:
    task: dict[str, Any]
    replayed: bool  # an earlier, identical request's task


@dataclass
class Intake:
    """What recording a request needs: the tables, the gates, the webhook rules, the policy."""

    state_db: StateDB
    quality_gates: QualityGates
    webhooks: WebhookClient
    policy: RequestPolicy

    # ---- the generations API ----

    def submit_generation(self, body: Any, *, key: dict, idempotency_header: str | None, now: datetime) -> Submitted:
        request = self._generation_request(body)
        blocked = self._prompt_block(request)
        task = self._task_row(
            kind="generate", request=request.as_dict(), request_hash=request.request_hash, num_images=request.num_images,
            priority=request.priority, callback_url=request.callback_url, key_id=key["key_id"], source="api", now=now, blocked=blocked,
        )  # fmt: skip
        submitted = self._record(task, key=key, scope="generate", header=idempotency_header, now=now, uses_images=not blocked)
        if submitted.task["status"] == "blocked":
            reasons = json.loads(submitted.task["reason"] or "[]")
            raise Refusal(422, "prompt_blocked", f"the prompt was blocked: {', '.join(reasons)}", field="prompt",
                          extra={"reasons": reasons, "task_id": submitted.task["task_id"]})  # fmt: skip
        return submitted

    def submit_regeneration(self, body: Any, templates: TemplateSet, *, key: dict, idempotency_header: str | None, now: datetime) -> Submitted:
        try:
            request = rules.parse_regeneration_request(body, self.policy.limits())
        except rules.RequestError as exc:
            raise Refusal(422, exc.code, exc.message, field=exc.field) from None
        self._check_callback(request.callback_url)
        try:
            items = rules.regeneration_items(self.state_db.products(request.skus), templates, request.skus, request.views)
        except rules.RequestError as exc:
            raise Refusal(422, exc.code, exc.message, field=exc.field) from None
        if len(items) > self.policy.max_items_per_batch:
            raise Refusal(422, "too_many_items", f"{len(items)} SKU x view items; at most {self.policy.max_items_per_batch} per request", field="skus")
        task = self._task_row(
            kind="regenerate", request=request.as_dict(), request_hash=request.request_hash, num_images=len(items),
            priority=request.priority, callback_url=request.callback_url, key_id=key["key_id"], source="api", now=now, blocked=None,
        )  # fmt: skip
        return self._record(task, key=key, scope="regenerate", header=idempotency_header, now=now, uses_images=True)

    # ---- the RabbitMQ intake ----

    def record_messages(self, messages: Sequence[tuple[bytes, str]], *, owner_key_id: str, now: datetime) -> list[str | None]:
        """(body, queue priority) per message -> None (recorded, or a redelivery of a recorded task)
        or the reason it goes to the dead-letter queue. All recorded tasks: one transaction."""
        reasons: list[str | None] = [None] * len(messages)
        tasks: list[tuple[int, dict]] = []
        for index, (body, queue_priority) in enumerate(messages):
            try:
                task_id, priority, requested_at, payload = rules.parse_message(_json(body), queue_priority)
                request = dataclasses.replace(self._generation_request(payload), priority=priority)
            except rules.RequestError as exc:
                reasons[index] = f"{exc.field or 'message'}: {exc.code}: {exc.message}"
                continue
            except Refusal as exc:
                reasons[index] = f"{exc.field or 'payload'}: {exc.code}: {exc.message}"
                continue
            row = self._task_row(
                kind="generate", request=request.as_dict(), request_hash=request.request_hash, num_images=request.num_images,
                priority=priority, callback_url=request.callback_url, key_id=owner_key_id, source="amqp", now=now,
                blocked=self._prompt_block(request), task_id=task_id, requested_at=min(requested_at, now),
            )  # fmt: skip
            row["notified_at"] = None  # a blocked queued request has no one waiting: its callback says so
            tasks.append((index, row))
        outcome = self.state_db.record_queued_tasks([row for _, row in tasks])
        first_hash: dict[str, str] = {}
        for index, row in tasks:
            earlier = first_hash.setdefault(row["task_id"], row["request_hash"])
            if outcome[row["task_id"]] == "conflict" or earlier != row["request_hash"]:  # also within one batch
                reasons[index] = f"task_id: task_id_reused: task {row['task_id']!r} was recorded with a different payload"
        return reasons

    # ---- shared ----

    def _generation_request(self, body: Any) -> rules.GenerationRequest:
        try:
            request = rules.parse_generation_request(body, self.policy.limits())
        except rules.RequestError as exc:
            raise Refusal(422, exc.code, exc.message, field=exc.field) from None
        self._check_callback(request.callback_url)
        return request

    def _check_callback(self, url: str | None) -> None:
        if url is None:
            return
        refusal = self.webhooks.refusal(url)
        if refusal:
            raise Refusal(422, "callback_not_allowed", refusal, field="callback_url")
        if not self.webhooks.secret:
            raise Refusal(422, "callbacks_disabled", "this deployment signs no callbacks (no ZIMAGE_WEBHOOK_SECRET)", field="callback_url")

    def _prompt_block(self, request: rules.GenerationRequest) -> list[str] | None:
        """The prompt gate's reasons when it BLOCKs the prompt (REVIEW prompts go ahead: their
        images are judged and wait for a person), else None."""
        assessment = self.quality_gates.assess_prompt(request.prompt)
        return list(assessment.reasons) if assessment.verdict == BLOCK else None

    def _task_row(self, *, kind, request, request_hash, num_images, priority, callback_url, key_id, source, now, blocked,
                  task_id=None, requested_at=None) -> dict[str, Any]:  # fmt: skip
        return {
            "task_id": task_id or uuid.uuid4().hex,
            "key_id": key_id,
            "source": source,
            "kind": kind,
            "priority": priority,
            "status": "blocked" if blocked else "queued",
            "reason": json.dumps(blocked) if blocked else None,
            "request": json.dumps(request, sort_keys=True, ensure_ascii=False),
            "request_hash": request_hash,
            "num_images": num_images,
            "callback_url": callback_url,
            "batch_id": None,
            "requested_at": requested_at or now,
            "created_at": now,
            "finished_at": now if blocked else None,
            "seconds_to_published": None,
            "notified_at": now if blocked else None,  # the caller was told at once
        }

    def _record(self, task: dict, *, key: dict, scope: str, header: str | None, now: datetime, uses_images: bool) -> Submitted:
        try:
            idem = rules.idempotency_key(key["key_id"], scope, header, task["request_hash"])
        except rules.RequestError as exc:
            raise Refusal(400, exc.code, exc.message, field=exc.field) from None
        day = api_keys.day_window(now)
        try:
            row, created = self.state_db.record_task(
                task,
                idempotency_key=idem,
                window_start=now - timedelta(hours=self.policy.idempotency_hours),
                images_per_day=key["images_per_day"] if uses_images else None,
                day_start=day,
            )
        except IdempotencyConflict as exc:
            raise Refusal(422, "idempotency_key_reused", f"this Idempotency-Key was used for another request (task {exc.task_id})",
                          field="Idempotency-Key", extra={"task_id": exc.task_id})  # fmt: skip
        except ImagesPerDayExceeded as exc:
            wait = api_keys.retry_after_seconds(now, day, api_keys.DAY)
            raise Refusal(429, "images_per_day", f"this key may ask for {exc.limit} images a day; this request would make it {exc.used}",
                          headers={"Retry-After": str(wait)})  # fmt: skip
        return Submitted(task=row, replayed=not created)


def describe_task(state_db: StateDB, image_store: ImageStore, task_id: str) -> dict[str, Any] | None:
    """The task document (GET /v1/tasks/{id}, and the body of its callback), from the tables."""
    facts = state_db.task_facts(task_id)
    if facts is None:
        return None
    task, items = facts["task"], facts["items"]
    if not items and task["kind"] == "generate":  # not minted yet: the items it will have
        items = rules.request_items(task_id, rules.GenerationRequest(**json.loads(task["request"])), None)
    return task_document(
        task,
        batch=facts["batch"],
        items=items,
        receipts=facts["receipts"],
        finals=facts["finals"],
        run_id=facts["run_id"],
        published_at=facts["published_at"],
        url_for=lambda sku, view, sha: image_store.url(public_image_key(sku, view, sha)),
    )


def current_sku_images(state_db: StateDB, image_store: ImageStore, sku: str) -> list[dict[str, Any]] | None:
    """A catalog SKU's current published images (None: no such SKU in the catalog)."""
    if not state_db.products([sku]):
        return None
    return [
        {
            "view": row["view"],
            "url": image_store.url(row["public_key"]),
            "sha256": row["sha256"],
            "batch_id": row["batch_id"],
            "published_at": row["published_at"].isoformat(timespec="seconds") + "Z",
            "model_id": row["model_id"],
            "template_version": row["template_version"],
        }
        for row in state_db.current_images([sku])
    ]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise rules.RequestError(None, "invalid_json", f"the message is not JSON ({exc})"[:300]) from None
