"""Sensors and schedules: what starts runs without a person."""

from sensors.batch_launcher import minted_batches_sensor

ALL_SENSORS = [minted_batches_sensor]
ALL_SCHEDULES: list = []
