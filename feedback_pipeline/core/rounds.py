"""A labeling round: what reviewers are given today, within a declared budget.

A team cannot review every eligible trace, so the round decides what is reviewed. Its pairwise
work is two disjoint arms of equal size drawn from one pool: a seeded random control arm,
drawn first so that it is a uniform sample of the whole pool, and the selector's arm (hybrid
uncertainty + coverage, seed listing 06) drawn from what is left. The other work the policy
sends every day (demonstrations, pointwise triage, incidents) is issued oldest first within its
own budget. Whatever the budget leaves out is carried in a backlog, never dropped: later rounds
may issue it, and it ages out by the declared rule, with a count.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from feedback_pipeline.core.selection import embed_texts, hybrid_select, pair_texts

PAIRWISE = "pairwise"
ROUND_TASKS = (PAIRWISE, "demonstration", "pointwise", "incident")
BUDGET_ALIASES = {"preference": PAIRWISE, "pairwise": PAIRWISE,
                  "demonstration": "demonstration", "pointwise": "pointwise",
                  "triage": "pointwise", "incident": "incident"}
HYBRID, RANDOM = "hybrid", "random"

# How the selector's arm was drawn this round.
METHOD_HYBRID = "hybrid"
METHOD_COVERAGE = "coverage"            # no preference model yet: coverage alone
METHOD_FALLBACK = "random_fallback"     # the last experiment said random wins

EMBED_FIT_SAMPLE = 5000
EMBED_FEATURES = 2**16
"""The round's embedding: its SVD is fitted on a sample of the pool, over hashed features of
this width. 64 coverage directions need neither the whole pool nor 2^18 hash buckets, and the
SVD's random projection grows with both."""

WAITING, AGED_OUT = "waiting", "aged_out"
EXCLUDED_NEAR_FROZEN = "excluded_near_frozen"  # never eligible: a frozen prompt's near-copy

ISSUED_DTYPES = {
    "round_id": "string",
    "arm": "string",
    "in_experiment": "bool",
    "rank": "int64",
    "trace_id": "string",
    "trace_day": "string",
    "task": "string",
    "queue": "string",
    "slice": "string",
    "method": "string",
    "uncertainty": "float64",
    "coverage": "float64",
    "score": "float64",
}
BACKLOG_DTYPES = {
    "trace_id": "string",
    "trace_day": "string",
    "task": "string",
    "queue": "string",
    "slice": "string",
    "entered_on": "string",
    "age_days": "int64",
    "status": "string",
}
POOL_COLUMNS = ("trace_id", "trace_day", "task", "queue", "slice", "entered_on")


def round_id_for(day: str) -> str:
    """One round per UTC day; the id travels with every task, review and release row."""
    return f"round-{day}"


@dataclass(frozen=True)
class ReviewBudget:
    """Per task type: a count of items per round, a share of what is eligible, or None (all).

    `policy.yaml` may give one number (the pairwise budget; the other tasks are issued whole)
    or a mapping per task (`preference`/`pairwise`, `demonstration`, `pointwise`, `incident`),
    each a whole count, a share in (0, 1], or `all`. Without one, the pairwise budget is
    2 x batch_size: one batch per arm, as batch_size always meant.
    """

    limits: Mapping[str, int | float | None]

    def allowance(self, task: str, available: int) -> int:
        """How many of `available` eligible items of `task` this round issues."""
        limit = self.limits.get(task)
        if limit is None:
            return available
        if isinstance(limit, float):
            return min(available, int(np.floor(limit * available + 1e-9)))
        return min(available, int(limit))

    def describe(self) -> dict[str, str]:
        """Each task's budget as text, for the UI and the manifest."""
        out = {}
        for task in ROUND_TASKS:
            limit = self.limits.get(task)
            out[task] = ("all" if limit is None else f"{limit:.0%} of eligible"
                         if isinstance(limit, float) else f"{limit} per round")
        return out


def _limit(value: Any, key: str) -> int | float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"review_budget {key}: expected a whole count, a share in (0, 1] or "
                         f"'all', got a {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        if not 0 < value <= 1:
            raise ValueError(f"review_budget {key}: a share must be in (0, 1]")
        return float(value)
    if value < 0:
        raise ValueError(f"review_budget {key}: a count must be 0 or more")
    return int(value)


def parse_review_budget(raw: Any, batch_size: int) -> ReviewBudget:
    """The policy's `review_budget` (see ReviewBudget); ValueError naming the broken key."""
    limits: dict[str, int | float | None] = {task: None for task in ROUND_TASKS}
    if raw is None:
        limits[PAIRWISE] = 2 * int(batch_size)
    elif isinstance(raw, Mapping):
        for key, value in raw.items():
            task = BUDGET_ALIASES.get(str(key))
            if task is None:
                raise ValueError(f"review_budget: unknown task {key!r} (expected one of "
                                 f"{', '.join(sorted(BUDGET_ALIASES))})")
            limits[task] = _limit(value, str(key))
    else:
        limits[PAIRWISE] = _limit(raw, "pairwise")
    return ReviewBudget(limits)


def arm_sizes(pairwise_allowance: int, random_share: float) -> tuple[int, int]:
    """(items per experiment arm, selector items outside the experiment).

    Both arms get `floor(allowance * random_share)` items (never more than half), so the
    comparison is between equal batches; a smaller control share leaves the rest of the
    budget to the selector, outside the experiment.
    """
    if not 0 < random_share <= 0.5:
        raise ValueError("random_share must be in (0, 0.5]: the control arm cannot be larger "
                         "than the selector's")
    per_arm = min(int(np.floor(pairwise_allowance * random_share + 1e-9)),
                  pairwise_allowance // 2)
    return per_arm, pairwise_allowance - 2 * per_arm


def round_rng(seed: int, day: str) -> np.random.Generator:
    """A generator per (policy seed, day): each round draws its own control arm, and the same
    round always draws the same one."""
    return np.random.default_rng([int(seed), zlib.crc32(day.encode("utf-8"))])


def days_between(earlier: str, later: str) -> int:
    return (date.fromisoformat(later) - date.fromisoformat(earlier)).days


def ages(trace_days: pd.Series, day: str) -> np.ndarray:
    """Days from each trace day to `day`, each distinct day parsed once."""
    lookup = {d: days_between(str(d), day) for d in pd.unique(trace_days)}
    return trace_days.map(lookup).to_numpy(dtype=np.int64)


@dataclass
class RoundPlan:
    """The round's issued work (selected_batch rows), the backlog after it, and why."""

    issued: pd.DataFrame
    backlog: pd.DataFrame
    method: str
    per_arm: int
    notes: list[str] = field(default_factory=list)

    @property
    def aged_out(self) -> int:
        return int((self.backlog["status"] == AGED_OUT).sum())


def empty_issued() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in ISSUED_DTYPES.items()})


def empty_backlog() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in BACKLOG_DTYPES.items()})


def _issued_rows(pool: pd.DataFrame, positions: np.ndarray, round_id: str, arm: str | None,
                 in_experiment: np.ndarray | bool, method: str | None,
                 uncertainty: np.ndarray | None = None, coverage: np.ndarray | None = None,
                 score: np.ndarray | None = None) -> pd.DataFrame:
    n = len(positions)
    picked = pool.iloc[positions]

    def values(given: np.ndarray | None) -> np.ndarray:
        return np.full(n, np.nan) if given is None else np.asarray(given, dtype=np.float64)

    return pd.DataFrame({
        "round_id": round_id, "arm": arm,
        "in_experiment": np.broadcast_to(np.asarray(in_experiment, dtype=bool), (n,)),
        "rank": np.arange(1, n + 1, dtype=np.int64),
        "trace_id": picked["trace_id"].to_numpy(), "trace_day": picked["trace_day"].to_numpy(),
        "task": picked["task"].to_numpy(), "queue": picked["queue"].to_numpy(),
        "slice": picked["slice"].to_numpy(), "method": method,
        "uncertainty": values(uncertainty), "coverage": values(coverage), "score": values(score),
    })


def plan_round(
    day: str,
    pairwise_pool: pd.DataFrame,
    other_work: pd.DataFrame,
    budget: ReviewBudget,
    *,
    random_share: float = 0.5,
    weight_uncertainty: float = 0.6,
    seed: int = 0,
    uncertainty: np.ndarray | None = None,
    recommendation: str = HYBRID,
    max_age_days: int = 14,
    embeddings: np.ndarray | None = None,
    embed_dim: int = 64,
) -> RoundPlan:
    """Issue one day's round.

    `pairwise_pool` holds the eligible unreviewed pairs (POOL_COLUMNS plus prompt, text_a,
    text_b), today's and the carried backlog's; `other_work` the other tasks' eligible items
    (POOL_COLUMNS). `uncertainty` is the preference model's entropy per pool row, None when
    there is no model yet (the selector's arm then uses coverage alone). With
    `recommendation="random"` (the last experiment found hybrid no better) the selector's arm
    is drawn at random too. Items older than `max_age_days` (trace day to round day) age out
    before anything is issued.
    """
    if recommendation not in (HYBRID, RANDOM):
        raise ValueError(f"recommendation must be 'hybrid' or 'random', got {recommendation!r}")
    if not 0 <= weight_uncertainty <= 1:
        raise ValueError("weight_uncertainty must be between 0 and 1")
    rid = round_id_for(day)
    notes: list[str] = []
    pool, pool_aged = _split_aged(pairwise_pool, day, max_age_days)
    work, work_aged = _split_aged(other_work, day, max_age_days)
    if uncertainty is not None:
        uncertainty = np.asarray(uncertainty, dtype=np.float64)[pool.index.to_numpy()]
    pool = pool.reset_index(drop=True)
    work = work.reset_index(drop=True)

    n = len(pool)
    allowance = budget.allowance(PAIRWISE, n)
    per_arm, extra = arm_sizes(allowance, random_share) if allowance else (0, 0)
    rng = round_rng(seed, day)
    if uncertainty is None and recommendation == HYBRID:
        method = METHOD_COVERAGE
    else:
        method = METHOD_HYBRID if recommendation == HYBRID else METHOD_FALLBACK
    frames = []
    chosen = np.zeros(n, dtype=bool)
    if per_arm:
        control = np.sort(rng.choice(n, size=per_arm, replace=False))
        chosen[control] = True
        frames.append(_issued_rows(pool, control, rid, RANDOM, True, "random",
                                   uncertainty=None if uncertainty is None
                                   else uncertainty[control]))
    selector_size = per_arm + extra
    if selector_size:
        rest = np.flatnonzero(~chosen)
        if method == METHOD_FALLBACK:
            picks = rest[rng.choice(len(rest), size=selector_size, replace=False)]
            frames.append(_issued_rows(
                pool, picks, rid, HYBRID, np.arange(selector_size) < per_arm, method,
                uncertainty=None if uncertainty is None else uncertainty[picks]))
            chosen[picks] = True
            notes.append("the last experiment found hybrid selection no better than random: "
                         "the selector's arm is drawn at random (change the selector and its "
                         "selection_policy_version to try again)")
        else:
            if embeddings is None:
                embeddings = embed_texts(pair_texts(pool), dim=embed_dim, seed=seed,
                                         fit_sample=EMBED_FIT_SAMPLE,
                                         n_features=EMBED_FEATURES)
            scores = (np.zeros(n) if uncertainty is None else uncertainty)
            weight = weight_uncertainty if uncertainty is not None else 0.0
            picked = hybrid_select(embeddings, scores, selector_size, weight, eligible=~chosen)
            chosen[picked.indices] = True
            frames.append(_issued_rows(
                pool, picked.indices, rid, HYBRID, np.arange(selector_size) < per_arm, method,
                uncertainty=None if uncertainty is None else picked.uncertainty,
                coverage=picked.coverage, score=picked.score))
            if method == METHOD_COVERAGE:
                notes.append("no preference model yet: the selector's arm uses coverage alone")
    if allowance < n:
        notes.append(f"pairwise budget {allowance} of {n} eligible; {n - allowance} wait in the "
                     "backlog")
    if extra:
        notes.append(f"{extra} selector pick(s) beyond the two equal arms of {per_arm} stay "
                     "outside the experiment")

    waiting = [pool.loc[~chosen, list(POOL_COLUMNS)]]
    for task, items in (work.groupby("task", sort=True) if len(work) else ()):
        ordered = items.sort_values(["trace_day", "trace_id"], kind="stable")
        take = budget.allowance(str(task), len(ordered))
        frames.append(_issued_rows(ordered, np.arange(take), rid, None, False, "oldest_first"))
        waiting.append(ordered.iloc[take:][list(POOL_COLUMNS)])
        if take < len(ordered):
            notes.append(f"{task} budget {take} of {len(ordered)}; {len(ordered) - take} wait "
                         "in the backlog")
    issued = pd.concat([empty_issued(), *frames], ignore_index=True).astype(ISSUED_DTYPES)
    backlog = pd.concat([*waiting, pool_aged, work_aged], ignore_index=True)
    return RoundPlan(issued=issued, backlog=backlog_rows(backlog, day, max_age_days),
                     method=method, per_arm=per_arm, notes=notes)


def replay_round(day: str, items: pd.DataFrame, issued: pd.DataFrame,
                 max_age_days: int) -> RoundPlan:
    """A round that was already issued, kept exactly as issued: tasks handed to reviewers do
    not change because a later model would now pick differently. The backlog is what the
    round's items left over, as when it was first planned."""
    issued = pd.concat([empty_issued(), issued[list(ISSUED_DTYPES)]],
                       ignore_index=True).astype(ISSUED_DTYPES)
    rest = items[~items["trace_id"].isin(set(issued["trace_id"]))]
    selector = issued.loc[issued["arm"] == HYBRID, "method"]
    return RoundPlan(issued=issued, backlog=backlog_rows(rest, day, max_age_days),
                     method=str(selector.iloc[0]) if len(selector) else METHOD_HYBRID,
                     per_arm=int((issued["arm"] == RANDOM).sum()),
                     notes=[f"{round_id_for(day)} was already issued; kept as issued"])


def _split_aged(items: pd.DataFrame, day: str, max_age_days: int
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    if items.empty:
        return items, items
    old = ages(items["trace_day"], day) > max_age_days
    return items[~old], items[old]


def backlog_rows(items: pd.DataFrame, day: str, max_age_days: int,
                 status: str | None = None) -> pd.DataFrame:
    """Backlog rows for `items` (POOL_COLUMNS) as of `day`: waiting, or aged out past the
    declared age; `status` overrides both (e.g. EXCLUDED_NEAR_FROZEN)."""
    if items.empty:
        return empty_backlog()
    age = ages(items["trace_day"], day)
    out = items[list(POOL_COLUMNS)].assign(
        age_days=age, status=status or np.where(age > max_age_days, AGED_OUT, WAITING))
    return out.sort_values(["status", "trace_day", "trace_id"], kind="stable"
                           ).reset_index(drop=True).astype(BACKLOG_DTYPES)
