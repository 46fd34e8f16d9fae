"""`zimage api`: the generations API on uvicorn, bound to 127.0.0.1 unless told otherwise.

    zimage api [--host 127.0.0.1] [--port 8800] [--workers 1]

Settings come from the environment as for every command (ZIMAGE_DB_URL, ZIMAGE_STORAGE_URL,
ZIMAGE_API_*, the webhook allow-list for callback URLs, the prompt gate's term lists). Each
worker process builds the same app; the limits and idempotency live in the tables, so they hold
across workers and machines.
"""

from __future__ import annotations

from zimage_assets.settings import Settings

DEFAULT_PORT = 8800


def build_context(settings: Settings):
    from resources import build_resources
    from zimage_assets.api.app import ApiContext
    from zimage_assets.requests import Intake

    resources = build_resources(settings)
    intake = Intake(
        state_db=resources["state_db"], quality_gates=resources["quality_gates"], webhooks=resources["webhooks"], policy=resources["request_policy"]
    )
    return ApiContext(state_db=resources["state_db"], image_store=resources["image_store"], prompt_templates=resources["prompt_templates"], intake=intake)


def app_from_environment():
    """The app for one uvicorn worker (uvicorn's factory), from this process's environment."""
    from zimage_assets.api.app import create_app

    context = build_context(Settings.from_env())
    context.state_db.engine  # noqa: B018 - create the tables before the first request, not during it
    return create_app(context)


def add_parser(sub) -> None:
    api = sub.add_parser("api", help="serve the generations API (HTTP)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    api.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    api.add_argument("--access-log", action="store_true", help="log every request")
    api.set_defaults(handler=cmd_api)


def cmd_api(args, settings: Settings) -> int:
    import uvicorn

    app_from_environment()  # a broken setting or database fails here, with one line, before listening
    print(
        f"zimage api: http://{args.host}:{args.port} (OpenAPI /openapi.json, docs /docs; models {', '.join(settings.api_models)}; "
        f"tables {_safe_url(settings.db_url)})",
        flush=True,
    )
    uvicorn.run(
        "zimage_assets.api.server:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=max(1, args.workers),
        log_level="info" if args.access_log else "warning",
        access_log=args.access_log,
    )
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

