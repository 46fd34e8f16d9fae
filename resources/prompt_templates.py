"""Prompt templates (a YAML file) and the batch size limit: what goes into a batch and how it is said."""

from __future__ import annotations

import dagster as dg
from dagster import ConfigurableResource
from pydantic import Field

from zimage_assets.domain.templates import TemplateError, TemplateSet, load_templates
from zimage_assets.settings import DEFAULTS


class PromptTemplates(ConfigurableResource):
    path: str = Field(description="Prompt templates YAML (views per category, sizes, prompts)")
    max_items_per_batch: int = Field(default=DEFAULTS["max_items_per_batch"], ge=1, description="SKU x view items per batch")

    def load(self) -> TemplateSet:
        """The templates; `TemplateError` naming the file, view or field when they are wrong."""
        return load_templates(self.path)

    def load_or_fail(self) -> TemplateSet:
        """The templates, or a run failure that says what is wrong and is not retried (a retry cannot fix a file)."""
        try:
            return self.load()
        except TemplateError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
