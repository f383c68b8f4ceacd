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
