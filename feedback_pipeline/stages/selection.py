"""selected_batch: the hybrid (uncertainty + coverage) batch and a random batch of equal size.

Uncertainty comes from a preference model trained on pairs accepted before this day; with no
model yet the stage says so and both batches are random, as the seed demands.
"""


import dagster as dg
import pandas as pd

from feedback_pipeline import settings
from feedback_pipeline.core.contract import candidates_of
from feedback_pipeline.core.experiment import selection_experiment
from feedback_pipeline.core.preference_model import PreferenceModel, uncertainty_for
from feedback_pipeline.core.routing import PREFERENCE_QUEUE
from feedback_pipeline.core.selection import plan_batches
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.stages.common import QUEUE_IDS, WAREHOUSE_IO
from feedback_pipeline.storage import WAREHOUSE, PartitionBatches, Storage


def earlier_pairs(storage: Storage, day: str, limit: int) -> pd.DataFrame:
    """The most recent accepted preference pairs before `day`, at most `limit` of them (the
    model's training data: bounded, so the cost of a day does not grow with the history)."""
    days, total = [], 0
    for earlier in reversed([d for d in storage.table_days(WAREHOUSE, "preference_pairs")
                             if d < day]):
        if total >= limit:
            break
        days.append(earlier)
        total += storage.batches(WAREHOUSE, "preference_pairs", earlier).num_rows
    scan = storage.scan_sql(WAREHOUSE, "preference_pairs", days)
    if scan is None:
        return pd.DataFrame(columns=["prompt", "chosen", "rejected"])
    return storage.query("SELECT prompt, chosen, rejected FROM {t} "
                         f"ORDER BY date DESC, trace_id LIMIT {int(limit)}", t=scan).to_pandas()


def pool_ids(queues: pd.DataFrame, limit: int, seed: int) -> pd.Series:
    """The day's preference-queue trace ids; on a day with more than `limit`, a seeded sample
    of `limit` (both batches are drawn from it, so the comparison stays fair)."""
    ids = queues.loc[queues["destination"] == PREFERENCE_QUEUE, "trace_id"]
    return ids.sample(limit, random_state=seed) if len(ids) > limit else ids


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
                   weight_uncertainty: float, seed: int,
                   recommendation: str = "hybrid") -> tuple[pd.DataFrame, list[str]]:
    """Hybrid and random batches over one day's pool; with no model yet, random only."""
    model = None
    if len(history):
        model = PreferenceModel(seed=seed).fit(history["prompt"].tolist(),
                                               history["chosen"].tolist(),
                                               history["rejected"].tolist())
    uncertainty, note = (None, "") if pool.empty else uncertainty_for(
        model, pool["prompt"].tolist(), pool["text_a"].tolist(), pool["text_b"].tolist())
    batches, notes = plan_batches(pool, uncertainty, batch_size,
                                  weight_uncertainty=weight_uncertainty, seed=seed,
                                  recommendation=recommendation)
    return batches, [note, *notes] if note else notes


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="selection",
    kinds={"parquet", "scikitlearn"},
    description="Hybrid and random review batches of equal size, with the scores behind each.",
    deps=["preference_pairs"],
    ins=QUEUE_IDS,
)
def selected_batch(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                   redacted_traces: PartitionBatches,
                   routed_queues: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    policy = pipeline.policy
    preference_ids = pool_ids(routed_queues, policy.selection_pool_limit, policy.random_seed)
    pool = selection_pool(redacted_traces.rows_where_in(
        "trace_id", preference_ids, columns=["trace_id", "slice", "prompt", "candidates"]),
        routed_queues)
    history = (earlier_pairs(pipeline.storage, context.partition_key,
                             policy.model_training_pairs) if len(pool) else pool.iloc[0:0])
    recommendation = current_recommendation(pipeline.storage)
    batches, notes = select_batches(pool, history, policy.batch_size, policy.weight_uncertainty,
                                    policy.random_seed, recommendation)
    context.log.info(f"selection on {context.partition_key}: {'; '.join(notes)}")
    arms = batches["arm"].value_counts().to_dict()
    return dg.Output(batches, metadata={
        "dagster/row_count": len(batches),
        "pool_size": len(pool),
        "pool_sampled_from": int((routed_queues["destination"] == PREFERENCE_QUEUE).sum()),
        "hybrid_batch": int(arms.get("hybrid", 0)),
        "random_batch": int(arms.get("random", 0)),
        "model_trained_on_pairs": len(history),
        "notes": "; ".join(notes) or "none",
        "selection_policy_version": policy.selection_policy_version,
        "recommendation": recommendation,
    })


def frozen_eval_pairs(storage: Storage, labels: list[dict]) -> pd.DataFrame:
    """Frozen pairs with their human outcome: prompt, text_a, text_b, label, slice."""
    scan = storage.scan_sql(WAREHOUSE, "redacted_traces")
    if scan is None or not labels:
        return pd.DataFrame(columns=["trace_id", "prompt", "text_a", "text_b", "label", "slice"])
    traces = storage.query("SELECT trace_id, prompt, candidates FROM {t} WHERE trace_id IN "
                           f"({', '.join(repr(str(x['trace_id'])) for x in labels)})",
                           t=scan).to_pandas()
    traces = traces[traces["candidates"].map(lambda c: len(candidates_of(c)) >= 2)]
    pairs = selection_pool(traces.assign(slice=None), pd.DataFrame(
        {"trace_id": traces["trace_id"], "destination": PREFERENCE_QUEUE}))
    gold = pd.DataFrame(labels)[["trace_id", "label", "slice"]]
    return pairs.drop(columns="slice").merge(gold, on="trace_id", how="inner")


def run_experiment(storage: Storage, frozen_labels: list[dict], seed: int, base_limit: int):
    """The seed's experiment: base + hybrid batch vs base + random batch, on the frozen set.

    Only the arms' pairs and at most `base_limit` of the most recent other pairs are read, so
    the experiment costs the same on the hundredth day as on the second."""
    batches = storage.scan_sql(WAREHOUSE, "selected_batch")
    pairs = storage.scan_sql(WAREHOUSE, "preference_pairs")
    if batches is None or pairs is None:
        return None
    with storage.connect() as con:
        con.execute(f"CREATE TEMP TABLE arms AS SELECT DISTINCT arm, trace_id FROM {batches}")
        columns = "p.trace_id, p.prompt, p.chosen, p.rejected"
        train = {arm: con.execute(f"SELECT {columns} FROM {pairs} p JOIN arms a "
                                  f"ON p.trace_id = a.trace_id WHERE a.arm = '{arm}'").df()
                 for arm in ("hybrid", "random")}
        if train["hybrid"].empty or train["random"].empty:
            return None
        evaluation = frozen_eval_pairs(storage, frozen_labels)
        if evaluation.empty:
            return None
        base = con.execute(f"SELECT {columns} FROM {pairs} p ANTI JOIN arms a "
                           f"ON p.trace_id = a.trace_id ORDER BY p.date DESC, p.trace_id "
                           f"LIMIT {int(base_limit)}").df()
    return selection_experiment(train["hybrid"], train["random"], evaluation, base, seed)


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    group_name="selection",
    kinds={"parquet", "scikitlearn"},
    description="Does hybrid selection beat random? Candidates trained on each arm's accepted "
                "labels, scored on the frozen set's human labels; the verdict feeds selection.",
    deps=["selected_batch", "preference_pairs", "frozen_evaluation_set"],
)
def selection_experiment_report(context: dg.AssetExecutionContext,
                                pipeline: PipelineResource) -> dg.Output[pd.DataFrame]:
    policy = pipeline.policy
    labels = settings.load_frozen_labels(pipeline.storage, policy.frozen_eval_set)
    report = run_experiment(pipeline.storage, labels, policy.random_seed,
                            policy.model_training_pairs)
    if report is None:
        context.log.info("not enough labelled batch items or frozen labels yet; no verdict")
        table = pd.DataFrame({"arm": [], "accepted_labels": [], "score": [], "gain": [],
                              "labels_per_percentage_point": [], "recommendation": []})
        return dg.Output(table, metadata={"recommendation": "hybrid (no experiment yet)"})
    summary = report.summary()
    table = pd.DataFrame([
        {"arm": "baseline", "accepted_labels": 0, "score": report.baseline_score, "gain": 0.0,
         "labels_per_percentage_point": None},
        *[{"arm": a.name, "accepted_labels": a.accepted_labels, "score": a.candidate_score,
           "gain": a.gain, "labels_per_percentage_point": a.labels_per_percentage_point}
          for a in report.arms.values()],
    ]).assign(recommendation=report.recommendation)
    return dg.Output(table, metadata={
        "recommendation": report.recommendation,
        "reason": report.reason,
        "n_eval": report.n_eval,
        "report": dg.MetadataValue.md(report.to_markdown()),
        **{f"experiment/{k}": float(v) for k, v in summary.items()
           if isinstance(v, int | float) and not isinstance(v, bool)},
    })


def current_recommendation(storage: Storage) -> str:
    """The last experiment's verdict ("hybrid" until an experiment says otherwise)."""
    if not storage.partition_path(WAREHOUSE, "selection_experiment_report", None).exists():
        return "hybrid"
    table = storage.read_table(WAREHOUSE, "selection_experiment_report", None).to_pandas()
    return str(table["recommendation"].iloc[0]) if len(table) else "hybrid"
