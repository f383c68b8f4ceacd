"""The resources: policy.yaml parsed once per run, and every deployment setting (data root, keys,
alert secrets, Label Studio) read through EnvVar where the environment holds it."""

import dagster as dg
import pytest

from feedback_pipeline import settings
from feedback_pipeline.cli import run_pipeline
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline_tests.conftest import DAYS, copy_root


def test_policy_is_parsed_once_per_run(generated_root, tmp_path, monkeypatch):
    calls: list[int] = []
    original = settings.load_policy
    monkeypatch.setattr(settings, "load_policy",
                        lambda storage: calls.append(1) or original(storage))
    root = copy_root(generated_root, tmp_path / "data")
    instance = dg.DagsterInstance.ephemeral()
    outcome = run_pipeline(root, end=DAYS[0], instance=instance)
    assert outcome.error is None, outcome.error
    runs = len(instance.get_runs())
    assert runs >= 3 and len(calls) <= runs + 1  # one per run, and one config check first


def test_outside_a_run_the_policy_is_read_fresh(generated_root, tmp_path):
    import yaml

    root = copy_root(generated_root, tmp_path / "data")
    resource = PipelineResource(data_root=str(root))
    assert resource.policy.kappa_gate == 0.65
    path = root / "config" / "policy.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "kappa_gate": 0.7}))
    assert resource.policy.kappa_gate == 0.7


def test_deployment_settings_come_through_env_vars_and_only_what_the_resource_holds(
        tmp_path, monkeypatch):
    from feedback_pipeline.core import vault
    from feedback_pipeline.definitions import build_definitions
    from feedback_pipeline.resources import KeysResource

    monkeypatch.setenv("FEEDBACK_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("FEEDBACK_SLACK_TOKEN", "xoxb-from-the-environment")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token-from-the-environment")
    monkeypatch.delenv("FEEDBACK_PAGERDUTY_ROUTING_KEY", raising=False)
    resources = build_definitions().resources
    assert isinstance(resources["pipeline"].data_root, dg.EnvVar)
    assert isinstance(resources["alert_sinks"].slack_token, dg.EnvVar)
    assert resources["alert_sinks"].pagerduty_routing_key is None
    assert isinstance(resources["labelstudio"].api_key, dg.EnvVar)
    assert isinstance(build_definitions(str(tmp_path)).resources["pipeline"].data_root, str)

    # a variable the resource does not hold is not used behind its back
    monkeypatch.setenv(vault.KEY_ENV, vault.generate_key_text())
    keys = KeysResource(data_root=str(tmp_path / "data"),
                        vault_key_file=str(tmp_path / "outside" / "vault.key"))
    assert vault.KEY_ENV not in keys._environment()
    first = keys.vault_key_value().secret
    assert (tmp_path / "outside" / "vault.key").exists()
    assert keys.vault_key_value().secret == first
    inside = KeysResource(data_root=str(tmp_path / "data"),
                          vault_key_file=str(tmp_path / "data" / "vault.key"))
    with pytest.raises(vault.VaultKeyError, match="outside the data root"):
        inside.vault_key_value()
    assert keys.reviewer_pseudonym_key() != first
