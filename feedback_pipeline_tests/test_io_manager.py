import dagster as dg
import pandas as pd
import pytest

from feedback_pipeline.io_manager import ParquetIOManager
from feedback_pipeline.storage import WAREHOUSE, PartitionBatches, Storage

days = dg.DailyPartitionsDefinition(start_date="2026-05-01")


@dg.asset(partitions_def=days, io_manager_key="parquet")
def wide() -> pd.DataFrame:
    return pd.DataFrame({"trace_id": ["t1", "t2"], "text": ["long", "longer"], "n": [1, 2]})


@dg.asset(partitions_def=days, io_manager_key="parquet",
          ins={"wide": dg.AssetIn(metadata={"columns": ["trace_id", "n"]})})
def narrow(wide: pd.DataFrame) -> pd.DataFrame:
    assert list(wide.columns) == ["trace_id", "n"]
    return wide.assign(n=wide["n"] * 10)


@dg.asset(partitions_def=days, io_manager_key="parquet")
def streamed(wide: PartitionBatches) -> pd.DataFrame:
    assert isinstance(wide, PartitionBatches)
    return pd.concat(list(wide.iter_frames(batch_size=1)), ignore_index=True)


def test_inputs_load_only_declared_columns_or_stream(tmp_path):
    result = dg.materialize(
        [wide, narrow, streamed], partition_key="2026-05-02",
        resources={"parquet": ParquetIOManager(data_root=str(tmp_path))})
    assert result.success
    storage = Storage(tmp_path)
    stored = storage.read_table(WAREHOUSE, "narrow", "2026-05-02").to_pandas()
    assert stored["n"].tolist() == [10, 20]
    assert storage.read_table(WAREHOUSE, "streamed", "2026-05-02").num_rows == 2
    assert storage.partition_path(WAREHOUSE, "wide", "2026-05-02").exists()


@pytest.mark.slow  # a whole pipeline run, counting its worker processes
def test_a_run_stops_each_stages_workers_without_per_step_hook_events(generated_root, tmp_path,
                                                                      monkeypatch):
    import dagster as dg

    from feedback_pipeline import io_manager
    from feedback_pipeline.cli import run_pipeline
    from feedback_pipeline.core import runtime
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    stopped: list[int] = []
    monkeypatch.setattr(io_manager, "end_of_stage",
                        lambda: stopped.append(1) or runtime.end_of_stage())  # a spy
    root = copy_root(generated_root, tmp_path / "data")
    instance = dg.DagsterInstance.ephemeral()
    outcome = run_pipeline(root, end=DAYS[0], instance=instance)
    assert outcome.error is None, outcome.error
    kinds = {record.dagster_event.event_type_value for run in instance.get_runs()
             for record in instance.all_logs(run.run_id) if record.dagster_event}
    assert "STEP_SUCCESS" in kinds
    assert not {k for k in kinds if k.startswith("HOOK")}, kinds
    outputs = sum(1 for run in instance.get_runs() for record in instance.all_logs(run.run_id)
                  if record.dagster_event and record.dagster_event.event_type_value
                  == "HANDLED_OUTPUT")
    assert len(stopped) == outputs > 10  # after every output written, the workers stop
    assert not runtime._POOLS


@dg.asset(partitions_def=days, io_manager_key="parquet")
def long_stream():
    import pyarrow as pa

    from feedback_pipeline.storage import BatchStream

    schema = pa.schema([("trace_id", pa.string())])
    return BatchStream(schema, (pa.table({"trace_id": [f"t{b}-{i}" for i in range(100)]},
                                         schema=schema) for b in range(7)))


@dg.asset(partitions_def=days, io_manager_key="parquet")
def read_through(long_stream: PartitionBatches) -> pd.DataFrame:
    rows = sum(batch.num_rows for batch in long_stream.iter_batches(batch_size=50))
    return pd.DataFrame({"rows": [rows]})


def test_every_output_reports_rows_per_second_and_elapsed_as_metadata_and_snapshots(
        tmp_path, monkeypatch):
    import json

    from feedback_pipeline.progress import PROGRESS_DIR_ENV

    folder = tmp_path / "progress"
    folder.mkdir()
    monkeypatch.setenv(PROGRESS_DIR_ENV, str(folder))
    result = dg.materialize(
        [long_stream, read_through], partition_key="2026-05-02",
        resources={"parquet": ParquetIOManager(data_root=str(tmp_path / "data"))})
    assert result.success
    for name, rows in (("long_stream", 700), ("read_through", 1)):
        [event] = [e for e in result.get_asset_materialization_events()
                   if e.asset_key.path[-1] == name]
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        assert meta["dagster/row_count"] == rows
        assert meta["elapsed_seconds"] > 0
        elapsed = meta["elapsed_seconds"]  # rounded to the millisecond
        assert rows / (elapsed + 0.0006) <= meta["rows_per_second"] <= rows / max(
            elapsed - 0.0006, 1e-9)
    snapshots = {json.loads(p.read_text())["step"]: json.loads(p.read_text())
                 for p in folder.glob("*.json")}
    assert set(snapshots) == {"long_stream", "read_through"}  # no step-level leftovers
    assert snapshots["long_stream"] | {"elapsed": 0} == {
        "step": "long_stream", "day": "2026-05-02", "rows": 700, "read": 0,
        "read_total": None, "elapsed": 0, "done": True}
    # the streamed input's pass is counted against its stored rows
    assert (snapshots["read_through"]["read"], snapshots["read_through"]["read_total"]) == (
        700, 700)
    assert not list(folder.glob(".*"))  # every snapshot was renamed into place
