"""Leakage checks at scale: 10^7 training rows over 100 daily partitions vs 10^5 frozen rows.

The project's check (core.leakage.find_leaks over a DuckDB scan of the Parquet partitions, id
and content rules) is timed beside the baseline: pandas `isin` on fully loaded tables. Each runs
in its own process so peak memory is its own.

    python bench/leakage.py [--rows 10000000] [--partitions 100] [--frozen 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_of, table  # noqa: E402

PROJECT = """
import resource, sys, time, glob
import pandas as pd
from feedback_pipeline.core.leakage import find_leaks
root = sys.argv[1]
files = sorted(glob.glob(root + "/training/date=*/part-0.parquet"))
listing = ", ".join(f"'{f}'" for f in files)
start = time.perf_counter()
frozen = pd.read_parquet(root + "/frozen.parquet")
leaks = find_leaks(f"read_parquet([{listing}])", frozen)
elapsed = time.perf_counter() - start
print(elapsed, len(leaks), (leaks["rule"] == "id").sum(), (leaks["rule"] == "content").sum())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

BASELINE = """
import resource, sys, time, glob
import pandas as pd
root = sys.argv[1]
files = sorted(glob.glob(root + "/training/date=*/part-0.parquet"))
start = time.perf_counter()
training = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
frozen = pd.read_parquet(root + "/frozen.parquet")
by_id = training[training["trace_id"].isin(frozen["trace_id"])]
by_content = training[training["prompt_fingerprint"].isin(frozen["prompt_fingerprint"])
                      & ~training["trace_id"].isin(frozen["trace_id"])]
elapsed = time.perf_counter() - start
print(elapsed, len(by_id) + len(by_content), len(by_id), len(by_content))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def write_data(root: Path, rows: int, partitions: int, frozen: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per = rows // partitions
    lanes = np.array(["preference", "sft", "unpaired"])
    for p in range(partitions):
        ids = np.char.add("t-", np.arange(p * per, (p + 1) * per).astype(str))
        fps = np.char.add("fp-", np.arange(p * per, (p + 1) * per).astype(str))
        folder = root / "training" / f"date=2026-{1 + p // 28:02d}-{1 + p % 28:02d}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"lane": lanes[rng.integers(0, 3, per)], "trace_id": ids,
                                 "prompt_fingerprint": fps}), folder / "part-0.parquet")
    frozen_ids = np.char.add("f-", np.arange(frozen).astype(str))
    frozen_fps = np.char.add("ffp-", np.arange(frozen).astype(str))
    leak_ids = rng.choice(rows, 10, replace=False)
    leak_content = rng.choice(rows, 10, replace=False)
    frozen_ids[:10] = np.char.add("t-", leak_ids.astype(str))
    frozen_fps[10:20] = np.char.add("fp-", leak_content.astype(str))
    pq.write_table(pa.table({"trace_id": frozen_ids, "prompt_fingerprint": frozen_fps}),
                   root / "frozen.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--frozen", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_data(root, args.rows, args.partitions, args.frozen)
        results = []
        for name, code in (("project: DuckDB over Parquet (find_leaks)", PROJECT),
                           ("baseline: pandas isin, tables loaded", BASELINE)):
            peak, out = peak_rss_of(code, str(root))
            elapsed, found, by_id, by_content = out.split()
            results.append([name, float(elapsed), int(found), f"{by_id}/{by_content}", peak])
    base = results[1][1]
    print(f"machine: {machine()}")
    print(f"{args.rows:,} training rows in {args.partitions} partitions vs {args.frozen:,} frozen "
          "rows; 10 id leaks and 10 content leaks planted")
    print(table(["check", "seconds", "leaks found", "id/content", "peak MiB", "time vs baseline"],
                [[r[0], f"{r[1]:.2f}", r[2], r[3], f"{r[4]:.0f}", f"{r[1] / base:.2f}x"]
                 for r in results]))


if __name__ == "__main__":
    main()
