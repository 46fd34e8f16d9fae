"""The code location: assembles assets, checks, jobs, sensors and resources. It computes nothing."""

import dagster as dg

from jobs import ALL_JOBS
from resources import build_resources
from sensors import ALL_SCHEDULES, ALL_SENSORS
from zimage_assets.assets import ALL_ASSETS
from zimage_assets.checks import ALL_CHECKS
from zimage_assets.executors import executor_for
from zimage_assets.settings import Settings, definition_settings

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    schedules=ALL_SCHEDULES,
    resources=build_resources(Settings.from_env()),  # read at each (re)load of the code location
    executor=executor_for(definition_settings()),  # ZIMAGE_EXECUTOR: in_process (default) | celery | k8s
)
