"""Prompt templates (a YAML file) and the batch size limit: what goes into a batch and how it is said."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain.templates import TemplateSet, load_templates


class PromptTemplates(ConfigurableResource):
    path: str = Field(description="Prompt templates YAML (views per category, sizes, prompts)")
    max_items_per_batch: int = Field(default=200, ge=1, description="SKU x view items per batch")

    def load(self) -> TemplateSet:
        return load_templates(self.path)
