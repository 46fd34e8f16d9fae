"""`zimage intake`: requests from the RabbitMQ queues become tasks, like the API's.

    zimage intake [--drain] [--batch-size 200]

Reads PREFIX.high, PREFIX.normal and PREFIX.low (ZIMAGE_INTAKE_QUEUE_PREFIX, default zimage.gen)
on ZIMAGE_AMQP_URL. A message `{task_id, priority, created_at, payload}` (payload = the POST
body of /v1/images/generations) is validated like a POST and recorded, a batch of messages per
transaction, and acknowledged only after that commit; a redelivered task_id is not recorded
twice. A malformed message goes to PREFIX.dead with the reason in its `x-zimage-reason` header.
The tasks belong to ZIMAGE_INTAKE_KEY_ID (that key reads them through the API). `--drain` stops
once the queues are empty (backfills, tests, benchmarks); otherwise it runs until SIGTERM.
"""

from __future__ import annotations

import signal
import threading
import time

from zimage_assets.settings import Settings


def add_parser(sub, error) -> None:
    intake = sub.add_parser("intake", help="record requests from the RabbitMQ queues")
    intake.add_argument("--drain", action="store_true", help="stop when every queue is empty")
    intake.add_argument("--batch-size", type=int, default=200, help="messages per transaction (and prefetch per queue)")
    intake.add_argument("--idle-seconds", type=float, default=1.0, help="with --drain: quiet this long, then check the queues")
    intake.set_defaults(handler=lambda args, settings: cmd_intake(args, settings, error))


def cmd_intake(args, settings: Settings, error) -> int:
    from resources import build_resources, request_queue_from_settings
    from resources.state_db import utcnow
    from zimage_assets.requests import Intake

    queue = request_queue_from_settings(settings)
    if queue is None:
        raise error("set ZIMAGE_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2F")
    resources = build_resources(settings)
    state_db = resources["state_db"]
    owner = settings.intake_key_id
    if owner and state_db.api_key(owner) is None:
        raise error(f"ZIMAGE_INTAKE_KEY_ID={owner!r} is not an API key (zimage api-key list)")
    intake = Intake(state_db=state_db, quality_gates=resources["quality_gates"], webhooks=resources["webhooks"], policy=resources["request_policy"])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def handle(deliveries) -> list:
        return intake.record_messages([(d.body, d.queue_priority) for d in deliveries], owner_key_id=owner, now=utcnow())

    state_db.engine  # noqa: B018 - tables exist before the first message
    print(f"zimage intake: consuming {queue.describe()}", flush=True)
    started = time.monotonic()
    try:
        counts = queue.consume(
            handle, batch_size=max(1, args.batch_size), drain=args.drain, idle_seconds=args.idle_seconds, should_stop=stop.is_set,
            log=lambda line: print(line, flush=True),
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the broker is down or refuses us: one line, exit 1
        import pika.exceptions

        if isinstance(exc, pika.exceptions.AMQPError):
            raise error(f"RabbitMQ at {queue.describe()}: {type(exc).__name__}: {exc}") from None
        raise
    seconds, busy = time.monotonic() - started, counts["busy_seconds"]
    rate = f", {counts['received'] / busy:.0f} messages/s from the first message to the last acknowledgement" if busy > 0 else ""
    print(
        f"zimage intake: {counts['received']} message(s) received, {counts['recorded']} recorded (or already recorded), "
        f"{counts['dead_lettered']} dead-lettered, in {counts['batches']} batch(es), {seconds:.1f}s{rate}",
        flush=True,
    )
    return 0
