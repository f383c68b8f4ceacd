"""Benchmark: hybrid selection of k items from n candidates with d-dimensional embeddings.

Measures feedback_pipeline.core.selection.hybrid_select (time and peak extra memory), and a whole
labeling round's pairwise draw (core.rounds.plan_round: a random control arm of k drawn first,
then k hybrid picks from the rest, checked disjoint and equal), and sets them beside:
  - the seed's loop (listing 06: per pick, the min distance over Python lists to every chosen
    item, computed twice), measured on a smaller pool and extrapolated by its exact count of
    distance evaluations, sum over picks s of 2 (n - s) s;
  - small-text's greedy_coreset (pure coverage, weight 0), when small-text is installed,
    measured on a smaller pool and extrapolated by its work, n x (number chosen so far) per pick;
  - the memory-bandwidth floor: every pick must read the whole pool once, n (4d + 8) bytes,
    at a declared 20 GB/s.
On the small pools the vectorised selector is run too and its picks are checked against the
baselines' picks.

    python bench/selection.py                      # 10^6 x 64, k = 1000
    python bench/selection.py --n 200000 --k 200   # quicker
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from math import dist
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedback_pipeline.core.rounds import (  # noqa: E402
    ISSUED_DTYPES,
    parse_review_budget,
    plan_round,
)
from feedback_pipeline.core.selection import hybrid_select  # noqa: E402

ROUND_DAY = "2026-05-10"


def round_pool(n: int) -> pd.DataFrame:
    """The pool columns a round reads besides the embeddings (texts are not needed when the
    embeddings are given)."""
    ids = pd.Series([f"t{i:07d}" for i in range(n)], dtype="string")
    return pd.DataFrame({"trace_id": ids, "trace_day": ROUND_DAY, "task": "pairwise",
                         "queue": "PREFERENCE_QUEUE", "slice": "s", "entered_on": ROUND_DAY})


def labeling_round(embeddings: np.ndarray, uncertainty: np.ndarray, k: int, weight: float):
    """One round as the stage draws it: 2k pairwise items, k per arm."""
    pool = round_pool(len(embeddings))
    return plan_round(ROUND_DAY, pool, pool.iloc[0:0], parse_review_budget(2 * k, k),
                      weight_uncertainty=weight, uncertainty=uncertainty.astype(np.float64),
                      embeddings=embeddings)


def make_pool(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit-length float32 embeddings and uncertainties, generated in blocks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d), dtype=np.float32)
    embeddings = np.empty((n, d), dtype=np.float32)
    block = 200_000
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = centres[rng.integers(0, len(centres), size=stop - start)]
        rows += 0.5 * rng.standard_normal((stop - start, d), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        embeddings[start:stop] = rows
    uncertainty = rng.uniform(size=n).astype(np.float32)
    return embeddings, uncertainty


def seed_loop(points: list[tuple[float, ...]], uncertainty: list[float], k: int, weight: float):
    """Listing 06 as written: Python lists, min over the chosen set recomputed for every item."""
    selected = [max(range(len(points)), key=lambda i: uncertainty[i])]
    remaining = set(range(len(points))) - set(selected)
    while len(selected) < k:
        max_distance = (
            max(min(dist(points[i], points[j]) for j in selected) for i in remaining) or 1.0
        )

        def score(i: int, max_distance: float = max_distance) -> float:
            coverage = min(dist(points[i], points[j]) for j in selected) / max_distance
            return weight * uncertainty[i] + (1 - weight) * coverage

        chosen = max(remaining, key=score)
        selected.append(chosen)
        remaining.remove(chosen)
    return selected


def seed_distance_calls(n: int, k: int) -> int:
    return sum(2 * (n - s) * s for s in range(1, k))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def fmt_seconds(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds:,.0f} s ({seconds / 86400:.1f} days)"
    if seconds >= 3600:
        return f"{seconds:,.0f} s ({seconds / 3600:.1f} h)"
    return f"{seconds:.3f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="pool size")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension")
    parser.add_argument("--k", type=int, default=1000, help="batch size")
    parser.add_argument("--weight", type=float, default=0.6, help="weight_uncertainty")
    parser.add_argument("--naive-n", type=int, default=2000, help="pool for the seed loop")
    parser.add_argument("--naive-k", type=int, default=40, help="picks for the seed loop")
    parser.add_argument("--coreset-n", type=int, default=20_000, help="pool for small-text")
    parser.add_argument("--coreset-k", type=int, default=40, help="picks for small-text")
    parser.add_argument("--bandwidth-gbs", type=float, default=20.0, help="declared GB/s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, d, k = args.n, args.dim, args.k

    try:
        from threadpoolctl import threadpool_info

        blas_threads = ",".join(str(i["num_threads"]) for i in threadpool_info()) or "?"
    except ImportError:
        blas_threads = "?"
    print(f"# hybrid selection: pick {k} of {n:,} candidates, {d}-dim float32 embeddings")
    print(f"# cpus visible: {os.cpu_count()}, BLAS threads: {blas_threads}")

    embeddings, uncertainty = make_pool(n, d, args.seed)
    pool_mib = embeddings.nbytes / 2**20
    tracemalloc.start()
    selection, vector_s = timed(hybrid_select, embeddings, uncertainty, k, args.weight)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra_mib = peak / 2**20
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor_bytes = n * (4 * d + 8) * k
    floor_s = floor_bytes / (args.bandwidth_gbs * 1e9)

    plan, round_s = timed(labeling_round, embeddings, uncertainty, k, args.weight)
    arms = {arm: set(plan.issued.loc[plan.issued["arm"] == arm, "trace_id"])
            for arm in ("hybrid", "random")}
    disjoint = not arms["hybrid"] & arms["random"]
    equal = len(arms["hybrid"]) == len(arms["random"]) == k
    assert tuple(plan.issued.columns) == tuple(ISSUED_DTYPES)

    rows: list[tuple[str, str, str, str, str]] = []
    rows.append(
        (
            "hybrid_select (vectorised)",
            f"{n:,} x {k}",
            fmt_seconds(vector_s),
            "1.0x",
            f"measured; peak extra {extra_mib:.0f} MiB beside the {pool_mib:.0f} MiB pool",
        )
    )
    rows.append(
        (
            "labeling round (plan_round)",
            f"{n:,} x {k} + {k}",
            fmt_seconds(round_s),
            f"{round_s / vector_s:.2f}x",
            f"control arm of {k} first, {k} hybrid picks from the rest; disjoint: {disjoint}, "
            f"equal: {equal}; backlog {len(plan.backlog):,}",
        )
    )
    rows.append(
        (
            "memory-bandwidth floor",
            f"{n:,} x {k}",
            fmt_seconds(floor_s),
            f"{floor_s / vector_s:.2f}x",
            f"n(4d+8)k = {floor_bytes / 1e9:.0f} GB at {args.bandwidth_gbs:g} GB/s",
        )
    )

    naive_n, naive_k = min(args.naive_n, n), min(args.naive_k, k)
    small_points = embeddings[:naive_n].astype(np.float64)
    small_unc = uncertainty[:naive_n].astype(np.float64)
    naive_picks, naive_s = timed(
        seed_loop, [tuple(p) for p in small_points], list(small_unc), naive_k, args.weight
    )
    check = hybrid_select(small_points, small_unc, naive_k, args.weight).indices.tolist()
    per_call = naive_s / seed_distance_calls(naive_n, naive_k)
    naive_full = per_call * seed_distance_calls(n, k)
    rows.append(
        (
            "seed loop (Python lists)",
            f"{naive_n:,} x {naive_k}",
            fmt_seconds(naive_s),
            "-",
            f"measured; same picks as vectorised: {check == naive_picks}",
        )
    )
    rows.append(
        (
            "seed loop, extrapolated",
            f"{n:,} x {k}",
            fmt_seconds(naive_full),
            f"{naive_full / vector_s:,.0f}x",
            f"EXTRAPOLATED: {per_call * 1e9:.0f} ns/distance x {seed_distance_calls(n, k):.2e} calls",
        )
    )

    try:
        from small_text.query_strategies.coresets import greedy_coreset
    except ImportError:
        rows.append(("small-text greedy_coreset", "-", "-", "-", "not installed: not benchmarked"))
    else:
        core_n, core_k = min(args.coreset_n, n), min(args.coreset_k, k)
        pool = embeddings[:core_n]
        ours = hybrid_select(pool, uncertainty[:core_n], core_k, weight_uncertainty=0.0)
        first = ours.indices[:1]
        theirs, core_s = timed(
            greedy_coreset,
            pool,
            np.arange(core_n),
            first,
            core_k - 1,
            distance_metric="euclidean",
            normalized=True,
        )
        core_work = core_n * sum(range(1, core_k))
        full_work = n * sum(range(1, k))
        core_full = core_s * full_work / core_work
        same = theirs.tolist() == ours.indices[1:].tolist()
        rows.append(
            (
                "small-text greedy_coreset",
                f"{core_n:,} x {core_k}",
                fmt_seconds(core_s),
                "-",
                f"measured, coverage only (weight 0); same picks as ours at weight 0: {same}",
            )
        )
        rows.append(
            (
                "greedy_coreset, extrapolated",
                f"{n:,} x {k}",
                fmt_seconds(core_full),
                f"{core_full / vector_s:,.0f}x",
                "EXTRAPOLATED by n x chosen-so-far per pick",
            )
        )

    header = ("method", "pool x picks", "time", "vs vectorised", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print()
    print(f"vectorised / floor = {vector_s / floor_s:.2f} (target: under 2; under 30 s)")
    print(f"labeling round / floor = {round_s / floor_s:.2f} (the same k hybrid picks plus the "
          f"control arm and the backlog); arms disjoint: {disjoint}, equal: {equal}")
    print(f"process peak RSS: {rss_mib:.0f} MiB")
    print("a pool that fits in CPU cache can run faster than the DRAM floor (ratio below 1).")
    print(
        "'vs vectorised' is the other method's time divided by the vectorised time "
        "(for the floor: floor / vectorised)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
