"""`zimage-metrics`: serves the project's Prometheus metrics for scraping.

    zimage-metrics [--host 127.0.0.1] [--port 9810] [--cache-seconds 5]
    zimage-metrics --once            print the exposition once and exit (e.g. `| promtool check metrics`)

Queue lengths come from Dagster's run queue (the instance of DAGSTER_HOME, as for `dagster dev`
and the daemon), figures from the project's tables (ZIMAGE_DB_URL). Every scrape computes them
afresh (at most once per --cache-seconds), so this process keeps no state and may be restarted
or run twice. GET /metrics for Prometheus, /healthz for a liveness probe.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

DEFAULT_PORT = 9810


def build_server(host: str, port: int, registry) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # Prometheus scrapes every few seconds: no access log
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                try:
                    body, status, kind = generate_latest(registry), 200, CONTENT_TYPE_LATEST
                except Exception as exc:  # noqa: BLE001 - answer, never hang up
                    body, status, kind = f"metrics collection failed: {exc}\n".encode(), 500, "text/plain"
            elif path == "/healthz":
                body, status, kind = b"ok\n", 200, "text/plain"
            elif path == "/":
                body, status, kind = b"zimage metrics: see /metrics\n", 200, "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zimage-metrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--cache-seconds", type=float, default=5.0, help="reuse a collection this long")
    parser.add_argument("--once", action="store_true", help="print the exposition and exit")
    args = parser.parse_args(argv)

    from dagster import DagsterInstance

    from resources.metrics import build_registry
    from resources.state_db import StateDB
    from zimage_assets.cli import _ensure_dagster_home
    from zimage_assets.settings import Settings

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _ensure_dagster_home(settings)
    instance = DagsterInstance.get()
    from resources import request_queue_from_settings

    queue = request_queue_from_settings(settings)  # the intake's queue depths, where ZIMAGE_AMQP_URL is set
    registry, _ = build_registry(
        StateDB(url=settings.db_url), instance, min_interval_seconds=args.cache_seconds, broker_depths=queue.depths if queue else None
    )
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0

    try:
        server = build_server(args.host, args.port, registry)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    from sqlalchemy.engine import make_url

    database = make_url(settings.db_url).render_as_string(hide_password=True)
    print(f"zimage-metrics: http://{args.host}:{server.server_address[1]}/metrics (Dagster: DAGSTER_HOME; tables: {database})", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    instance.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
