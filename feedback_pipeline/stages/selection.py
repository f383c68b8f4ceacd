"""selected_batch: the hybrid (uncertainty + coverage) batch and a random batch of equal size.

Uncertainty comes from a preference model trained on pairs accepted before this day; with no
model yet the stage says so and both batches are random, as the seed demands.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from feedback_pipeline.core.contract import candidates_of
from feedback_pipeline.core.preference_model import PreferenceModel, uncertainty_for
from feedback_pipeline.core.routing import PREFERENCE_QUEUE
from feedback_pipeline.core.selection import embed_texts, hybrid_select, random_select
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import WAREHOUSE_IO
from feedback_pipeline.storage import WAREHOUSE, Storage

BATCH_COLUMNS = ["strategy", "rank", "trace_id", "slice", "uncertainty", "coverage", "score",
                 "fallback", "note"]


def earlier_pairs(storage: Storage, day: str) -> pd.DataFrame:
    """Accepted preference pairs from partitions before `day` (the model's training data)."""
    days = [d for d in storage.table_days(WAREHOUSE, "preference_pairs") if d < day]
    scan = storage.scan_sql(WAREHOUSE, "preference_pairs", days)
    if scan is None:
        return pd.DataFrame(columns=["prompt", "chosen", "rejected"])
    return storage.query("SELECT prompt, chosen, rejected FROM {t}", t=scan).to_pandas()


def select_batches(pool: pd.DataFrame, history: pd.DataFrame, batch_size: int,
                   weight_uncertainty: float, seed: int) -> pd.DataFrame:
    """Hybrid and random batches over one day's preference pool, with their scores."""
    if pool.empty:
        return pd.DataFrame(columns=BATCH_COLUMNS)
    size = min(batch_size, len(pool))
    cands = [candidates_of(c) for c in pool["candidates"]]
    text_a = [c[0]["text"] for c in cands]
    text_b = [c[1]["text"] for c in cands]
    prompts = pool["prompt"].tolist()
    model = None
    if len(history) >= 2:
        model = PreferenceModel().fit(history["prompt"].tolist(), history["chosen"].tolist(),
                                      history["rejected"].tolist())
    uncertainty, note = uncertainty_for(model, prompts, text_a, text_b)
    ids = pool["trace_id"].to_numpy(dtype=object)
    slices = pool["slice"].to_numpy(dtype=object)
    random_idx = random_select(len(pool), size, seed)
    frames = []
    if uncertainty is None:
        hybrid = pd.DataFrame({"rank": np.arange(1, size + 1),
                               "pool_index": random_select(len(pool), size, seed + 1),
                               "uncertainty": np.nan, "coverage": np.nan, "score": np.nan})
        fallback = True
    else:
        embeddings = embed_texts([f"{p}\n{a}\n{b}" for p, a, b in zip(prompts, text_a, text_b,
                                                                       strict=True)],
                                 dim=min(64, max(2, len(pool) - 1)), seed=seed)
        hybrid = hybrid_select(embeddings, uncertainty, size, weight_uncertainty).to_frame()
        fallback = False
    hybrid["strategy"] = "hybrid"
    frames.append(hybrid)
    rand = pd.DataFrame({"rank": np.arange(1, size + 1), "pool_index": random_idx,
                         "uncertainty": np.nan if uncertainty is None
                         else uncertainty[random_idx],
                         "coverage": np.nan, "score": np.nan, "strategy": "random"})
    frames.append(rand)
    out = pd.concat(frames, ignore_index=True)
    out["trace_id"] = ids[out["pool_index"].to_numpy()]
    out["slice"] = slices[out["pool_index"].to_numpy()]
    out["fallback"] = fallback
    out["note"] = note
    return out[BATCH_COLUMNS]


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
    pool_ids = set(routed_queues.loc[routed_queues["destination"] == PREFERENCE_QUEUE,
                                     "trace_id"])
    pool = redacted_traces[redacted_traces["trace_id"].isin(pool_ids)].reset_index(drop=True)
    history = earlier_pairs(pipeline.storage, context.partition_key)
    batches = select_batches(pool, history, policy.batch_size, policy.weight_uncertainty,
                             policy.random_seed)
    note = batches["note"].iloc[0] if len(batches) else "empty preference pool"
    context.log.info(f"selection on {context.partition_key}: {note}")
    return dg.Output(batches, metadata={
        "dagster/row_count": len(batches),
        "pool_size": len(pool),
        "batch_size": int((batches["strategy"] == "hybrid").sum()),
        "model": note,
        "random_fallback": bool(batches["fallback"].any()) if len(batches) else True,
        "selection_policy_version": policy.selection_policy_version,
    })
