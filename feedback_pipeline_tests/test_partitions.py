"""Where the daily partitions start: declared, else the first landed day, never hard-coded."""

from datetime import date

import pytest

from feedback_pipeline.partitions import DEFAULT_START, START_ENV, resolve_partitions_start


def _land(root, kind, day):
    folder = root / "landing" / kind / day
    folder.mkdir(parents=True)
    (folder / "x.jsonl").write_text("{}\n")


def test_the_environment_then_the_policy_then_the_first_landed_day(tmp_path):
    root = tmp_path / "data"
    assert resolve_partitions_start({}, root) == (
        DEFAULT_START, "the default (nothing declared, nothing landed)")
    _land(root, "traces", "2025-04-30")
    _land(root, "reviews", "2025-03-02")
    _land(root, "traces", "not-a-day")
    assert resolve_partitions_start({}, root)[0] == "2025-03-02"
    (root / "config").mkdir()
    (root / "config" / "policy.yaml").write_text("partitions_start: 2024-01-15\n")
    start, where = resolve_partitions_start({}, root)
    assert start == "2024-01-15" and "partitions_start" in where
    assert resolve_partitions_start({START_ENV: "2023-06-01"}, root) == ("2023-06-01", START_ENV)


def test_a_declared_start_that_is_not_a_day_is_refused_naming_where(tmp_path):
    with pytest.raises(ValueError, match=START_ENV):
        resolve_partitions_start({START_ENV: "yesterday"}, tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "policy.yaml").write_text("partitions_start: 2024-13-40\n")
    with pytest.raises(ValueError, match="partitions_start"):
        resolve_partitions_start({}, tmp_path)


def test_the_policy_accepts_the_start_as_a_yaml_date(generated_root, tmp_path):
    import yaml

    from feedback_pipeline.settings import ConfigError, load_policy
    from feedback_pipeline.storage import Storage
    from feedback_pipeline_tests.conftest import copy_root

    root = copy_root(generated_root, tmp_path / "data")
    path = root / "config" / "policy.yaml"
    declared = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**declared, "partitions_start": date(2026, 4, 1)}))
    assert load_policy(Storage(root)).partitions_start == "2026-04-01"
    path.write_text(yaml.safe_dump({**declared, "partitions_start": "April"}))
    with pytest.raises(ConfigError, match="partitions_start 'April'"):
        load_policy(Storage(root))


def test_run_reports_landed_days_before_the_start_instead_of_failing(generated_root, tmp_path,
                                                                     monkeypatch):
    import shutil

    import dagster as dg

    from feedback_pipeline.cli import run_pipeline
    from feedback_pipeline.partitions import PARTITIONS_START
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    root = copy_root(generated_root, tmp_path / "data")
    early = "2019-12-31"
    assert early < PARTITIONS_START
    shutil.copytree(root / "landing" / "traces" / DAYS[0], root / "landing" / "traces" / early)
    for kind in ("traces", "reviews", "judge"):  # one landed day is enough to show it
        shutil.rmtree(root / "landing" / kind / DAYS[1], ignore_errors=True)
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.error is None, outcome.error
    assert outcome.days == [DAYS[0]]
    [note] = [a for a in outcome.advisories if "before the partitions start" in a]
    assert early in note and "partitions_start" in note
