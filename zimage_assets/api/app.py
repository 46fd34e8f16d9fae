"""The generations API: FastAPI routes over `zimage_assets/requests.py`.

    POST /v1/images/generations     a generation request (scope generate)
    GET  /v1/tasks/{task_id}        a task's status, images, batch, run, timings (scope read)
    POST /v1/skus/regenerate        make catalog SKUs' images again now (scope generate)
    GET  /v1/skus/{sku}/images      a SKU's current published images (scope read)
    GET  /openapi.json, /docs       the OpenAPI document and its browsable form
    GET  /healthz                   liveness

Synchronous answers: a request of at most ZIMAGE_API_SYNC_MAX_IMAGES images (default 4), with no
`callback_url` and no `Prefer: respond-async` header, waits up to ZIMAGE_API_SYNC_WAIT_SECONDS
(default 60) for its batch to be published and answers 200 with the images; everything else,
and a small request that did not finish in time, answers 202 with the task (poll
GET /v1/tasks/{id}, or wait for the callback). The wait only reads the tables: the images are
made by the Dagster run of the request's batch.

Every error is a JSON body `{"error": {"code", "field", "message", ...}}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from resources.image_store import ImageStore
from resources.prompt_templates import PromptTemplates
from resources.state_db import StateDB, utcnow
from zimage_assets.api import schemas
from zimage_assets.api.auth import ApiError, authorize
from zimage_assets.domain.task_status import FINISHED
from zimage_assets.domain.templates import TemplateError
from zimage_assets.requests import Intake, Refusal, current_sku_images, describe_task

LOG = logging.getLogger("zimage.api")
POLL_SECONDS = 0.5
VERSION = "1"


@dataclass
class ApiContext:
    state_db: StateDB
    image_store: ImageStore
    prompt_templates: PromptTemplates
    intake: Intake

    @property
    def policy(self):
        return self.intake.policy


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="zimage-catalog generations API",
        version=VERSION,
        description=__doc__.split("\n\n", 1)[1],
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    _install_error_handlers(app)
    _install_openapi(app, ctx)

    async def key_for(request: Request, scope: str) -> dict:
        return await run_in_threadpool(authorize, ctx.state_db, request.headers.get("authorization"), scope, utcnow())

    @app.post(
        "/v1/images/generations",
        summary="Ask for images",
        status_code=202,
        openapi_extra={"requestBody": schemas.json_body("GenerationRequest"), "security": [{"bearer": []}]},
        responses={200: schemas.task_response("Finished within the wait (small requests)"), 202: schemas.task_response("Recorded"),
                   **schemas.error_responses(400, 401, 403, 413, 415, 422, 429)},  # fmt: skip
    )
    async def create_generation(request: Request) -> JSONResponse:
        key = await key_for(request, "generate")
        body = await _json_body(request, ctx.policy.max_body_bytes)
        submitted = await _submit(ctx.intake.submit_generation, body, key=key, idempotency_header=request.headers.get("idempotency-key"), now=utcnow())
        task = submitted.task
        wait = ctx.policy.waits_for_images(task["num_images"]) and not task["callback_url"] and "respond-async" not in request.headers.get("prefer", "")
        if wait:
            await _wait_until_finished(ctx, request, task["task_id"])
        return await _task_response(ctx, task["task_id"], replayed=submitted.replayed)

    @app.get(
        "/v1/tasks/{task_id}",
        summary="A task's status and images",
        openapi_extra={"security": [{"bearer": []}]},
        responses={200: schemas.task_response("The task"), **schemas.error_responses(401, 403, 404, 429)},
    )
    async def get_task(task_id: str, request: Request) -> JSONResponse:
        key = await key_for(request, "read")
        document = await run_in_threadpool(_own_task, ctx, task_id, key)
        return JSONResponse(document)

    @app.post(
        "/v1/skus/regenerate",
        summary="Make catalog SKUs' images again now",
        status_code=202,
        openapi_extra={"requestBody": schemas.json_body("RegenerationRequest"), "security": [{"bearer": []}]},
        responses={202: schemas.task_response("Recorded"), **schemas.error_responses(400, 401, 403, 413, 415, 422, 429)},
    )
    async def regenerate(request: Request) -> JSONResponse:
        key = await key_for(request, "generate")
        body = await _json_body(request, ctx.policy.max_body_bytes)
        try:
            templates = await run_in_threadpool(ctx.prompt_templates.load)
        except TemplateError as exc:
            raise ApiError(503, "templates_unusable", f"the prompt templates cannot be read: {exc}") from None
        submitted = await _submit(
            ctx.intake.submit_regeneration, body, templates, key=key, idempotency_header=request.headers.get("idempotency-key"), now=utcnow()
        )
        return await _task_response(ctx, submitted.task["task_id"], replayed=submitted.replayed)

    @app.get(
        "/v1/skus/{sku:path}/images",
        summary="A SKU's current published images",
        openapi_extra={"security": [{"bearer": []}]},
        responses={**schemas.error_responses(401, 403, 404, 429)},
    )
    async def sku_images(sku: str, request: Request) -> JSONResponse:
        await key_for(request, "read")
        images = await run_in_threadpool(current_sku_images, ctx.state_db, ctx.image_store, sku)
        if images is None:
            raise ApiError(404, "unknown_sku", f"SKU {sku[:80]!r} is not in the catalog", field="sku")
        return JSONResponse({"sku": sku, "images": images})

    @app.get("/healthz", summary="Liveness", include_in_schema=True)
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


# ---- helpers ----


async def _submit(function, *args, **kwargs):
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except Refusal as refusal:
        raise ApiError(refusal.status, refusal.code, refusal.message, refusal.field, dict(refusal.extra), dict(refusal.headers)) from None


async def _json_body(request: Request, limit: int):
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type", f"send the body as application/json, not {kind[:60]!r}", field="Content-Type")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body has {declared} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body has more than {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}"[:300]) from None


async def _wait_until_finished(ctx: ApiContext, request: Request, task_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.policy.sync_wait_seconds
    while loop.time() < deadline:
        if await run_in_threadpool(_finished, ctx.state_db, task_id) or await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)


def _finished(state_db: StateDB, task_id: str) -> bool:
    task = state_db.task(task_id)
    if task is None or task["status"] in FINISHED:
        return True
    batch = state_db.batch(task["batch_id"]) if task["batch_id"] else None
    return batch is not None and batch["status"] in ("published", "failed")


async def _task_response(ctx: ApiContext, task_id: str, *, replayed: bool) -> JSONResponse:
    document = await run_in_threadpool(describe_task, ctx.state_db, ctx.image_store, task_id)
    headers = {"Location": f"/v1/tasks/{task_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(document, status_code=200 if document["status"] in FINISHED else 202, headers=headers)


def _own_task(ctx: ApiContext, task_id: str, key: dict) -> dict:
    task = ctx.state_db.task(task_id)
    if task is None or task["key_id"] != key["key_id"]:  # another key's task does not exist for this one
        raise ApiError(404, "unknown_task", f"no task {task_id[:80]!r} for this key", field="task_id")
    return describe_task(ctx.state_db, ctx.image_store, task_id)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "field": None, "message": str(exc.detail)}}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse({"error": {"code": "invalid_request", "field": where, "message": first.get("msg", "invalid request")}}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        LOG.exception("unexpected error")
        return JSONResponse({"error": {"code": "internal_error", "field": None, "message": f"{type(exc).__name__}: {exc}"[:500]}}, status_code=500)


def _install_openapi(app: FastAPI, ctx: ApiContext) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = document.setdefault("components", {})
            limits = ctx.policy.limits()
            components.setdefault("schemas", {}).update(
                GenerationRequest=schemas.generation_request_schema(limits.served_models, limits.max_images, limits.max_prompt_chars),
                RegenerationRequest=schemas.REGENERATION_REQUEST,
                Error=schemas.ERROR,
                Task=schemas.TASK,
            )
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "description": "zk_<id>_<secret> from `zimage api-key create`"}}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
