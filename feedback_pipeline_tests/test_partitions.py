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


def test_run_reports_landed_days_outside_the_partitions_and_strays_instead_of_failing(
        generated_root, tmp_path):
    """A day before the start, a day not over yet, folders not named as a day and a loose
    file: each is named in the summary and the landed day in range runs (a partition key that
    does not exist used to fail the whole run)."""
    import shutil

    import dagster as dg

    from feedback_pipeline.cli import run_pipeline
    from feedback_pipeline.partitions import PARTITIONS_START
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    root = copy_root(generated_root, tmp_path / "data")
    early = "2019-12-31"
    assert early < PARTITIONS_START
    shutil.copytree(root / "landing" / "traces" / DAYS[0], root / "landing" / "traces" / early)
    for stray in ("2099-01-01", "not-a-day", "2024-13-40"):
        shutil.copytree(root / "landing" / "traces" / DAYS[0], root / "landing" / "traces" / stray)
    (root / "landing" / "traces" / "notes.jsonl").write_text("{}\n")
    (root / "landing" / "reviews" / "misfiled").mkdir()
    for kind in ("traces", "reviews", "judge"):  # one landed day is enough to show it
        shutil.rmtree(root / "landing" / kind / DAYS[1], ignore_errors=True)
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert outcome.error is None, outcome.error
    assert outcome.days == [DAYS[0]]
    [note] = [a for a in outcome.advisories if "before the partitions start" in a]
    assert early in note and "partitions_start" in note
    [late] = [a for a in outcome.advisories if "after the last complete UTC day" in a]
    assert "2099-01-01" in late
    assert "3 entries under landing/traces/ are not YYYY-MM-DD day folders" in " ".join(
        outcome.advisories)
    assert "1 entry under landing/reviews/" in " ".join(outcome.advisories)


def test_a_root_landed_to_end_yesterday_has_a_partition_for_each_landed_day_only(tmp_path):
    """What `make demo` lands: its daily partitions are exactly its days, none empty."""
    import json
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from feedback_pipeline.cli import main

    root = tmp_path / "demo"
    assert main(["generate", "--out", str(root), "--end", "yesterday", "--days", "3",
                 "--traces-per-day", "20", "--quiet"]) == 0
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    landed = sorted(p.name for p in (root / "landing" / "traces").iterdir())
    assert landed == [(yesterday - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    env = {k: v for k, v in os.environ.items() if k != "FEEDBACK_PARTITIONS_START"}
    env["FEEDBACK_DATA_ROOT"] = str(root)
    keys = subprocess.run(
        [sys.executable, "-c", "import json; from feedback_pipeline.partitions import "
         "daily_partitions as d; print(json.dumps(d.get_partition_keys()))"],
        env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(keys) == landed


def test_generate_takes_an_end_day_or_a_start_day_and_can_keep_the_config(tmp_path, capsys):
    from feedback_pipeline.cli import main

    root = tmp_path / "root"
    assert main(["generate", "--out", str(root), "--end", "2026-05-10", "--days", "2",
                 "--traces-per-day", "20", "--quiet"]) == 0
    assert sorted(p.name for p in (root / "landing" / "traces").iterdir()) == [
        "2026-05-09", "2026-05-10"]
    policy = root / "config" / "policy.yaml"
    policy.write_text(policy.read_text() + "# curated by hand\n")
    assert main(["generate", "--out", str(root), "--start", "2026-06-01", "--days", "1",
                 "--traces-per-day", "20", "--quiet", "--no-config"]) == 0
    assert policy.read_text().endswith("# curated by hand\n")
    assert (root / "landing" / "traces" / "2026-06-01").is_dir()
    with pytest.raises(SystemExit) as refused:
        main(["generate", "--out", str(root), "--start", "2026-05-01", "--end", "2026-05-02"])
    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
