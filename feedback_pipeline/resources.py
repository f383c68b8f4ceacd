"""Dagster resources over the plain storage and settings layers.

The data root comes from FEEDBACK_DATA_ROOT (default ./data) or from the resource setting; the
asset code is the same whether the root is a local folder or an fsspec URL (s3://, gcs://).
"""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from feedback_pipeline import settings
from feedback_pipeline.core.rubric import Rubric
from feedback_pipeline.storage import Storage


class PipelineResource(dg.ConfigurableResource):
    """The data root and the config under it. Within a run (or a sensor tick) policy.yaml is
    parsed once, when Dagster sets the resource up; outside one, on each access."""

    data_root: str
    _policy: settings.Policy | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            self._policy = settings.load_policy(self.storage)
        except settings.ConfigError:
            # left to the first access, which raises it naming the key: a sensor that never
            # reads the policy (the alert sensors) must still run on a broken one
            self._policy = None

    @property
    def storage(self) -> Storage:
        return Storage(self.data_root)

    @property
    def policy(self) -> settings.Policy:
        if self._policy is not None:
            return self._policy
        return settings.load_policy(self.storage)

    def rubric(self, version: str | None = None) -> Rubric:
        return settings.load_rubric(self.storage, version or self.policy.rubric_version)

    def known_rubrics(self) -> set[str]:
        return settings.known_rubric_versions(self.storage)

    def frozen_set(self) -> settings.FrozenEvalSet:
        return settings.load_frozen_set(self.storage, self.policy.frozen_eval_set)

    def gold(self) -> list[dict]:
        return settings.load_gold(self.storage, self.policy.reviewer_training_set)

    def reviewer_roles(self) -> dict[str, str]:
        return settings.load_reviewer_roles(self.storage)

    def trace_sources(self) -> list:
        """(file-name glob, core.sources.SourceSpec) from config/sources.yaml."""
        return settings.load_trace_sources(self.storage)

    def deny_terms(self) -> list[str]:
        return settings.load_deny_terms(self.storage)
