"""Benchmark: agreement_report on 10^6 reviews from 50 reviewers vs a plain-Python loop.

agreement_report computes every label coefficient (Cohen's where defined, Conger's, Fleiss',
Gwet's AC1, nominal alpha) and, from ``--score-reviews`` pointwise 1-5 scores on (trace,
candidate) items passed as ``scores=``, the ordinal, interval and ratio alphas and, with the
scores taken as categories, nominal alpha and Fleiss' kappa, each with its bootstrap interval. The loop computes the label statistics (Conger's kappa over review pairs,
Krippendorff's nominal alpha, gold misses, a percentile bootstrap over items) with dicts and
lists. It is too slow for the full size, so it runs on a smaller sample and its time is
extrapolated linearly: point estimates by the number of reviews, the bootstrap by reviews times
replicates. The output says so. Both are run on the small sample too, to show they agree.

    .venv/bin/python bench/agreement.py                 # 10^6 reviews, 50 reviewers
    .venv/bin/python bench/agreement.py --reviews 100000 --bootstrap 200   # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedback_pipeline.core.agreement import PAIRWISE_LABELS, agreement_report  # noqa: E402

SLICES = np.array(["prompt-injection", "flaky-test-handoff", "accessible-language", "general"])


def synthetic_reviews(
    n_reviews: int, n_reviewers: int, per_item: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Duplicate-reviewed items with a known truth and per-reviewer noise (0.05 to 0.4)."""
    rng = np.random.default_rng(seed)
    n_items = n_reviews // per_item
    truth = rng.integers(0, 4, n_items)
    reviewers = np.argsort(rng.random((n_items, n_reviewers)), axis=1)[:, :per_item].ravel()
    item = np.repeat(np.arange(n_items), per_item)
    noise = np.linspace(0.05, 0.4, n_reviewers)[reviewers]
    random_label = rng.integers(0, 4, len(item))
    label = np.where(rng.random(len(item)) < noise, random_label, truth[item])
    templates = np.array([
        json.dumps({"a": {"technically_correct": bool(x), "actionable": True, "clear": bool(y)},
                    "b": {"technically_correct": not x, "actionable": bool(y), "clear": True}})
        for x in (0, 1) for y in (0, 1)
    ])
    trace_ids = np.char.add("trace-", np.arange(n_items).astype(str))
    reviews = pd.DataFrame({
        "review_id": np.char.add("review-", np.arange(len(item)).astype(str)),
        "trace_id": trace_ids[item],
        "reviewer_id": np.char.add("reviewer-", reviewers.astype(str)),
        "label": np.array(PAIRWISE_LABELS)[label],
        "slice": SLICES[item % len(SLICES)],
        "criteria_json": templates[rng.integers(0, len(templates), len(item))],
    })
    gold_items = rng.choice(n_items, size=min(2000, n_items), replace=False)
    gold = pd.DataFrame({"trace_id": trace_ids[gold_items],
                         "label": np.array(PAIRWISE_LABELS)[truth[gold_items]],
                         "slice": SLICES[gold_items % len(SLICES)]})
    return reviews, gold


def synthetic_scores(n_reviews: int, n_reviewers: int, per_item: int, seed: int) -> pd.DataFrame:
    """Pointwise 1-5 scores on (trace, candidate) items: truth plus per-reviewer +-1 noise."""
    rng = np.random.default_rng(seed + 7)
    n_items = max(n_reviews // per_item, 1)
    truth = rng.integers(1, 6, n_items)
    reviewers = np.argsort(rng.random((n_items, n_reviewers)), axis=1)[:, :per_item].ravel()
    item = np.repeat(np.arange(n_items), per_item)
    noise = np.linspace(0.1, 0.5, n_reviewers)[reviewers]
    step = rng.choice([-1, 1], len(item)) * (rng.random(len(item)) < noise)
    score = np.clip(truth[item] + step, 1, 5)
    return pd.DataFrame({
        "review_id": np.char.add("score-", np.arange(len(item)).astype(str)),
        "trace_id": np.char.add("scored-", (item // 2).astype(str)),
        "candidate_id": np.char.add("cand-", (item % 2).astype(str)),
        "reviewer_id": np.char.add("reviewer-", reviewers.astype(str)),
        "score": score.astype(np.int64),
    })


def loop_statistics(items: list[list[tuple[str, int]]], n_labels: int) -> tuple[float, float]:
    """(Conger's kappa over review pairs, nominal alpha) over items of sorted (reviewer, label)."""
    pairs: Counter[tuple[str, str]] = Counter()
    marginals: dict[str, list[int]] = {}
    agreeing = total_pairs = 0
    coincidence = [[0.0] * n_labels for _ in range(n_labels)]
    for reviews in items:
        m = len(reviews)
        for i in range(m):
            reviewer, label = reviews[i]
            marginals.setdefault(reviewer, [0] * n_labels)[label] += 1
            for j in range(i + 1, m):
                pairs[(reviewer, reviews[j][0])] += 1
                agreeing += label == reviews[j][1]
                total_pairs += 1
        counts = Counter(label for _, label in reviews)
        for c, nc in counts.items():
            for k, nk in counts.items():
                coincidence[c][k] += (nc * nk - (nc if c == k else 0)) / (m - 1)
    shares = {r: [v / sum(row) for v in row] for r, row in marginals.items()}
    chance = sum(n * sum(x * y for x, y in zip(shares[a], shares[b], strict=True))
                 for (a, b), n in pairs.items()) / total_pairs
    observed = agreeing / total_pairs
    kappa = (observed - chance) / (1 - chance) if chance < 1 else float("nan")
    marginal = [sum(row) for row in coincidence]
    total = sum(marginal)
    disagree = total - sum(coincidence[i][i] for i in range(n_labels))
    expected = total * total - sum(v * v for v in marginal)
    alpha = 1 - (total - 1) * disagree / expected if expected else float("nan")
    return kappa, alpha


def loop_report(reviews: pd.DataFrame, gold: pd.DataFrame, bootstrap: int, seed: int) -> dict:
    """The plain-Python baseline: dicts, lists and a replicate loop."""
    index = {label: i for i, label in enumerate(PAIRWISE_LABELS)}
    by_item: dict[str, dict[str, int]] = defaultdict(dict)
    for trace_id, reviewer_id, label in zip(reviews["trace_id"], reviews["reviewer_id"],
                                            reviews["label"], strict=True):
        by_item[trace_id][reviewer_id] = index[label]
    items = [sorted(d.items()) for d in by_item.values() if len(d) >= 2]
    kappa, alpha = loop_statistics(items, len(PAIRWISE_LABELS))
    answers = dict(zip(gold["trace_id"], gold["label"], strict=True))
    misses: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for trace_id, reviewer_id, label in zip(reviews["trace_id"], reviews["reviewer_id"],
                                            reviews["label"], strict=True):
        if trace_id in answers:
            seen[reviewer_id] += 1
            misses[reviewer_id] += label != answers[trace_id]
    start = time.perf_counter()
    rnd = random.Random(seed)
    replicates = []
    for _ in range(bootstrap):
        sample = [items[rnd.randrange(len(items))] for _ in range(len(items))]
        replicates.append(loop_statistics(sample, len(PAIRWISE_LABELS)))
    ks = sorted(k for k, _ in replicates)
    return {"kappa": kappa, "alpha": alpha, "bootstrap_seconds": time.perf_counter() - start,
            "kappa_ci": (ks[int(0.025 * len(ks))], ks[int(0.975 * len(ks)) - 1]) if ks else None}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--per-item", type=int, default=2, help="reviews per duplicate item")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--baseline-reviews", type=int, default=10_000)
    parser.add_argument("--baseline-bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score-reviews", type=int, default=None,
                        help="pointwise score reviews, of the --reviews total (default half)")
    args = parser.parse_args()
    n_scores = args.reviews // 2 if args.score_reviews is None else args.score_reviews
    n_labels = args.reviews - n_scores

    reviews, gold = synthetic_reviews(n_labels, args.reviewers, args.per_item, args.seed)
    scores = synthetic_scores(n_scores, args.reviewers, args.per_item, args.seed)
    small, small_gold = synthetic_reviews(args.baseline_reviews, args.reviewers, args.per_item,
                                          args.seed + 1)

    point, t_point = timed(agreement_report, reviews, gold=gold, bootstrap=0, scores=scores)
    full, t_full = timed(agreement_report, reviews, gold=gold, bootstrap=args.bootstrap,
                         seed=args.seed, scores=scores)
    t_boot = t_full - t_point

    check, _ = timed(agreement_report, small, gold=small_gold, bootstrap=0)
    base, t_base = timed(loop_report, small, small_gold, args.baseline_bootstrap, args.seed)
    base_point = t_base - base["bootstrap_seconds"]
    scale = n_labels / args.baseline_reviews
    loop_point = base_point * scale
    loop_boot = base["bootstrap_seconds"] * scale * args.bootstrap / max(args.baseline_bootstrap, 1)

    s = full.summary
    print(f"agreement_report: {args.reviews:,} reviews ({n_labels:,} pairwise labels, "
          f"{n_scores:,} pointwise scores), {args.reviewers} reviewers, "
          f"{s['n_items']:,} duplicate items, {s['score_n_items']:,} duplicate-scored items, "
          f"{s['kappa_pairs']:,} reviewer pairs, bootstrap {args.bootstrap}")

    def ci(key: str, prefix: str) -> str:
        low, high = s[f"{prefix}_ci_low"], s[f"{prefix}_ci_high"]
        return (f"{key} {s[key]:.4f} [{low:.4f}, {high:.4f}]" if s[key] is not None
                else f"{key} n/a")

    print("  ".join([ci("conger_kappa", "conger_kappa"), ci("fleiss_kappa", "fleiss_kappa"),
                     ci("gwet_ac1", "gwet_ac1"),
                     ci("krippendorff_alpha_nominal", "alpha_nominal")]))
    print("  ".join([ci(f"alpha_{lv}", f"alpha_{lv}") for lv in ("ordinal", "interval", "ratio")]
                    + [ci(key, key) for key in ("score_alpha_nominal", "score_fleiss_kappa")])
          + f"  flagged reviewers {s['n_flagged_reviewers']}")
    print(f"cross-check on the {args.baseline_reviews:,}-review sample: kappa vectorised "
          f"{check.summary['conger_kappa']:.6f} vs loop {base['kappa']:.6f}; alpha "
          f"{check.summary['krippendorff_alpha_nominal']:.6f} vs loop {base['alpha']:.6f}")
    print()
    print(f"plain-Python loop measured on {args.baseline_reviews:,} reviews with "
          f"{args.baseline_bootstrap} replicates ({t_base:.2f} s), extrapolated linearly to "
          f"{n_labels:,} label reviews and {args.bootstrap} replicates")
    print("(the loop computes kappa, alpha and gold misses only; agreement_report also computes "
          "Fleiss, AC1 and the three score alphas, dedups and builds the pairwise, slice, "
          "reviewer and criteria tables)")
    print(f"{'stage':<28}{'vectorised s':>14}{'loop s (extrap.)':>18}{'speed-up':>10}")
    rows = [("point estimates + tables", t_point, loop_point),
            (f"bootstrap x{args.bootstrap}", t_boot, loop_boot),
            ("total", t_full, loop_point + loop_boot)]
    for name, ours, loop in rows:
        print(f"{name:<28}{ours:>14.2f}{loop:>18.1f}{loop / ours:>9.0f}x")
    print(f"throughput: {args.reviews / t_full:,.0f} reviews/s end to end")


if __name__ == "__main__":
    main()
