"""The config files parsed into typed objects, and check_config naming every problem: the file,
the key and the rule, never a silent default for a gate."""

import pytest
import yaml

from feedback_pipeline.settings import ConfigError, Policy, check_config, load_policy
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import copy_root


@pytest.fixture
def root(generated_root, tmp_path):
    return copy_root(generated_root, tmp_path / "data")


def _policy(root, **change):
    path = root / "config" / "policy.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **change}))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("kappa_gate", "high", "kappa_gate must be a number, got str"),
    ("batch_size", 2.5, "batch_size must be an integer, got float"),
    ("release_jsonl", "yes", "release_jsonl must be true or false, got str"),
    ("dataset_name", 12, "dataset_name must be a string, got int"),
    ("kappa_gate", 1.5, "invalid value for kappa_gate"),
    ("agreement_statistic", "cohen", "agreement_statistic 'cohen' is not one of"),
    ("parent_dataset", "other-series-v3", "is not a version of dataset_name"),
])
def test_a_wrong_policy_value_is_refused_naming_the_key(root, key, value, message):
    _policy(root, **{key: value})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_policy(Storage(root))
    assert any(message in problem for problem in check_config(Storage(root)))


def test_the_generated_config_is_valid_and_defaults_are_the_contracts(root):
    assert check_config(Storage(root)) == []
    policy = load_policy(Storage(root))
    assert policy.kappa_gate == 0.65 and Policy().kappa_gate == 0.65
    assert policy.partitions_start is None and not policy.release_jsonl


def test_check_config_names_each_broken_file(root):
    config = root / "config"
    policy = yaml.safe_load((config / "policy.yaml").read_text())
    (config / "rubrics" / f"{policy['rubric_version']}.yaml").write_text("criteria: 5\n")
    (config / "frozen_eval" / f"{policy['frozen_eval_set']}.yaml").write_text("ids: nope\n")
    (config / "reviewers.yaml").write_text("reviewers: {a: b}\n")
    (config / "sources.yaml").write_text("sources: {'x-*': {format: carrier-pigeon}}\n")
    problems = check_config(Storage(root))
    text = "\n".join(problems)
    assert f"{policy['rubric_version']}.yaml" in text
    assert "'ids' must be a list of trace ids" in text
    assert "reviewers.yaml" in text and "must be a list" in text
    assert "sources.yaml" in text
    assert len(problems) >= 4


def test_a_policy_that_is_not_yaml_is_one_problem_naming_the_file(root):
    (root / "config" / "policy.yaml").write_text("kappa_gate: [0.65\n")
    [problem] = check_config(Storage(root))
    assert "policy.yaml" in problem and "not valid YAML" in problem


def test_the_deny_list_and_retractions_are_read_from_config_and_optional(tmp_path):
    from feedback_pipeline.settings import load_deny_terms, load_retractions

    storage = Storage(tmp_path)
    assert load_deny_terms(storage) == [] and load_retractions(storage) == set()
    (tmp_path / "config" / "redaction").mkdir(parents=True)
    (tmp_path / "config" / "redaction" / "deny_list.txt").write_text(
        "# names\nZoë Müller\n\n  José   # a comment\n", encoding="utf-8")
    (tmp_path / "config" / "retractions.txt").write_text("row-1  # wrong label\n\nrow-2\n")
    assert load_deny_terms(storage) == ["Zoë Müller", "José"]
    assert load_retractions(storage) == {"row-1", "row-2"}
