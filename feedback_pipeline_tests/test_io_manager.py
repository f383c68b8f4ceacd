import dagster as dg
import pandas as pd

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


def test_a_run_stops_each_stages_workers_without_per_step_hook_events(generated_root, tmp_path,
                                                                      monkeypatch):
    import dagster as dg

    from feedback_pipeline import io_manager
    from feedback_pipeline.cli import run_pipeline
    from feedback_pipeline.core import parallel
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    stopped: list[int] = []
    monkeypatch.setattr(io_manager, "end_of_stage",
                        lambda: stopped.append(1) or parallel.end_of_stage())
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
    assert not parallel._POOLS
