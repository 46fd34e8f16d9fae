"""Asset checks (safety, quality, compliance, SLA). Each check lives beside its topic's logic."""

ALL_CHECKS: list = []
