"""selected_batch: the hybrid (uncertainty + coverage) batch and a random batch of equal size.

Uncertainty comes from a preference model trained on pairs accepted before this day; with no
model yet the stage says so and both batches are random, as the seed demands.
"""


import dagster as dg
import pandas as pd

from feedback_pipeline.core.contract import candidates_of
from feedback_pipeline.core.preference_model import PreferenceModel, uncertainty_for
from feedback_pipeline.core.routing import PREFERENCE_QUEUE
from feedback_pipeline.core.selection import plan_batches
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import WAREHOUSE_IO
from feedback_pipeline.storage import WAREHOUSE, Storage


def earlier_pairs(storage: Storage, day: str) -> pd.DataFrame:
    """Accepted preference pairs from partitions before `day` (the model's training data)."""
    days = [d for d in storage.table_days(WAREHOUSE, "preference_pairs") if d < day]
    scan = storage.scan_sql(WAREHOUSE, "preference_pairs", days)
    if scan is None:
        return pd.DataFrame(columns=["prompt", "chosen", "rejected"])
    return storage.query("SELECT prompt, chosen, rejected FROM {t}", t=scan).to_pandas()


def selection_pool(traces: pd.DataFrame, queues: pd.DataFrame) -> pd.DataFrame:
    """The day's preference-queue pairs: trace_id, slice, prompt, text_a, text_b."""
    ids = set(queues.loc[queues["destination"] == PREFERENCE_QUEUE, "trace_id"])
    pool = traces[traces["trace_id"].isin(ids)]
    cands = [candidates_of(c) for c in pool["candidates"]]
    return pd.DataFrame({"trace_id": pool["trace_id"].to_numpy(),
                         "slice": pool["slice"].to_numpy(),
                         "prompt": pool["prompt"].to_numpy(),
                         "text_a": [c[0]["text"] for c in cands],
                         "text_b": [c[1]["text"] for c in cands]})


def select_batches(pool: pd.DataFrame, history: pd.DataFrame, batch_size: int,
                   weight_uncertainty: float, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Hybrid and random batches over one day's pool; with no model yet, random only."""
    model = None
    if len(history):
        model = PreferenceModel(seed=seed).fit(history["prompt"].tolist(),
                                               history["chosen"].tolist(),
                                               history["rejected"].tolist())
    uncertainty, note = (None, "") if pool.empty else uncertainty_for(
        model, pool["prompt"].tolist(), pool["text_a"].tolist(), pool["text_b"].tolist())
    batches, notes = plan_batches(pool, uncertainty, batch_size,
                                  weight_uncertainty=weight_uncertainty, seed=seed)
    return batches, [note, *notes] if note else notes


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="selection",
    kinds={"parquet", "scikitlearn"},
    description="Hybrid and random review batches of equal size, with the scores behind each.",
    deps=["preference_pairs"],
)
def selected_batch(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                   redacted_traces: pd.DataFrame,
                   routed_queues: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    policy = pipeline.policy
    pool = selection_pool(redacted_traces, routed_queues)
    history = earlier_pairs(pipeline.storage, context.partition_key)
    batches, notes = select_batches(pool, history, policy.batch_size, policy.weight_uncertainty,
                                    policy.random_seed)
    context.log.info(f"selection on {context.partition_key}: {'; '.join(notes)}")
    arms = batches["arm"].value_counts().to_dict()
    return dg.Output(batches, metadata={
        "dagster/row_count": len(batches),
        "pool_size": len(pool),
        "hybrid_batch": int(arms.get("hybrid", 0)),
        "random_batch": int(arms.get("random", 0)),
        "model_trained_on_pairs": len(history),
        "notes": "; ".join(notes) or "none",
        "selection_policy_version": policy.selection_policy_version,
    })
