"""Dagster resources over the plain storage and settings layers.

Every deployment setting reaches the assets through one of these resources, so the UI shows
where each comes from (an `EnvVar` when the variable is set where the definitions load, see
`definitions.build_definitions`) and the asset code is the same on a laptop and in a cluster:

- `PipelineResource`: the data root (FEEDBACK_DATA_ROOT, default ./data; a local folder or an
  fsspec URL), the config under it (parsed once per run) and the stages' worker count
  (FEEDBACK_STAGE_WORKERS);
- `KeysResource`: the vault key and the release signing key (FEEDBACK_VAULT_KEY[_FILE],
  FEEDBACK_SIGNING_KEY[_FILE], FEEDBACK_TRUSTED_SIGNING_KEYS), never a literal;
- `AlertSinksResource`: the secret parts of the alert sinks (webhook URL, Slack token,
  PagerDuty routing key) and the UI's address for links; which sinks fire is policy.yaml's;
- `LabelStudioResource`: the Label Studio server and its token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from feedback_pipeline import settings
from feedback_pipeline.automation import alerts
from feedback_pipeline.core import runtime, signing, vault
from feedback_pipeline.core.rubric import Rubric
from feedback_pipeline.storage import Storage

DEFAULT_LABEL_STUDIO_URL = "http://127.0.0.1:8080"
LABEL_STUDIO_URL_ENV = "LABEL_STUDIO_URL"


def environment_with(settings_by_name: Mapping[str, str | None],
                     base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with these variables taken from a resource instead: a field
    left unset removes the variable, so a value the resource does not hold is never used."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in settings_by_name}
    env.update({k: v for k, v in settings_by_name.items() if v})
    return env


class PipelineResource(dg.ConfigurableResource):
    """The data root and the config under it. Within a run (or a sensor tick) policy.yaml is
    parsed once, when Dagster sets the resource up; outside one, on each access."""

    data_root: str
    stage_workers: str = ""
    """Worker processes a stage's per-batch work uses (FEEDBACK_STAGE_WORKERS; empty or 0: one
    per core, at most 4)."""
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
    def workers(self) -> int:
        """The worker count this resource declares (core.runtime.worker_count)."""
        return runtime.worker_count(self.stage_workers)

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


class KeysResource(dg.ConfigurableResource):
    """Where the vault key and the release signing key come from: a secret, a key file
    (outside the data root; created owner-only on first use), or the default file under
    ~/.config/feedback-pipeline/."""

    data_root: str
    vault_key: str | None = None
    vault_key_file: str | None = None
    signing_key: str | None = None
    signing_key_file: str | None = None
    trusted_signing_keys: str | None = None

    def _environment(self) -> dict[str, str]:
        return environment_with({
            vault.KEY_ENV: self.vault_key, vault.KEY_FILE_ENV: self.vault_key_file,
            vault.DATA_ROOT_ENV: self.data_root, signing.KEY_ENV: self.signing_key,
            signing.KEY_FILE_ENV: self.signing_key_file,
            signing.TRUSTED_ENV: self.trusted_signing_keys})

    def vault_key_value(self) -> vault.VaultKey:
        return vault.resolve_vault_key(self._environment())

    def reviewer_pseudonym_key(self) -> bytes:
        """A derivation of the vault key, so reviewer pseudonyms cannot be reversed by
        guessing names."""
        return hmac.new(self.vault_key_value().secret, b"reviewer-pseudonym",
                        hashlib.sha256).digest()

    def signing_key_value(self) -> signing.SigningKey:
        root = None if "://" in self.data_root else self.data_root
        return signing.resolve_signing_key(self._environment(), data_root=root)

    def trusted_keys(self, key: signing.SigningKey | None) -> dict:
        return signing.trusted_keys(key, self._environment())


class AlertSinksResource(dg.ConfigurableResource):
    """The secret half of the alert sinks; policy.yaml's `alerts:` names the sinks and their
    public settings."""

    webhook_url: str | None = None
    slack_token: str | None = None
    pagerduty_routing_key: str | None = None
    ui_url: str | None = None

    def environment(self) -> dict[str, str]:
        return environment_with({
            alerts.WEBHOOK_ENV: self.webhook_url, alerts.SLACK_TOKEN_ENV: self.slack_token,
            alerts.PAGERDUTY_KEY_ENV: self.pagerduty_routing_key,
            alerts.UI_URL_ENV: self.ui_url})

    def settings_for(self, storage: Storage) -> tuple[alerts.AlertSettings, alerts.Alert | None]:
        return alerts.resolve_alert_settings(storage, self.environment())


class LabelStudioResource(dg.ConfigurableResource):
    """The Label Studio server the sync job talks to; the token is a field fed from
    LABEL_STUDIO_API_KEY, so it never sits in run config or the event log."""

    url: str = DEFAULT_LABEL_STUDIO_URL
    api_key: str | None = None

    def client(self, url: str | None = None) -> Any:
        """A checked client (core.labelstudio_api.connect); `url` overrides the resource's.
        Imported here: the SDK costs a third of a second that no other asset should pay."""
        from feedback_pipeline.core.labelstudio_api import connect

        return connect(url or self.url, self.api_key or "")
