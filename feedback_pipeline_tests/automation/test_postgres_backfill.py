"""A real PostgreSQL instance (deploy/dagster-postgres.yaml) and a three-day Dagster backfill,
its runs launched in parallel by a real daemon from the run queue."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from feedback_pipeline.automation.backfill import BACKFILL_TAG, backfill
from feedback_pipeline.core.contract import read_lines
from feedback_pipeline.definitions import STAGE_MODULES, build_definitions
from feedback_pipeline.storage import RESTRICTED, WAREHOUSE, Storage

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")


@pytest.fixture(scope="module")
def three_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from feedback_pipeline.synth.generator import generate

    root = tmp_path_factory.mktemp("pg_backfill") / "data"
    generate(root, days=len(DAYS), traces_per_day=24, seed=5, start=date.fromisoformat(DAYS[0]))
    return root


@pytest.fixture
def postgres_home(postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DAGSTER_HOME holding deploy/dagster-postgres.yaml, its variables pointing at the server."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in postgres_server.env().items():
        monkeypatch.setenv(name, value)
    return home


def upstream_of_daily(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Unpartitioned assets the daily stages read (materialized once before any day runs)."""
    graph = defs.resolve_asset_graph()
    daily = set(defs.resolve_job_def("daily_pipeline").asset_layer.selected_asset_keys)
    parents = {p for key in daily for p in graph.get(key).parent_keys} - daily
    return sorted(p for p in parents if graph.get(p).is_materializable
                  and graph.get(p).partitions_def is None)


def landed_lines(storage: Storage, day: str) -> int:
    return sum(1 for path in storage.landing_files("traces", day, TRACE_SUFFIXES)
               for _ in read_lines(path))


def test_three_days_backfill_in_parallel_on_postgres(three_days: Path, postgres_home: Path):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    storage = Storage(three_days)
    defs = build_definitions(str(three_days))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        upstream = upstream_of_daily(defs)
        if upstream:
            result = dg.materialize(dg.load_assets_from_modules(STAGE_MODULES),
                                    resources=defs.resources, instance=instance,
                                    selection=upstream)
            assert result.success

    env = {**os.environ, "FEEDBACK_DATA_ROOT": str(three_days)}
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
         str(REPO / "workspace.yaml")], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        backfill_id, runs = backfill(DAYS, three_days, timeout=900)
    finally:  # the daemon and its code server: the whole process group
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    assert sorted(r.day for r in runs) == DAYS
    assert all(r.success for r in runs), runs

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(
            dg.RunsFilter(run_ids=[r.run_id for r in runs]))
        assert {r.dagster_run.tags["dagster/partition"] for r in records} == set(DAYS)
        assert {r.dagster_run.tags[BACKFILL_TAG] for r in records} == {backfill_id}
        assert instance.get_backfill(backfill_id) is not None, "Dagster's own backfill record"
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        spans = sorted((r.start_time, r.end_time) for r in records)
        overlapping = sum(1 for (_, end), (start, _) in zip(spans, spans[1:], strict=False)
                          if start < end)
        assert overlapping >= 1, f"runs did not overlap: {spans}"
        engine = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        assert any("multiprocess" in (e.message or "").lower() for e in engine)
        for asset in ("raw_traces", "redacted_traces", "routed_queues"):
            events = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
            partitions = [e.partition_key for e in events]
            assert sorted(partitions) == DAYS, (asset, partitions)

    seen_ids: list[str] = []
    for day in DAYS:
        raw = storage.read_table(RESTRICTED, "raw_traces", day).to_pandas()
        quarantine = storage.read_table(RESTRICTED, "trace_quarantine", day).to_pandas()
        redacted = storage.read_table(WAREHOUSE, "redacted_traces", day).to_pandas()
        assert len(raw) + len(quarantine) == landed_lines(storage, day)
        assert len(redacted) == len(raw) > 0
        assert redacted["trace_id"].is_unique
        assert set(redacted["trace_id"]) == set(raw["trace_id"])
        assert (pd.to_datetime(redacted["created_at"], utc=True).dt.strftime("%Y-%m-%d")
                == day).all()
        seen_ids += redacted["trace_id"].tolist()
    assert len(seen_ids) == len(set(seen_ids)), "a trace arrived in more than one partition"
    union = storage.query("SELECT count(*) AS n, count(DISTINCT trace_id) AS d FROM {t}",
                          t=storage.scan_sql(WAREHOUSE, "redacted_traces", DAYS)).to_pylist()[0]
    assert union == {"n": len(seen_ids), "d": len(seen_ids)}
