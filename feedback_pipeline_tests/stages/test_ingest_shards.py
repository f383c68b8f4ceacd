"""Sharded days (policy `shards_per_day`): the day's files parsed as shards of whole files, one
executor step each, merged back into exactly the tables an unsharded run writes."""

import gzip
import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from feedback_pipeline.definitions import build_definitions, stage_assets
from feedback_pipeline.stages import ingest
from feedback_pipeline.storage import Storage

DAY = "2026-05-02"
PLANTED = "planted-value-9f3e2d"  # in a bad line: only the restricted quarantine may hold it


def line(tid: str, day: str = DAY, **extra) -> str:
    return json.dumps({"trace_id": tid, "created_at": f"{day}T10:00:00Z",
                       "prompt": f"review {tid}", **extra})


def set_shards(root: Path, shards: int) -> None:
    policy = root / "config" / "policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(policy.read_text()) if policy.exists() else {}
    policy.write_text(yaml.safe_dump({**(data or {}), "shards_per_day": shards}))


def land_day(root: Path) -> None:
    """Seven files of one day with faults in several of them, and a day before it."""
    landing = root / "landing" / "traces"
    (landing / "2026-05-01").mkdir(parents=True)
    (landing / "2026-05-01" / "a.jsonl").write_text(line("early", "2026-05-01") + "\n")
    day = landing / DAY
    day.mkdir()
    for k in range(5):
        rows = [line(f"f{k}-{i}") for i in range(40)]
        if k == 1:
            rows += ["{not json " + PLANTED, line("f0-3"), line("early")]  # repeats, a bad line
        if k == 3:
            rows += [line("f1-7"), json.dumps({"trace_id": "no-date", "prompt": "p"})]
        (day / f"part-{k}.jsonl").write_text("\n".join(rows) + "\n")
    whole = gzip.compress(("\n".join(line(f"gz{i}") for i in range(500)) + "\n").encode())
    (day / "part-5.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # breaks off
    (day / "part-6.jsonl.gz").write_text(line("plain") + "\n")  # not gzip
    (day / "readme.txt").write_text("not a trace file\n")


def raw_traces_asset(root: Path) -> dg.AssetsDefinition:
    return next(a for a in stage_assets(str(root)) if isinstance(a, dg.AssetsDefinition)
                and dg.AssetKey("raw_traces") in a.keys)


def ingest_days(root: Path, days: tuple[str, ...] = ("2026-05-01", DAY)) -> None:
    defs = build_definitions(str(root))
    asset = raw_traces_asset(root)
    instance = dg.DagsterInstance.ephemeral()
    for key in days:
        result = dg.materialize([asset], partition_key=key, instance=instance,
                                resources=defs.resources)
        assert result.success, key


def test_shards_are_contiguous_runs_of_whole_files_balanced_by_bytes(tmp_path):
    day = tmp_path / "landing" / "traces" / DAY
    day.mkdir(parents=True)
    for name, size in [("a.jsonl", 100), ("b.jsonl", 100), ("c.jsonl", 100), ("d.jsonl", 100),
                       ("e.jsonl.gz", 400), ("f.jsonl", 100)]:
        (day / name).write_text("x" * size)
    storage = Storage(tmp_path)
    shards = ingest.plan_shards(storage, DAY, 3)
    assert [s.files for s in shards] == [("a.jsonl", "b.jsonl", "c.jsonl"),
                                         ("d.jsonl", "e.jsonl.gz"), ("f.jsonl",)]
    assert [s.index for s in shards] == [0, 1, 2] and {s.day for s in shards} == {DAY}
    # more shards than files: one file each, the empty shards not planned
    many = ingest.plan_shards(storage, DAY, 20)
    assert [f for s in many for f in s.files] == sorted(p.name for p in day.iterdir())
    assert all(len(s.files) == 1 for s in many)
    # a day with no files still plans its first shard, so its merge runs
    assert [(s.index, s.files) for s in ingest.plan_shards(storage, "2026-05-03", 4)] == [(0, ())]


@pytest.mark.slow  # runs the day twice, sharded and not
def test_a_sharded_day_writes_exactly_the_tables_of_an_unsharded_one(tmp_path):
    one, three = tmp_path / "one", tmp_path / "three"
    land_day(one)
    set_shards(one, 1)
    shutil.copytree(one, three)
    set_shards(three, 3)
    assert raw_traces_asset(one).node_def.name == "raw_traces"  # the one-step asset
    sharded = raw_traces_asset(three)
    assert {"plan_trace_shards", "parse_trace_shard", "merge_trace_shards"} <= {
        node.name for node in sharded.node_def.node_defs}
    ingest_days(one)
    ingest_days(three)
    for table in ("raw_traces", "trace_quarantine"):
        expected = Storage(one).read_table("restricted", table, DAY)
        got = Storage(three).read_table("restricted", table, DAY)
        assert got.equals(expected), table
    reasons = Storage(three).read_table("restricted", "trace_quarantine", DAY).to_pylist()
    by_place = {(q["source_file"].rsplit("/", 1)[-1], q["line_number"]): q["reason"]
                for q in reasons}
    # the repeats cross shards: part-1 repeats part-0's id, part-3 repeats part-1's
    assert by_place[("part-1.jsonl", 42)] == "trace_id already seen in this partition"
    assert by_place[("part-1.jsonl", 43)] == "trace_id already landed on 2026-05-01"
    assert by_place[("part-3.jsonl", 41)] == "trace_id already seen in this partition"
    assert by_place[("part-6.jsonl.gz", 0)].startswith("not a gzip file")
    assert by_place[("readme.txt", 0)].startswith("the file name does not end in")
    # staged rows are removed once merged; what steps hand each other holds no line
    stage = three / "restricted" / ".stage"
    assert stage.is_dir() and not any(stage.iterdir())
    pickles = list((three / "restricted" / ".steps").rglob("*.pickle"))
    assert len(pickles) >= 6  # three shard plans and three parsed shards
    assert not any(PLANTED.encode() in p.read_bytes() for p in pickles)


def test_shards_per_day_must_be_a_whole_number_from_1(tmp_path):
    from feedback_pipeline.settings import ConfigError, load_policy

    for bad in (0, -2, "four", 2.5):
        set_shards(tmp_path, bad)
        with pytest.raises(ConfigError, match="shards_per_day"):
            load_policy(Storage(tmp_path))


@pytest.mark.slow
def test_a_sharded_day_under_the_multiprocess_executor_releases_the_same_rows(
        generated_root, tmp_path):
    """Issue 21: the same days with `shards_per_day: 4`, each shard its own process, give the
    release of the unsharded run: same files, same rows, same manifest apart from the run."""
    from feedback_pipeline.cli import run_pipeline

    roots = {}
    for name, shards in (("one", 1), ("four", 4)):
        root = shutil.copytree(generated_root, tmp_path / name)
        for day in sorted((root / "landing" / "traces").iterdir()):
            [src] = list(day.iterdir())
            opener = gzip.open if src.name.endswith(".gz") else open
            with opener(src, "rt") as handle:
                lines = handle.read().splitlines()
            src.unlink()
            for k in range(5):  # five files a day, so each shard has some
                part = lines[k::5] + ([lines[0], "{broken"] if k == 3 else [])
                (day / f"traces-{k}.jsonl").write_text("\n".join(part) + "\n")
        set_shards(root, shards)
        roots[name] = root
    outcomes = {"one": run_pipeline(roots["one"]),
                "four": run_pipeline(roots["four"], executor="multiprocess")}
    assert outcomes["one"].promoted and outcomes["four"].promoted
    assert list((roots["four"] / "restricted" / ".steps").rglob("*parse_trace_shard*"))
    releases = sorted((roots["one"] / "releases").rglob("*.parquet"))
    assert releases
    for path in releases:
        twin = roots["four"] / path.relative_to(roots["one"])
        assert pq.read_table(twin).equals(pq.read_table(path)), path.name
    for path in (roots["one"] / "releases").rglob("manifest.json"):
        expected = json.loads(path.read_text())
        got = json.loads((roots["four"] / path.relative_to(roots["one"])).read_text())
        differ = {k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)}
        assert differ <= {"created_at", "dagster_run_id"}, differ


@pytest.mark.slow
def test_a_failed_merge_is_retried_from_failure_on_the_staged_shards(tmp_path):
    """Staged shards are removed only once the merge has written its outputs, so Dagster's
    "re-execute from failure" reruns the merge alone, on the shards the failed run parsed (one
    process per step, as the daily job runs), and writes the tables an unsharded run writes."""
    one, three = tmp_path / "one", tmp_path / "three"
    land_day(one)
    set_shards(one, 1)
    shutil.copytree(one, three)
    set_shards(three, 3)
    ingest_days(one)
    storage = Storage(three)
    ingest_days(three, days=("2026-05-01",))  # the day its repeated ids landed on
    # the merge cannot write its partition: a folder stands where the file goes
    blocker = storage.partition_path("restricted", "raw_traces", DAY)
    blocker.mkdir(parents=True)
    (blocker / "in-the-way").write_text("x")
    job = dg.build_reconstructable_job("feedback_pipeline.definitions", "job_for_root",
                                       reconstructable_args=("daily_pipeline", str(three)))
    run = {"tags": {"dagster/partition": DAY}, "raise_on_error": False,
           "run_config": {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
                          "execution": {"config": {"max_concurrent": 2}}}}
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        failed = dg.execute_job(job, instance=instance, **run, asset_selection=[
            dg.AssetKey("raw_traces"), dg.AssetKey("trace_quarantine")])
        assert not failed.success
        assert {e.step_key for e in failed.all_events if e.is_step_failure} == {
            "raw_traces.merge_trace_shards"}
        parsed = {e.step_key for e in failed.all_events if e.is_step_success}
        assert {k.split("[")[0] for k in parsed} == {"raw_traces.plan_trace_shards",
                                                      "raw_traces.parse_trace_shard"}
        assert any(p.is_file() for p in (three / "restricted" / ".stage").rglob("*"))
        shutil.rmtree(blocker)
        retried = dg.execute_job(job, instance=instance, **run,
                                 reexecution_options=dg.ReexecutionOptions.from_failure(
                                     failed.run_id, instance))
        assert retried.success
        # the merge alone ran again, reading what the failed run's shard steps handed it
        assert {e.step_key for e in retried.all_events if e.is_step_success} == {
            "raw_traces.merge_trace_shards"}
    for table in ("raw_traces", "trace_quarantine"):
        assert storage.read_table("restricted", table, DAY).equals(
            Storage(one).read_table("restricted", table, DAY)), table
    assert not any(p.is_file() for p in (three / "restricted" / ".stage").rglob("*"))
