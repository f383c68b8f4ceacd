"""Cross-day duplicate check of ingest at scale, beside its baseline in the same run.

Builds a temporary data root with --days stored raw_traces partitions of --ids trace ids each
(written as ingest writes them: Storage.write_stream, zstd Parquet, one row group per 20,000-row
batch), then checks --chunks chunks of --chunk-rows ids, of which --dup-share are planted ids
stored on a random one of the --dup-days most recent stored days (default: any day; the rest
are new ids):

- stages.ingest.LandedElsewhere: the other days' hash(trace_id) read once into a sorted numpy
  array at construction; per chunk a searchsorted lookup, and an exact query over the days
  holding the candidate hashes;
- OldLandedElsewhere (kept below): one DuckDB semi-join per chunk over every other day.

Both must return the same mapping for every chunk. The machine is shared, so wall times are
noisy; CPU seconds are printed beside them.

    python bench/ingest_duplicates.py [--days 30] [--ids 1000000] [--chunks 50]
                                      [--chunk-rows 20000] [--dup-share 0.01]
                                      [--dup-days 30] [--baseline-chunks 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, self_peak_rss_mib, table  # noqa: E402

from feedback_pipeline.stages.ingest import LandedElsewhere  # noqa: E402
from feedback_pipeline.storage import RESTRICTED, BatchStream, Storage  # noqa: E402

SCHEMA = pa.schema([("trace_id", pa.string()), ("prompt", pa.string())])
WRITE_ROWS = 20_000  # ingest's BATCH_ROWS: one row group per batch
DAY = "2026-06-30"  # the day being ingested; the stored days come before it


class OldLandedElsewhere:
    """The implementation LandedElsewhere replaced: one DuckDB semi-join per chunk over the
    trace_id column of every other day's partition."""

    def __init__(self, storage: Storage, day: str) -> None:
        days = [d for d in storage.table_days(RESTRICTED, "raw_traces") if d != day]
        self.scan = storage.scan_sql(RESTRICTED, "raw_traces", days) if days else None
        self.con = storage.connect() if self.scan else None

    def days_of(self, ids: pa.Table) -> dict[str, str]:
        if self.con is None or not ids.num_rows:
            return {}
        self.con.register("chunk_ids", ids)
        try:
            found = self.con.sql(
                f"SELECT trace_id, min(CAST(date AS VARCHAR)) FROM {self.scan} "
                "WHERE trace_id IN (SELECT trace_id FROM chunk_ids) GROUP BY trace_id").fetchall()
        finally:
            self.con.unregister("chunk_ids")
        return dict(found)

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


def day_ids(index: int, ids: int, rng: np.random.Generator) -> pa.Array:
    """`ids` unique ids of stored day `index`, in random order (no row-group pruning)."""
    numbers = rng.permutation(ids).astype(np.int64) + index * ids
    return pc.binary_join_element_wise("trace-", pc.cast(pa.array(numbers), pa.string()), "")


def build_root(root: Path, days: int, ids: int, seed: int) -> tuple[Storage, list[str]]:
    storage = Storage(root)
    rng = np.random.default_rng(seed)
    names = [str(np.datetime64(DAY) - np.timedelta64(days - i, "D")) for i in range(days)]
    for index, day in enumerate(names):
        column = day_ids(index, ids, rng)
        prompt = pa.array(["review this diff"] * WRITE_ROWS)

        def batches(column=column, prompt=prompt):
            for start in range(0, len(column), WRITE_ROWS):
                part = column.slice(start, WRITE_ROWS)
                yield pa.table({"trace_id": part, "prompt": prompt.slice(0, len(part))})

        storage.write_stream(RESTRICTED, "raw_traces", day, BatchStream(SCHEMA, batches()))
    return storage, names


def chunks(days: int, ids: int, count: int, rows: int, dup_share: float, dup_days: int,
           seed: int) -> list[tuple[pa.Table, dict[str, int]]]:
    """(chunk ids, the planted duplicates with their day index) per chunk."""
    rng = np.random.default_rng(seed + 1)
    out = []
    planted = max(1, round(rows * dup_share)) if dup_share > 0 else 0
    for c in range(count):
        # new ids share the stored ids' key space, so no min/max filter can skip a row group
        fresh = [f"trace-{days * ids + c * rows + i}" for i in range(rows - planted)]
        numbers = (days - dup_days) * ids + rng.choice(dup_days * ids, size=planted,
                                                       replace=False)
        dups = [f"trace-{n}" for n in numbers]
        mixed = fresh + dups
        order = rng.permutation(len(mixed))
        out.append((pa.table({"trace_id": pa.array([mixed[i] for i in order], pa.string())}),
                    {f"trace-{n}": int(n // ids) for n in numbers}))
    return out


def run(checker_type: type, storage: Storage, work: list[tuple[pa.Table, dict[str, int]]]
        ) -> tuple[float, float, list[float], list[dict[str, str]]]:
    """(construction s, construction CPU s, per-chunk s, results)."""
    wall, cpu = time.perf_counter(), time.process_time()
    checker = checker_type(storage, DAY)
    built, built_cpu = time.perf_counter() - wall, time.process_time() - cpu
    times, results = [], []
    try:
        for ids, _ in work:
            start = time.perf_counter()
            results.append(checker.days_of(ids))
            times.append(time.perf_counter() - start)
    finally:
        checker.close()
    return built, built_cpu, times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument("--dup-share", type=float, default=0.01)
    parser.add_argument("--dup-days", type=int, default=None,
                        help="plant duplicates from only the most recent N stored days")
    parser.add_argument("--baseline-chunks", type=int, default=None,
                        help="run the old semi-join on only this many chunks and scale")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="ingest-dups-") as tmp:
        start = time.perf_counter()
        storage, names = build_root(Path(tmp) / "data", args.days, args.ids, args.seed)
        dup_days = min(args.dup_days or args.days, args.days)
        work = chunks(args.days, args.ids, args.chunks, args.chunk_rows, args.dup_share,
                      dup_days, args.seed)
        print(f"data: {args.days} days x {args.ids:,} ids written in "
              f"{time.perf_counter() - start:.1f} s; {args.chunks} chunks of "
              f"{args.chunk_rows:,} ids, {args.dup_share:.1%} planted duplicates from the "
              f"{dup_days} most recent day(s)")

        built, built_cpu, times, results = run(LandedElsewhere, storage, work)
        rss = self_peak_rss_mib()
        for (_, planted), got in zip(work, results, strict=True):
            assert got == {tid: names[d] for tid, d in planted.items()}, "wrong days"
        base_n = min(args.baseline_chunks or args.chunks, args.chunks)
        old_built, _, old_times, old_results = run(OldLandedElsewhere, storage, work[:base_n])
        assert old_results == results[:base_n], "the two implementations disagree"

    new_total = built + sum(times)
    old_total = old_built + sum(old_times) * args.chunks / base_n
    scaled = "" if base_n == args.chunks else f" (scaled from {base_n} chunks)"
    print(table(["implementation", "construction s", "per chunk ms (median / max)",
                 "total s per day ingested"], [
        ["LandedElsewhere (hashes once)", f"{built:.2f} (CPU {built_cpu:.2f})",
         f"{1000 * np.median(times):.1f} / {1000 * max(times):.1f}", f"{new_total:.2f}"],
        ["old per-chunk semi-join", f"{old_built:.2f}",
         f"{1000 * np.median(old_times):.1f} / {1000 * max(old_times):.1f}",
         f"{old_total:.2f}{scaled}"],
    ]))
    print(f"speed-up {old_total / new_total:.1f}x; results identical on {base_n} chunks; "
          f"peak RSS after the new check {rss:.0f} MiB")


if __name__ == "__main__":
    main()
