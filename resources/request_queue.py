"""The RabbitMQ intake's queues: declaring them, publishing to them, and consuming them in
batches that are acknowledged only after they were recorded.

Queues (all durable): PREFIX.high, PREFIX.normal, PREFIX.low, each declared with
`x-max-priority: 10` and dead-lettering to PREFIX.dead (the default exchange), so a message the
broker itself rejects lands there too. Producers must declare them with the same arguments (or
let the intake declare them first). A message is JSON `{task_id, priority, created_at, payload}`;
`publish` sets its AMQP priority from its priority (high 9, normal 5, low 1) and makes it
persistent.

`consume` hands each batch of deliveries (most urgent queue first, then AMQP priority) to a
function that records them in one transaction and says, per message, None (recorded, or already
recorded) or why it is malformed. Malformed messages are published to the dead-letter queue with
the reason in the `x-zimage-reason` header (with publisher confirms), then the whole batch is
acknowledged. A consumer that dies before that acknowledgement loses nothing: the broker
redelivers the batch, and a task_id that was already recorded is not recorded again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pika

PRIORITIES = ("high", "normal", "low")
MESSAGE_PRIORITY = {"high": 9, "normal": 5, "low": 1}
MAX_PRIORITY = 10
REASON_HEADER = "x-zimage-reason"
QUEUE_HEADER = "x-zimage-queue"
_ERROR_BACKOFF_SECONDS = 5.0


@dataclass
class Delivery:
    queue_priority: str  # the priority of the queue it came from
    body: bytes
    tag: int
    properties: Any

    @property
    def amqp_priority(self) -> int:
        return int(getattr(self.properties, "priority", None) or 0)


class RequestQueue:
    """The intake's queues on one RabbitMQ (URL with its vhost) under one name prefix."""

    def __init__(self, url: str, prefix: str = "zimage.gen"):
        self.url, self.prefix = url, prefix

    def queue(self, priority: str) -> str:
        return f"{self.prefix}.{priority}"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.dead"

    def describe(self) -> str:
        params = pika.URLParameters(self.url)
        return f"amqp://{params.host}:{params.port}/{params.virtual_host} queues {self.prefix}.{{high,normal,low,dead}}"

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url))

    def declare(self, channel) -> None:
        channel.queue_declare(self.dead_letter_queue, durable=True)
        arguments = {"x-max-priority": MAX_PRIORITY, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dead_letter_queue}
        for priority in PRIORITIES:
            channel.queue_declare(self.queue(priority), durable=True, arguments=arguments)

    # ---- producing (other systems; the tests and benchmarks) ----

    def publish(self, messages: Sequence[dict | bytes], priority: str, *, amqp_priority: int | None = None, channel=None) -> int:
        """Publish messages to the queue of `priority`, persistent and confirmed; returns how many."""
        own = channel is None
        connection = self.connect() if own else None
        try:
            if own:
                channel = connection.channel()
                self.declare(channel)
                channel.confirm_delivery()
            for message in messages:
                body = message if isinstance(message, bytes) else json.dumps(message).encode("utf-8")
                properties = pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    priority=MESSAGE_PRIORITY[priority] if amqp_priority is None else amqp_priority,
                    content_type="application/json",
                )
                channel.basic_publish("", self.queue(priority), body, properties, mandatory=True)
            return len(messages)
        finally:
            if own:
                connection.close()

    def depths(self) -> dict[str, int]:
        """Ready (not yet delivered) messages per priority; the dead-letter queue as 'dead'."""
        connection = self.connect()
        try:
            channel = connection.channel()
            self.declare(channel)
            out = {p: channel.queue_declare(self.queue(p), passive=True).method.message_count for p in PRIORITIES}
            out["dead"] = channel.queue_declare(self.dead_letter_queue, passive=True).method.message_count
            return out
        finally:
            connection.close()

    def dead_letters(self, limit: int = 1000) -> list[tuple[bytes, dict]]:
        """Take (body, headers) of up to `limit` dead-lettered messages off their queue (tests, audits)."""
        connection = self.connect()
        out = []
        try:
            channel = connection.channel()
            self.declare(channel)
            while len(out) < limit:
                method, properties, body = channel.basic_get(self.dead_letter_queue, auto_ack=True)
                if method is None:
                    break
                out.append((body, dict(properties.headers or {})))
            return out
        finally:
            connection.close()

    # ---- consuming (the intake) ----

    def consume(
        self,
        handle: Callable[[list[Delivery]], list[str | None]],
        *,
        batch_size: int = 200,
        drain: bool = False,
        idle_seconds: float = 1.0,
        should_stop: Callable[[], bool] = lambda: False,
        log: Callable[[str], None] = lambda line: None,
    ) -> dict[str, int]:
        """Consume until `should_stop()` (or, with `drain`, until every queue is empty); counts."""
        counts: dict = {"received": 0, "recorded": 0, "dead_lettered": 0, "batches": 0, "handler_errors": 0, "busy_seconds": 0.0}
        first_message: float | None = None
        connection = self.connect()
        try:
            channel = connection.channel()
            self.declare(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=batch_size)
            buffer: list[Delivery] = []
            for priority in PRIORITIES:
                channel.basic_consume(
                    self.queue(priority),
                    on_message_callback=lambda _ch, method, props, body, p=priority: buffer.append(Delivery(p, body, method.delivery_tag, props)),
                    auto_ack=False,
                )
            last_message = time.monotonic()
            while not should_stop():
                before = len(buffer)
                connection.process_data_events(time_limit=0.02 if buffer else 0.25)
                if len(buffer) > before:
                    last_message = time.monotonic()
                    first_message = first_message or last_message
                    if len(buffer) < batch_size:
                        continue  # more may be on their way: fill the batch first
                if buffer:
                    batch = sorted(buffer, key=lambda d: (PRIORITIES.index(d.queue_priority), -d.amqp_priority, d.tag))
                    buffer.clear()
                    self._settle(channel, batch, handle, counts, log)
                    counts["busy_seconds"] = time.monotonic() - (first_message or time.monotonic())  # first message to last ack
                elif drain and time.monotonic() - last_message >= idle_seconds:
                    if not any(channel.queue_declare(self.queue(p), passive=True).method.message_count for p in PRIORITIES):
                        break
                    last_message = time.monotonic()
        finally:
            if connection.is_open:
                connection.close()
        return counts

    def _settle(self, channel, batch: list[Delivery], handle, counts: dict[str, int], log) -> None:
        counts["received"] += len(batch)
        try:
            reasons = handle(batch)  # records (commits) the batch
        except Exception as exc:  # noqa: BLE001 - the database may be down: hand the batch back, try again later
            counts["handler_errors"] += 1
            log(f"recording {len(batch)} message(s) failed ({type(exc).__name__}: {exc}); returned to the queue, retrying in {_ERROR_BACKOFF_SECONDS:g}s")
            channel.basic_nack(delivery_tag=max(d.tag for d in batch), multiple=True, requeue=True)
            time.sleep(_ERROR_BACKOFF_SECONDS)
            return
        for delivery, reason in zip(batch, reasons):
            if reason is not None:
                headers = {**dict(getattr(delivery.properties, "headers", None) or {}), REASON_HEADER: reason[:1000], QUEUE_HEADER: self.queue(delivery.queue_priority)}
                properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", headers=headers)
                channel.basic_publish("", self.dead_letter_queue, delivery.body, properties, mandatory=True)
                counts["dead_lettered"] += 1
                log(f"dead-lettered a message from {self.queue(delivery.queue_priority)}: {reason}")
        channel.basic_ack(delivery_tag=max(d.tag for d in batch), multiple=True)  # after the commit, never before
        counts["recorded"] += sum(1 for r in reasons if r is None)
        counts["batches"] += 1
