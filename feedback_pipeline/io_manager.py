"""Hive-partitioned Parquet for every stage table, written atomically through Storage.

Assets return a DataFrame, an Arrow table, or a BatchStream (written batch by batch); an input
annotated `PartitionBatches` arrives as a lazy reader instead of a loaded frame, so the large
per-day stages stream without any special case here or in the assets.

`warehouse` holds redacted, reviewer-safe tables; `restricted` holds raw traces, the vault and
quarantine, owner-only. Assets return pandas frames; this layer decides where they live.
"""

from __future__ import annotations

import pickle
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.runtime import end_of_stage
from feedback_pipeline.progress import StageProgress, progress_of
from feedback_pipeline.storage import (
    RESTRICTED,
    WAREHOUSE,
    BatchStream,
    PartitionBatches,
    Storage,
)


class ParquetIOManager(dg.ConfigurableIOManager):
    """One Parquet file per (table, day) under <data_root>/<zone>/<table>/date=<day>/."""

    data_root: str
    zone: str = WAREHOUSE

    @property
    def storage(self) -> Storage:
        return Storage(self.data_root)

    def _day(self, context: dg.OutputContext | dg.InputContext) -> str | None:
        if isinstance(context, dg.InputContext):
            return context.asset_partition_key if context.has_asset_partitions else None
        return context.partition_key if context.has_partition_key else None

    def _progress(self, context: dg.OutputContext | dg.InputContext) -> StageProgress | None:
        """The step's running figures (progress.py); None outside a step (a test's context)."""
        try:
            step = context.step_context
        except Exception:  # noqa: BLE001 - a context built by hand has no step
            return None
        return progress_of(step.run_id, step.step.key, self._day(context))

    def handle_output(self, context: dg.OutputContext,
                      obj: pd.DataFrame | pa.Table | BatchStream) -> None:
        name, day = context.asset_key.path[-1], self._day(context)
        progress = self._progress(context)
        if progress is not None:
            progress.begin_output(name)
        if isinstance(obj, BatchStream):
            stream = obj if progress is None else obj.counted(progress.wrote)
            path, rows = self.storage.write_stream(self.zone, name, day, stream)
        else:
            table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(
                obj, preserve_index=False)
            path = self.storage.write_table(self.zone, name, day, table)
            rows = table.num_rows
        context.add_output_metadata({"dagster/row_count": rows,
                                     "path": dg.MetadataValue.path(self.storage.relative(path))})
        if progress is not None:
            progress.finish_output(rows)
            context.add_output_metadata(progress.metadata(rows))
        # the step's output is on disk: its worker processes stop and its freed heap goes
        # back to the OS here, so the next stage of an in-process run does not start at this
        # one's high-water mark (no per-step hook, whose events would crowd the run's log)
        end_of_stage()

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | PartitionBatches:
        """A DataFrame, or a lazy PartitionBatches when the input is annotated with that type.

        An input declared with `AssetIn(metadata={"columns": [...]})` loads only those columns,
        so a stage that needs three columns of a million-row day never reads its text."""
        name, day = context.asset_key.path[-1], self._day(context)
        progress = self._progress(context)
        if getattr(context.dagster_type, "typing_type", None) is PartitionBatches:
            batches = self.storage.batches(self.zone, name, day)
            if progress is not None:
                batches.on_read(progress.reading, progress.was_read)
            return batches
        columns = (context.definition_metadata or {}).get("columns")
        return self.storage.read_table(self.zone, name, day, columns=columns).to_pandas()


class StepIOManager(dg.ConfigurableIOManager):
    """What one op hands the next inside a graph-backed asset (a shard's plan, a parsed shard's
    staged paths and counts): small values, pickled under <data_root>/restricted/.steps/<run
    id>/, where a step in another process, or on another machine that sees the data root,
    reads them. They hold file names and counts, never rows; rows travel as staged tables
    (storage.StagedTable)."""

    data_root: str

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Any:
        output = context.upstream_output if isinstance(context, dg.InputContext) else context
        assert output is not None
        parts = [output.step_key, output.name,
                 *([output.mapping_key] if output.mapping_key else [])]
        name = "-".join(part.replace("/", "_") for part in parts) + ".pickle"
        return Storage(self.data_root).root / RESTRICTED / ".steps" / output.run_id / name

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        Storage(self.data_root).write_bytes(self._path(context), pickle.dumps(obj))

    def load_input(self, context: dg.InputContext) -> Any:
        return pickle.loads(self._path(context).read_bytes())  # noqa: S301 - written by a step of this run
