"""The labeling round (selected_batch, review_backlog) and its experiment.

Each day's round decides what reviewers see: from the day's routed work plus the backlog, within
the policy's review budget, two disjoint, equal arms of pairwise work (hybrid and a random
control) and the other tasks oldest first. The experiment afterwards trains comparable
candidates on each arm's accepted labels and scores them on the frozen set; its verdict decides
how the next round's selector arm is drawn.
"""


import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from feedback_pipeline import settings
from feedback_pipeline.core.candidates import candidate_named
from feedback_pipeline.core.contract import candidates_of
from feedback_pipeline.core.experiment import ExperimentReport, compare_arms
from feedback_pipeline.core.leakage import find_leaks, find_near_duplicates
from feedback_pipeline.core.preference_model import PreferenceModel, uncertainty_for
from feedback_pipeline.core.rounds import (
    AGED_OUT,
    EXCLUDED_NEAR_FROZEN,
    HYBRID,
    METHOD_FALLBACK,
    PAIRWISE,
    POOL_COLUMNS,
    RANDOM,
    WAITING,
    RoundPlan,
    backlog_rows,
    plan_round,
    replay_round,
    round_id_for,
    round_rng,
)
from feedback_pipeline.core.routing import FROZEN_EVALUATION
from feedback_pipeline.core.tasks import primary_queues
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.settings import Policy
from feedback_pipeline.stages.common import (
    QUEUE_IDS,
    WAREHOUSE_IO,
    counts_table,
)
from feedback_pipeline.storage import WAREHOUSE, PartitionBatches, Storage

PAIR_COLUMNS = ["trace_id", "slice", "prompt", "prompt_fingerprint", "candidates"]


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


def carried_backlog(storage: Storage, day: str) -> pd.DataFrame:
    """The waiting items of the latest backlog before `day` (what earlier rounds left)."""
    earlier = [d for d in storage.table_days(WAREHOUSE, "review_backlog") if d < day]
    if not earlier:
        return pd.DataFrame(columns=list(POOL_COLUMNS))
    backlog = storage.read_table(WAREHOUSE, "review_backlog", earlier[-1]).to_pandas()
    return backlog.loc[backlog["status"] == WAITING, list(POOL_COLUMNS)]


def issued_in_earlier_rounds(storage: Storage, day: str) -> set[str]:
    """Trace ids an earlier day's round already issued: a trace is reviewed in one round only.
    Later rounds do not count: they drew from what this round left, so a re-run of this day
    sees the same items it saw when it was first issued."""
    scan = storage.scan_sql(WAREHOUSE, "selected_batch",
                            [d for d in storage.table_days(WAREHOUSE, "selected_batch")
                             if d < day])
    if scan is None:
        return set()
    return set(storage.query("SELECT DISTINCT trace_id FROM {t}", t=scan)
               .column("trace_id").to_pylist())


def todays_items(day: str, redacted_traces: PartitionBatches,
                 routed_queues: pd.DataFrame) -> pd.DataFrame:
    """The day's routed work, one item per trace (its primary task; frozen traces none)."""
    primary = primary_queues(routed_queues).to_pandas()
    slices = redacted_traces.to_arrow(["trace_id", "slice"]).to_pandas()
    items = primary.merge(slices.drop_duplicates("trace_id"), on="trace_id", how="left")
    return items.assign(trace_day=day, entered_on=day)[list(POOL_COLUMNS)]


def answer_texts(candidates: pd.Series) -> dict[str, list[str | None]]:
    """text_a and text_b (the first two candidates, as shown to reviewers), None where a
    trace has fewer."""
    cands = [candidates_of(c) for c in candidates]
    return {"text_a": [c[0]["text"] if len(c) > 0 else None for c in cands],
            "text_b": [c[1]["text"] if len(c) > 1 else None for c in cands]}


def pair_texts_of(storage: Storage, day: str, redacted_traces: PartitionBatches,
                  items: pd.DataFrame) -> pd.DataFrame:
    """prompt, text_a and text_b for each pairwise item, read from its own trace day."""
    frames = []
    for trace_day, group in items.groupby("trace_day", sort=True):
        source = (redacted_traces if trace_day == day
                  else storage.batches(WAREHOUSE, "redacted_traces", str(trace_day)))
        rows = source.rows_where_in("trace_id", group["trace_id"], columns=PAIR_COLUMNS)
        frames.append(pd.DataFrame({
            "trace_id": rows["trace_id"].to_numpy(), "prompt": rows["prompt"].to_numpy(),
            "prompt_fingerprint": rows["prompt_fingerprint"].to_numpy(),
            **answer_texts(rows["candidates"])}))
    texts = (pd.concat(frames, ignore_index=True).drop_duplicates("trace_id") if frames
             else pd.DataFrame(columns=["trace_id", "prompt", "prompt_fingerprint", "text_a",
                                        "text_b"]))
    return items.merge(texts, on="trace_id", how="inner")


def frozen_prompts(storage: Storage, policy: Policy, configured: tuple[str, ...]) -> pd.DataFrame:
    """Every frozen trace known so far (the set's ids and traces routed to frozen evaluation)
    with its redacted prompt and fingerprint."""
    ids = set(configured)
    scan = storage.scan_sql(WAREHOUSE, "routed_queues")
    if scan is not None:
        ids |= set(storage.query(f"SELECT DISTINCT trace_id FROM {{t}} WHERE destination = "
                                 f"'{FROZEN_EVALUATION}'", t=scan).column("trace_id").to_pylist())
    return storage.prompt_fingerprints(sorted(ids))


def near_frozen(pool: pd.DataFrame, frozen: pd.DataFrame, threshold: float) -> set[str]:
    """Pool traces whose prompt copies or nearly copies a frozen prompt: reviewing them would
    train on the evaluation set by another name. The pool's prompt fingerprints are the ones
    redaction stored with each trace (of the same redacted prompt); only a row without one is
    fingerprinted here."""
    if pool.empty or frozen["prompt"].isna().all():
        return set()
    from feedback_pipeline.core.fingerprint import fingerprints

    stored = (pool["prompt_fingerprint"] if "prompt_fingerprint" in pool.columns
              else pd.Series([None] * len(pool), index=pool.index, dtype=object))
    missing = stored.isna().to_numpy()
    fingerprint = stored.to_numpy(dtype=object, copy=True)
    if missing.any():
        fingerprint[missing] = fingerprints(pool["prompt"].to_numpy()[missing].tolist())
    training = pd.DataFrame({"lane": "pool", "trace_id": pool["trace_id"].to_numpy(),
                             "prompt": pool["prompt"].to_numpy(),
                             "prompt_fingerprint": fingerprint})
    leaks = pd.concat([find_leaks(training, frozen),
                       find_near_duplicates(training, frozen, threshold)], ignore_index=True)
    return set(leaks["training_id"].astype(str))


def round_fingerprint(items: pd.DataFrame, policy: Policy) -> str:
    """What a round's draw depends on besides the model: its items and the round settings. A
    stored round with the same fingerprint is kept as issued."""
    payload = json.dumps({
        "items": sorted(zip(items["trace_id"].astype(str), items["task"].astype(str),
                            strict=True)),
        "budget": policy.budget.describe(), "random_share": policy.random_share,
        "seed": policy.random_seed, "weight": policy.weight_uncertainty,
        "selector": policy.selection_policy_version, "max_age": policy.backlog_max_age_days,
        "pool_limit": policy.selection_pool_limit}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def stored_round(storage: Storage, day: str, fingerprint: str) -> pd.DataFrame | None:
    if not storage.partition_path(WAREHOUSE, "selected_batch", day).exists():
        return None
    stored = storage.read_table(WAREHOUSE, "selected_batch", day).to_pandas()
    if "round_fingerprint" not in stored.columns or stored.empty:
        return None
    return stored if (stored["round_fingerprint"] == fingerprint).all() else None


def considered_pairs(items: pd.DataFrame, day: str, limit: int, seed: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairwise items this round considers, the ones beyond `selection_pool_limit`): a day
    with a larger pool (a big day plus its backlog) is sampled, seeded per round, before any
    text is read; the rest keeps waiting in the backlog."""
    pairwise = items[items["task"] == PAIRWISE]
    if len(pairwise) <= limit:
        return pairwise, pairwise.iloc[0:0]
    keep = np.zeros(len(pairwise), dtype=bool)
    keep[round_rng(seed, day).choice(len(pairwise), limit, replace=False)] = True
    return pairwise[keep], pairwise[~keep]


def plan_day(storage: Storage, policy: Policy, day: str, items: pd.DataFrame,
             pairwise: pd.DataFrame, recommendation: str, log) -> RoundPlan:
    """The day's round over its eligible items (`pairwise`: the considered pairs with their
    texts): kept if already issued, else drawn anew."""
    fingerprint = round_fingerprint(items, policy)
    kept = stored_round(storage, day, fingerprint)
    if kept is not None:
        plan = replay_round(day, items, kept, policy.backlog_max_age_days)
        plan.issued = plan.issued.assign(round_fingerprint=fingerprint)
        return plan
    if storage.partition_path(WAREHOUSE, "selected_batch", day).exists():
        log.warning(f"{round_id_for(day)} is drawn again: its items or the round settings "
                    "changed since it was issued")
    pool = pairwise.reset_index(drop=True)
    uncertainty, model_note = None, ""
    if len(pool) and recommendation == HYBRID:
        history = earlier_pairs(storage, day, policy.model_training_pairs)
        model = (PreferenceModel(seed=policy.random_seed).fit(
            history["prompt"].tolist(), history["chosen"].tolist(), history["rejected"].tolist())
            if len(history) else None)
        uncertainty, model_note = uncertainty_for(model, pool["prompt"].tolist(),
                                                  pool["text_a"].tolist(),
                                                  pool["text_b"].tolist())
    plan = plan_round(day, pool, items[items["task"] != PAIRWISE], policy.budget,
                      random_share=policy.random_share,
                      weight_uncertainty=policy.weight_uncertainty, seed=policy.random_seed,
                      uncertainty=uncertainty, recommendation=recommendation,
                      max_age_days=policy.backlog_max_age_days)
    if model_note:
        plan.notes.insert(0, model_note)
    plan.issued = plan.issued.assign(round_fingerprint=fingerprint)
    return plan


SELECTOR_RECOMMENDATION = "selector_recommendation"
selector_recommendation = dg.AssetSpec(
    SELECTOR_RECOMMENDATION, group_name="experiment", kinds={"parquet"},
    description="The selection experiment's latest verdict (recommendation, reason, evidence, "
                "selector version), reported by each selection_experiment_report run and read "
                "by the next labeling round. An asset of its own because the experiment judges "
                "the rounds it steers: an edge from the report back to selected_batch would be "
                "a cycle, so the report reports this asset and the round declares it as an "
                "input.")


EARLIER_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
"""A round reads the round before it: the previous day's backlog carries on, and through that
chain every earlier round (`issued_in_earlier_rounds` reads them all). Declared once, on the
backlog: a multi-asset's deps apply to both its outputs, and a second previous-day edge (from
selected_batch) would make the two outputs depend on each other, a cycle the UI's lineage view
refuses to draw."""


@dg.multi_asset(
    outs={
        "selected_batch": dg.AssetOut(
            io_manager_key=WAREHOUSE_IO, kinds={"parquet", "scikitlearn"},
            description="The day's labeling round: everything reviewers are given, each item "
                        "with its round id and arm (hybrid, random control, or the day's other "
                        "work), and the scores that picked it."),
        "review_backlog": dg.AssetOut(
            io_manager_key=WAREHOUSE_IO, kinds={"parquet"},
            description="Eligible work the round's budget left out, carried to later rounds "
                        "until issued or aged out (status waiting, aged_out, "
                        "excluded_near_frozen)."),
    },
    partitions_def=daily_partitions,
    group_name="selection",
    can_subset=False,
    ins=QUEUE_IDS,
    deps=[SELECTOR_RECOMMENDATION,
          dg.AssetDep("review_backlog", partition_mapping=EARLIER_DAY)],
)
def labeling_round(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                   redacted_traces: PartitionBatches, routed_queues: pd.DataFrame):
    day = context.partition_key
    storage, policy = pipeline.storage, pipeline.policy
    items = pd.concat([carried_backlog(storage, day),
                       todays_items(day, redacted_traces, routed_queues)], ignore_index=True)
    items = items.drop_duplicates("trace_id", keep="first")
    items = items[~items["trace_id"].isin(issued_in_earlier_rounds(storage, day))]
    considered, overflow = considered_pairs(items, day, policy.selection_pool_limit,
                                            policy.random_seed)
    pairwise = pair_texts_of(storage, day, redacted_traces, considered)
    excluded = near_frozen(
        pairwise, frozen_prompts(storage, policy, pipeline.frozen_set().ids),
        policy.near_duplicate_threshold)
    pairwise = pairwise[~pairwise["trace_id"].isin(excluded)]
    recommendation, why = current_recommendation(storage, policy.selection_policy_version)
    eligible = items[~items["trace_id"].isin(excluded | set(overflow["trace_id"]))]
    plan = plan_day(storage, policy, day, eligible, pairwise, recommendation, context.log)
    if len(overflow):
        plan.backlog = pd.concat([plan.backlog, backlog_rows(
            overflow, day, policy.backlog_max_age_days)], ignore_index=True)
        plan.notes.append(f"{len(overflow)} eligible pairs beyond selection_pool_limit wait in "
                          "the backlog")
    if excluded:
        plan.backlog = pd.concat([plan.backlog, backlog_rows(
            items[items["trace_id"].isin(excluded)], day, policy.backlog_max_age_days,
            status=EXCLUDED_NEAR_FROZEN)], ignore_index=True)
        plan.notes.append(f"{len(excluded)} pair(s) left out as near-duplicates of frozen "
                          "prompts")
    context.log.info(f"{round_id_for(day)}: {'; '.join(plan.notes) or 'issued'}")
    issued, backlog = plan.issued, plan.backlog
    arms = issued["arm"].value_counts().to_dict()
    statuses = backlog["status"].value_counts().to_dict()
    by_task = issued["task"].value_counts().to_dict()
    # the backlog first: the next day's round reads it (Dagster wants a multi-asset's
    # outputs in the order of their declared dependencies)
    yield dg.Output(backlog, output_name="review_backlog", metadata={
        "dagster/row_count": len(backlog),
        "waiting": int(statuses.get(WAITING, 0)),
        "aged_out": int(statuses.get(AGED_OUT, 0)),
        "excluded_near_frozen": int(statuses.get(EXCLUDED_NEAR_FROZEN, 0)),
        "max_age_days": policy.backlog_max_age_days,
    })
    yield dg.Output(issued, output_name="selected_batch", metadata={
        "dagster/row_count": len(issued),
        "round_id": round_id_for(day),
        "budget": dg.MetadataValue.json(policy.budget.describe()),
        "eligible_pairs": len(pairwise),
        "hybrid_arm": int(arms.get(HYBRID, 0)),
        "random_arm": int(arms.get(RANDOM, 0)),
        "in_experiment_per_arm": plan.per_arm,
        "selector": plan.method,
        "fallback_to_random": plan.method == METHOD_FALLBACK,
        "recommendation": recommendation,
        "recommendation_reason": why,
        "issued_by_task": counts_table(by_task, "task") if by_task else dg.MetadataValue.md(
            "none"),
        "backlog_waiting": int(statuses.get(WAITING, 0)),
        "notes": "; ".join(plan.notes) or "none",
        "selection_policy_version": policy.selection_policy_version,
    })


def frozen_evaluation(storage: Storage, labels: list[dict], frozen: settings.FrozenEvalSet
                      ) -> pd.DataFrame:
    """The frozen items an experiment can score: those with a human outcome (label) or with
    expected checks, as core.candidates.EVALUATION_COLUMNS."""
    outcome = {str(x["trace_id"]): x for x in labels}
    checks = {tid: [c.to_dict() for c in found] for tid, found in frozen.fixtures.items()}
    wanted = sorted(set(outcome) | set(checks))
    scan = storage.scan_sql(WAREHOUSE, "redacted_traces")
    if scan is None or not wanted:
        return pd.DataFrame(columns=["trace_id", "prompt", "text_a", "text_b", "label",
                                     "slice", "checks"])
    with storage.connect() as con:
        con.register("wanted", pd.DataFrame({"trace_id": wanted}))
        traces = con.execute(f"SELECT trace_id, prompt, candidates, slice FROM {scan} "
                             "JOIN wanted USING (trace_id)").df().drop_duplicates("trace_id")
    texts = answer_texts(traces["candidates"])
    return pd.DataFrame({
        "trace_id": traces["trace_id"].to_numpy(), "prompt": traces["prompt"].to_numpy(),
        **texts,
        "label": [outcome.get(t, {}).get("label") if b is not None else None
                  for t, b in zip(traces["trace_id"], texts["text_b"], strict=True)],
        "slice": [outcome.get(t, {}).get("slice") or s
                  for t, s in zip(traces["trace_id"], traces["slice"], strict=True)],
        "checks": [checks.get(t) for t in traces["trace_id"]],
    })


ALL_ROUNDS = "all rounds"
REPORT_COLUMNS = {
    "scope": "string", "candidate": "string", "arm": "string", "issued": "Int64",
    "accepted_labels": "Int64", "score": "float64", "gain": "float64",
    "labels_per_percentage_point": "float64", "review_seconds": "float64",
    "seconds_per_accepted_label": "float64", "seconds_per_point": "float64",
    "n_eval": "Int64", "ci_low": "float64", "ci_high": "float64", "evidence": "string",
    "verdict": "string", "recommendation": "string", "selection_policy_version": "string",
}


def experiment_inputs(storage: Storage, base_limit: int
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(arm membership, accepted pairs with their arm plus at most `base_limit` of the newest
    pairs outside every arm, review seconds per trace) over every stored round."""
    batches = storage.scan_sql(WAREHOUSE, "selected_batch")
    pairs = storage.scan_sql(WAREHOUSE, "preference_pairs")
    labels = storage.scan_sql(WAREHOUSE, "reviewed_labels")
    if batches is None:
        empty = pd.DataFrame()
        return empty, empty, empty
    with storage.connect() as con:
        members = con.execute(
            f"SELECT round_id, arm, method, trace_id, date FROM {batches} "
            "WHERE in_experiment AND arm IS NOT NULL").df()
        con.register("members", members)
        # the arms' pairs, and only the newest pairs outside every arm that a base can use:
        # the history of accepted pairs is never loaded whole
        accepted = con.execute(
            f"SELECT m.round_id, m.arm, m.method, p.trace_id, p.prompt, p.chosen, p.rejected, "
            f"p.date FROM {pairs} p JOIN members m USING (trace_id) "
            f"UNION ALL (SELECT NULL, NULL, NULL, p.trace_id, p.prompt, p.chosen, p.rejected, "
            f"p.date FROM {pairs} p ANTI JOIN members m USING (trace_id) "
            f"ORDER BY p.date DESC, p.trace_id LIMIT {int(base_limit)})").df() \
            if pairs else pd.DataFrame(columns=["round_id", "arm", "method", "trace_id",
                                                "prompt", "chosen", "rejected", "date"])
        columns = set(con.execute(f"SELECT * FROM {labels} LIMIT 0").df().columns) \
            if labels else set()
        seconds = con.execute(
            f"SELECT trace_id, sum(review_seconds) AS review_seconds, count(*) AS reviews, "
            f"count(review_seconds) AS timed FROM {labels} JOIN members USING (trace_id) "
            "GROUP BY trace_id").df() if "review_seconds" in columns else pd.DataFrame(
                columns=["trace_id", "review_seconds", "reviews", "timed"])
    return members, accepted, seconds


def _arm_seconds(seconds: pd.DataFrame, members: pd.DataFrame) -> float | None:
    """Reviewer seconds spent on an arm's traces (every review, accepted or not); None when
    no review of the arm carried a time."""
    spent = seconds[seconds["trace_id"].isin(set(members["trace_id"]))]
    if spent.empty or not spent["timed"].sum():
        return None
    return float(spent["review_seconds"].fillna(0).sum())


def run_experiments(storage: Storage, policy: Policy, evaluation: pd.DataFrame
                    ) -> list[ExperimentReport]:
    """One report per (scope, candidate): each of the newest rounds with accepted labels in
    both arms, and all rounds so far whose selector arm was not a random fallback (the
    candidates after the first: all rounds only)."""
    # each scope's base is the newest experiment_base_pairs up to its round; the newest
    # experiment_base_pairs x (rounds compared + 1) cover every scope compared
    members, accepted, seconds = experiment_inputs(
        storage, policy.experiment_base_pairs * (policy.experiment_rounds + 1))
    if members.empty or accepted.empty or evaluation.empty:
        return []
    base_all = accepted[accepted["arm"].isna()].sort_values(["date", "trace_id"],
                                                            ascending=[False, True])
    rounds = sorted(accepted["round_id"].dropna().unique())[-policy.experiment_rounds:]
    scopes = [(rid, accepted["round_id"] == rid, members["round_id"] == rid) for rid in rounds]
    fallback = set(members.loc[members["method"] == METHOD_FALLBACK, "round_id"])
    scopes.append((ALL_ROUNDS, accepted["round_id"].notna() & ~accepted["round_id"].isin(fallback),
                   ~members["round_id"].isin(fallback)))
    reports = []
    baselines: dict[tuple, np.ndarray] = {}
    for position, name in enumerate(policy.experiment_candidates):
        candidate = candidate_named(name)
        # the first candidate is compared per round and overall; the others (a trained policy
        # costs minutes, not seconds) over all rounds only
        for scope, in_scope, member_rows in (scopes if position == 0 else scopes[-1:]):
            arms = {arm: accepted[in_scope & (accepted["arm"] == arm)] for arm in (HYBRID, RANDOM)}
            if any(frame.empty for frame in arms.values()):
                continue
            cut = (str(max(arms[HYBRID]["date"].max(), arms[RANDOM]["date"].max()))
                   if scope != ALL_ROUNDS else None)
            base = base_all if cut is None else base_all[base_all["date"].astype(str) <= cut]
            arm_members = {arm: members[member_rows & (members["arm"] == arm)]
                           for arm in (HYBRID, RANDOM)}
            base = base.head(policy.experiment_base_pairs)
            key = (name, tuple(base["trace_id"]))
            if key not in baselines:
                baselines[key] = candidate.credit(base[["prompt", "chosen", "rejected"]],
                                                  evaluation, policy.random_seed)
            try:
                reports.append(compare_arms(
                    arms, evaluation, candidate, base, policy.random_seed,
                    issued={a: len(m) for a, m in arm_members.items()},
                    review_seconds={a: _arm_seconds(seconds, m) for a, m in arm_members.items()},
                    bootstrap=policy.bootstrap_samples, min_eval_items=policy.min_eval_items,
                    slice_groups=policy.experiment_slices, scope=scope,
                    baseline_credit=baselines[key]))
            except ValueError:
                continue  # this candidate can score no frozen item: nothing to report
    return reports


def report_table(reports: list[ExperimentReport], recommendation: str,
                 version: str) -> pd.DataFrame:
    rows = []
    for report in reports:
        ci = report.gain_difference_ci or (None, None)
        common = {"scope": report.scope, "candidate": report.candidate, "n_eval": report.n_eval,
                  "ci_low": ci[0], "ci_high": ci[1], "evidence": report.evidence,
                  "verdict": report.recommendation}
        rows.append({**common, "arm": "baseline", "score": report.baseline_score, "gain": 0.0})
        for arm in report.arms.values():
            rows.append({**common, "arm": arm.name, "issued": arm.issued,
                         "accepted_labels": arm.accepted_labels, "score": arm.candidate_score,
                         "gain": arm.gain,
                         "labels_per_percentage_point": arm.labels_per_percentage_point,
                         "review_seconds": arm.review_seconds,
                         "seconds_per_accepted_label": arm.seconds_per_accepted_label,
                         "seconds_per_point": arm.seconds_per_point})
    table = pd.DataFrame(rows, columns=list(REPORT_COLUMNS)).assign(
        recommendation=recommendation, selection_policy_version=version)
    return table.astype(REPORT_COLUMNS)


def recommendation_of(reports: list[ExperimentReport], policy: Policy) -> tuple[str, str]:
    """The next round's selector: the seed's verdict over all rounds for the first listed
    candidate; hybrid until an experiment can be run."""
    primary = [r for r in reports if r.scope == ALL_ROUNDS
               and r.candidate == policy.experiment_candidates[0]]
    if not primary:
        return HYBRID, "no experiment with accepted labels in both arms yet"
    report = primary[0]
    if report.n_eval < policy.min_eval_items:
        return HYBRID, report.evidence
    return report.recommendation, report.reason


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    group_name="experiment",
    kinds={"parquet", "scikitlearn"},
    description="Does hybrid selection beat random? Per round and over all rounds: candidates "
                "trained on each arm's accepted labels, scored on the frozen set, with review "
                "cost; the verdict decides the next round's selector.",
    deps=["selected_batch", "preference_pairs", "reviewed_labels", "frozen_evaluation_set"],
)
def selection_experiment_report(context: dg.AssetExecutionContext,
                                pipeline: PipelineResource) -> dg.Output[pd.DataFrame]:
    storage, policy = pipeline.storage, pipeline.policy
    frozen = pipeline.frozen_set()
    evaluation = frozen_evaluation(
        storage, settings.load_frozen_labels(storage, policy.frozen_eval_set), frozen)
    reports = run_experiments(storage, policy, evaluation)
    recommendation, reason = recommendation_of(reports, policy)
    table = report_table(reports, recommendation, policy.selection_policy_version)
    context.log.info(f"selection experiment: {recommendation} ({reason})")
    overall = [r for r in reports if r.scope == ALL_ROUNDS]
    hybrid_overall = table[(table["scope"] == ALL_ROUNDS) & (table["arm"] == HYBRID)]
    evidence = (str(hybrid_overall["evidence"].iloc[0]) if len(hybrid_overall)
                else "no overall comparison")
    write_recommendation(storage, recommendation, reason, evidence,
                         policy.selection_policy_version)
    context.log_event(dg.AssetMaterialization(
        SELECTOR_RECOMMENDATION, description="the verdict the next labeling round reads",
        metadata={"recommendation": recommendation, "reason": reason, "evidence": evidence,
                  "selection_policy_version": policy.selection_policy_version}))
    markdown = "\n\n".join(f"### {r.scope}: {r.candidate}\n\n{r.to_markdown()}"
                           for r in [*overall, *[r for r in reports if r.scope != ALL_ROUNDS]])
    metadata: dict = {
        "recommendation": recommendation,
        "reason": reason,
        "rounds_compared": len({r.scope for r in reports} - {ALL_ROUNDS}),
        "frozen_items": len(evaluation),
        "report": dg.MetadataValue.md(markdown or "no round has accepted labels in both arms"),
    }
    if overall:
        first = overall[0]
        metadata["evidence"] = first.evidence
        metadata["by_slice"] = dg.MetadataValue.md(first.by_slice.to_markdown(index=False))
        for arm in first.arms.values():
            metadata[f"{arm.name}_gain"] = float(arm.gain)
            if arm.seconds_per_accepted_label is not None:
                metadata[f"{arm.name}_seconds_per_accepted_label"] = float(
                    arm.seconds_per_accepted_label)
    return dg.Output(table, metadata=metadata)


RECOMMENDATION_COLUMNS = ["recommendation", "reason", "evidence", "selection_policy_version"]


def write_recommendation(storage: Storage, recommendation: str, reason: str, evidence: str,
                         version: str) -> pa.Table:
    """Store the verdict the next round reads (the `selector_recommendation` asset)."""
    table = pa.table({"recommendation": [recommendation], "reason": [reason],
                      "evidence": [evidence], "selection_policy_version": [version]})
    storage.write_table(WAREHOUSE, SELECTOR_RECOMMENDATION, None, table)
    return table


def current_recommendation(storage: Storage, selection_policy_version: str) -> tuple[str, str]:
    """The last experiment's verdict for this selector version, and why ("hybrid" until an
    experiment says otherwise; a new selection_policy_version starts again at hybrid)."""
    if not storage.partition_path(WAREHOUSE, SELECTOR_RECOMMENDATION, None).exists():
        return HYBRID, "no experiment yet"
    row = storage.read_table(WAREHOUSE, SELECTOR_RECOMMENDATION, None).to_pylist()
    if not row:
        return HYBRID, "no experiment yet"
    judged = str(row[0]["selection_policy_version"])
    if judged != selection_policy_version:
        return HYBRID, (f"the experiment judged {judged}; {selection_policy_version} starts "
                        "with hybrid")
    recommendation = str(row[0]["recommendation"])
    return (recommendation if recommendation in (HYBRID, RANDOM) else HYBRID), str(
        row[0]["evidence"])
