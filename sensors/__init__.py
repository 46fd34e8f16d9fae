"""Sensors and schedules: what starts runs without a person, one file per concern.

launcher.py      minted_batches_sensor: queues a run for every minted manual or refresh batch
catalog_drops.py catalog_drop_sensor: each new catalog file in the watched location is ingested
new_skus.py      new_sku_sensor: new and changed SKUs minted and launched at high priority
alerts.py        run-failure alerts, batch-completion callbacks, webhook delivery
schedules.py     monthly refresh, SLA watch, retention
requests.py      request_batches_sensor, request_completion_sensor: API and RabbitMQ requests -> batches -> callbacks
"""

from sensors.alerts import batch_completion_sensor, run_failure_alert_sensor, webhook_delivery_sensor
from sensors.catalog_drops import catalog_drop_sensor
from sensors.launcher import minted_batches_sensor
from sensors.new_skus import new_sku_sensor
from sensors.requests import request_batches_sensor, request_completion_sensor
from sensors.schedules import monthly_refresh_schedule, retention_schedule, sla_watch_schedule

ALL_SENSORS = [
    minted_batches_sensor,
    catalog_drop_sensor,
    new_sku_sensor,
    run_failure_alert_sensor,
    batch_completion_sensor,
    webhook_delivery_sensor,
    request_batches_sensor,
    request_completion_sensor,
]
ALL_SCHEDULES = [monthly_refresh_schedule, sla_watch_schedule, retention_schedule]
