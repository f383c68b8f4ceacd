"""frozen_evaluation_set and routed_queues: reserve evaluation ids first, then route.

The frozen set is read from config before any routing, so an id listed there can never reach a
training queue, whatever its trace says.
"""


import dagster as dg
import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.routing import DESTINATIONS, route
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import WAREHOUSE_IO, counts_table
from feedback_pipeline.storage import WAREHOUSE, BatchStream, PartitionBatches

ROUTING_COLUMNS = ["trace_id", "slice", "reserved_for_evaluation", "unsafe_effect",
                   "candidates", "approved_answer"]
ROUTED_SCHEMA = pa.schema([(name, pa.large_string())
                           for name in ("trace_id", "slice", "destination", "reason")])


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    group_name="evaluation",
    kinds={"parquet"},
    description="Every reserved evaluation id of the policy's frozen set, its content "
                "fingerprint and when it was reserved. A set version is append-only.",
)
def frozen_evaluation_set(context: dg.AssetExecutionContext,
                          pipeline: PipelineResource) -> dg.Output[pd.DataFrame]:
    storage = pipeline.storage
    frozen = pipeline.frozen_set()
    previous = (storage.read_table(WAREHOUSE, "frozen_evaluation_set", None).to_pandas()
                if storage.has_table(WAREHOUSE, "frozen_evaluation_set", None) else None)
    table = reserve(frozen.set_id, list(frozen.ids), frozen.reserved_at, previous)
    found = storage.prompt_fingerprints(list(frozen.ids), with_prompts=False).dropna(
        subset=["prompt_fingerprint"])
    table["prompt_fingerprint"] = table["trace_id"].map(
        dict(zip(found["trace_id"], found["prompt_fingerprint"], strict=True)))
    return dg.Output(table, metadata={
        "dagster/row_count": len(table), "set_id": frozen.set_id,
        "with_fingerprint": int(table["prompt_fingerprint"].notna().sum())})


def reserve(set_id: str, ids: list[str], reserved_at: str,
            previous: pd.DataFrame | None) -> pd.DataFrame:
    """The set's rows; ids already reserved keep their date; removing an id is refused."""
    known: dict[str, str] = {}
    if previous is not None and len(previous):
        same = previous[previous["set_id"] == set_id]
        known = dict(zip(same["trace_id"], same["reserved_at"], strict=True))
        removed = sorted(set(known) - set(ids))
        if removed:
            raise dg.Failure(description=(
                f"frozen set {set_id} is append-only, but {len(removed)} id(s) were removed "
                f"from its config ({', '.join(removed[:20])}); publish a new set version "
                "instead of editing this one"))
    return pd.DataFrame({"set_id": set_id, "trace_id": ids,
                         "reserved_at": [known.get(i, reserved_at) for i in ids]})


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="routing",
    kinds={"parquet"},
    description="One row per (trace, destination queue) with the rule that sent it there.",
    deps=["frozen_evaluation_set"],
)
def routed_queues(
    pipeline: PipelineResource, redacted_traces: PartitionBatches
) -> dg.Output[BatchStream]:
    # The frozen ids are read from their config, the source of truth, so a day can be routed
    # before frozen_evaluation_set was ever materialized; the dependency records the lineage.
    # Returned as a stream: an in-process run keeps every returned value until the run ends,
    # and a stream lets go of its batches once they are written.
    frozen_ids = set(pipeline.frozen_set().ids)
    frames = [route(frame, frozen_ids) for frame in
              redacted_traces.iter_frames(columns=ROUTING_COLUMNS)]
    counts = {d: sum(int((frame["destination"] == d).sum()) for frame in frames)
              for d in DESTINATIONS}
    rows = sum(len(frame) for frame in frames)
    return dg.Output(
        BatchStream(ROUTED_SCHEMA, iter(frames)),
        metadata={
            "dagster/row_count": rows,
            "queues": counts_table(counts, "destination"),
            **{f"queue/{d.lower()}": n for d, n in counts.items()},
        },
    )
