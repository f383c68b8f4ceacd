"""The pipeline resource parses policy.yaml once per run, not on every access."""

import dagster as dg

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
