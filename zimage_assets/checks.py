"""Asset checks (safety, quality, compliance, SLA). Each check lives beside its topic's logic."""

ALL_CHECKS: list = []

# ---- new SKUs, SLA, monthly refresh, alerts, retention ----
from zimage_assets.sla_checks import skus_within_sla  # noqa: E402

ALL_CHECKS += [skus_within_sla]

# ---- safety and quality gates ----
from zimage_assets.quality_checks import QUALITY_CHECKS  # noqa: E402

ALL_CHECKS += QUALITY_CHECKS
