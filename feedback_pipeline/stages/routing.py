"""frozen_evaluation_set and routed_queues: reserve evaluation ids first, then route.

The frozen set is read from config before any routing, so an id listed there can never reach a
training queue, whatever its trace says.
"""


import dagster as dg
import pandas as pd

from feedback_pipeline.core.routing import DESTINATIONS, route
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import WAREHOUSE_IO, counts_table
from feedback_pipeline.storage import PartitionBatches

ROUTING_COLUMNS = ["trace_id", "slice", "reserved_for_evaluation", "unsafe_effect",
                   "candidates", "approved_answer"]


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    group_name="evaluation",
    kinds={"parquet"},
    description="The reserved evaluation ids of the policy's frozen set (append-only config).",
)
def frozen_evaluation_set(pipeline: PipelineResource) -> dg.Output[pd.DataFrame]:
    frozen = pipeline.frozen_set()
    table = pd.DataFrame({
        "set_id": frozen.set_id,
        "trace_id": list(frozen.ids),
        "reserved_at": frozen.reserved_at,
    })
    return dg.Output(table, metadata={"dagster/row_count": len(table), "set_id": frozen.set_id})


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
) -> dg.Output[pd.DataFrame]:
    # The frozen ids are read from their config, the source of truth, so a day can be routed
    # before frozen_evaluation_set was ever materialized; the dependency records the lineage.
    frozen_ids = set(pipeline.frozen_set().ids)
    queues = pd.concat([route(frame, frozen_ids) for frame in
                        redacted_traces.iter_frames(columns=ROUTING_COLUMNS)]
                       or [route(redacted_traces.to_pandas(ROUTING_COLUMNS), frozen_ids)],
                       ignore_index=True)
    counts = {d: int((queues["destination"] == d).sum()) for d in DESTINATIONS}
    return dg.Output(
        queues,
        metadata={
            "dagster/row_count": len(queues),
            "queues": counts_table(counts, "destination"),
            **{f"queue/{d.lower()}": n for d, n in counts.items()},
        },
    )
