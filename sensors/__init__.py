"""Sensors and schedules: what starts runs without a person."""

from sensors.batch_launcher import minted_batches_sensor

ALL_SENSORS = [minted_batches_sensor]
ALL_SCHEDULES: list = []

# ---- new SKUs, SLA, monthly refresh, alerts, retention ----
from sensors.alerts import batch_completion_sensor, run_failure_alert_sensor, webhook_delivery_sensor  # noqa: E402
from sensors.housekeeping import retention_schedule, sla_watch_schedule  # noqa: E402
from sensors.new_sku_sensor import catalog_drop_sensor, new_sku_sensor  # noqa: E402
from sensors.refresh_schedule import monthly_refresh_schedule  # noqa: E402

ALL_SENSORS += [catalog_drop_sensor, new_sku_sensor, run_failure_alert_sensor, batch_completion_sensor, webhook_delivery_sensor]
ALL_SCHEDULES += [monthly_refresh_schedule, sla_watch_schedule, retention_schedule]
