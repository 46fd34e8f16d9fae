"""The code location: assembles assets, checks, jobs, sensors and resources. It computes nothing."""

import dagster as dg

from jobs import ALL_JOBS
from resources import build_resources
from sensors import ALL_SCHEDULES, ALL_SENSORS
from zimage_assets.assets import ALL_ASSETS
from zimage_assets.checks import ALL_CHECKS
from zimage_assets.settings import Settings

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    schedules=ALL_SCHEDULES,
    resources=build_resources(Settings.from_env()),  # read at each (re)load of the code location
    # GPU work runs in the run's own process: one model load per run, not one per step.
    executor=dg.in_process_executor,
)
