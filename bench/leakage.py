"""Leakage checks at scale, each beside its baseline in the same run.

1. id and content rules: 10^7 training rows over 100 daily partitions vs 10^5 frozen rows;
   core.leakage.find_leaks over a DuckDB scan of the Parquet partitions, beside pandas `isin`
   on fully loaded tables.
2. near-duplicates: 10^5 (10^6 with --million) training prompts streamed from Parquet in record
   batches vs 1,000 frozen prompts, with planted paraphrases; core.leakage.find_near_duplicates
   beside the per-prompt implementation it replaced (kept below as OLD_NEAR_DUPLICATES), which
   runs on the first --baseline-rows prompts and is scaled linearly (printed as such).
3. fingerprints: core.fingerprint.fingerprints_array beside `fingerprint()` per text, MB/s.

Prompts come from the synthetic vocabulary (templates plus a per-trace detail sentence), so they
share many word 3-grams: a hard case for candidate generation. Each timed check runs in its own
process so peak memory is its own; the machine is shared, so wall times are noisy, and CPU time
is printed beside them.

    python bench/leakage.py [--rows 10000000] [--partitions 100] [--frozen 100000]
    python bench/leakage.py --sections near,fingerprints [--million]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_of, table  # noqa: E402

from feedback_pipeline.core.fingerprint import fingerprint, fingerprints_array  # noqa: E402
from feedback_pipeline.synth import vocabulary as vocab  # noqa: E402

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


OLD_NEAR_DUPLICATES = """
import numpy as np
import pandas as pd
from feedback_pipeline.core.leakage import shingle_hashes  # the per-prompt shingling, unchanged

def minhash_signatures(shingles, num_perm=64, seed=0, chunk_rows=4_000):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, np.iinfo(np.int64).max, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.int64).max, size=num_perm, dtype=np.uint64)
    out = np.full((len(shingles), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingles), chunk_rows):
        block = shingles[start:start + chunk_rows]
        lengths = np.fromiter((len(x) for x in block), dtype=np.int64, count=len(block))
        rows = np.flatnonzero(lengths)
        if not len(rows):
            continue
        values = np.concatenate([block[i] for i in rows])
        hashed = (values[:, None] * a + b) >> np.uint64(32)
        offsets = np.concatenate([[0], np.cumsum(lengths[rows])[:-1]])
        out[start + rows] = np.minimum.reduceat(hashed, offsets, axis=0)
    return out

def jaccard(a, b):
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)

def band_keys(signatures, bands):
    rows_per_band = signatures.shape[1] // bands
    weights = np.random.default_rng(1).integers(1, 1 << 61, size=rows_per_band, dtype=np.uint64)
    shaped = signatures[:, :bands * rows_per_band].reshape(len(signatures), bands, rows_per_band)
    return (shaped * weights).sum(axis=2, dtype=np.uint64)

def find_near_duplicates(training, frozen, threshold, num_perm=64, bands=16):
    columns = ["rule", "lane", "training_id", "frozen_id", "similarity"]
    frozen = frozen[frozen["prompt"].notna()]
    if training.empty or frozen.empty:
        return pd.DataFrame(columns=columns)
    train_sh = [shingle_hashes(t) for t in training["prompt"]]
    frozen_sh = [shingle_hashes(t) for t in frozen["prompt"]]
    sig_t, sig_f = minhash_signatures(train_sh, num_perm), minhash_signatures(frozen_sh, num_perm)
    keys_t, keys_f = band_keys(sig_t, bands), band_keys(sig_f, bands)
    kept = []
    for band in range(bands):
        left = pd.DataFrame({"key": keys_t[:, band], "i": np.arange(len(keys_t))})
        right = pd.DataFrame({"key": keys_f[:, band], "j": np.arange(len(keys_f))})
        pairs = left[left["key"].isin(right["key"])].merge(right, on="key")
        i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
        likely = (sig_t[i] == sig_f[j]).mean(axis=1) >= threshold - 0.25
        kept.append(pd.DataFrame({"i": i[likely], "j": j[likely]}))
    candidates = pd.concat(kept, ignore_index=True).drop_duplicates()
    i, j = candidates["i"].to_numpy(), candidates["j"].to_numpy()
    lanes, tids, fids = (training["lane"].to_numpy(), training["trace_id"].to_numpy(),
                         frozen["trace_id"].to_numpy())
    found = []
    for a, b in sorted(zip(i.tolist(), j.tolist())):
        if tids[a] == fids[b]:
            continue
        similarity = jaccard(train_sh[a], frozen_sh[b])
        if similarity >= threshold:
            found.append(("near_duplicate", lanes[a], tids[a], fids[b], round(similarity, 4)))
    return pd.DataFrame(found, columns=columns)
"""

NEAR_PROJECT = """
import resource, sys, time
import pandas as pd
import pyarrow.parquet as pq
from feedback_pipeline.core.leakage import find_near_duplicates
root, threshold = sys.argv[1], float(sys.argv[2])
frozen = pd.read_parquet(root + "/frozen_prompts.parquet")
source = pq.ParquetFile(root + "/training_prompts.parquet")
start, cpu = time.perf_counter(), time.process_time()
found = find_near_duplicates(source.iter_batches(batch_size=65_536), frozen, threshold)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
found.to_parquet(root + "/found_project.parquet")
print(elapsed, cpu, len(found), source.metadata.num_rows)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

NEAR_BASELINE = OLD_NEAR_DUPLICATES + """
import resource, sys, time
import pyarrow.parquet as pq
root, threshold, rows = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
frozen = pd.read_parquet(root + "/frozen_prompts.parquet")
training = pq.read_table(root + "/training_prompts.parquet").slice(0, rows).to_pandas()
start, cpu = time.perf_counter(), time.process_time()
found = find_near_duplicates(training, frozen, threshold)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
found.to_parquet(root + "/found_baseline.parquet")
print(elapsed, cpu, len(found), len(training))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

_IDENTIFIERS = {"eng": "ENGINEER", "email": "EMAIL", "name": "NAME", "commit": "COMMIT",
                "sha": "SHA", "token": "TOKEN", "dburl": "DB_URL"}
_DECOYS = {"repo": ("payments-api", "web-shell", "ledger", "auth-proxy", "mobile-app"),
           "file": ("src/app.py", "lib/cache.ts", "pkg/queue/worker.go", "README.md"),
           "test": ("test_checkout", "test_refund_flow", "test_login_redirect"),
           "fixture": ("db_session", "tmp_repo", "fake_clock", "http_server")}


def synthetic_prompts(n: int, seed: int) -> list[str]:
    """Redacted-looking prompts: a vocabulary template with tokens and decoys filled in, plus
    the generator's per-trace detail sentence."""
    rng = random.Random(seed)
    templates = [t for s in vocab.SLICES for t in vocab.PROMPTS[s]]

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _IDENTIFIERS:
            return f"<{_IDENTIFIERS[name]}_{rng.getrandbits(24):x}>"
        if name in _DECOYS:
            return rng.choice(_DECOYS[name])
        return str(rng.randrange(10**4))

    return [re.sub(r"\{(\w+)\}", value, rng.choice(templates)) + " "
            + vocab.detail_sentence(rng.getrandbits(32)) for _ in range(n)]


def paraphrase(rng: random.Random, text: str) -> str:
    words = text.split()
    for _ in range(rng.choice([0, 1, 2, 3, 5, 8, 13])):
        at = rng.randrange(len(words))
        if rng.random() < 0.6:
            words[at] = rng.choice(["please", "again", "the", "quickly", "runner"])
        elif len(words) > 1:
            del words[at]
    return " ".join(words)


def write_prompts(root: Path, rows: int, frozen: int, planted: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    frozen_prompts = synthetic_prompts(frozen, seed + 1)
    pq.write_table(pa.table({"trace_id": [f"eval-{i}" for i in range(frozen)],
                             "prompt": frozen_prompts}), root / "frozen_prompts.parquet")
    at = sorted(rng.sample(range(rows), planted))
    writer = None
    chunk = 100_000
    for start in range(0, rows, chunk):
        prompts = synthetic_prompts(min(chunk, rows - start), seed + 2 + start)
        for i in at:
            if start <= i < start + len(prompts):
                prompts[i - start] = paraphrase(rng, rng.choice(frozen_prompts))
        part = pa.table({"lane": np.array(["sft", "preference", "pointwise"])[
                             np.arange(start, start + len(prompts)) % 3],
                         "trace_id": [f"t-{i}" for i in range(start, start + len(prompts))],
                         "prompt": prompts})
        writer = writer or pq.ParquetWriter(root / "training_prompts.parquet", part.schema)
        writer.write_table(part)
    writer.close()


def near_duplicate_section(rows: int, frozen: int, baseline_rows: int, threshold: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_prompts(root, rows, frozen, planted=max(10, rows // 200))
        made = time.perf_counter() - start
        peak, out = peak_rss_of(NEAR_PROJECT, str(root), str(threshold))
        elapsed, cpu, found, n = out.split()
        project = [float(elapsed), float(cpu), int(found), int(n), peak]
        base_rows = min(baseline_rows, rows)
        peak, out = peak_rss_of(NEAR_BASELINE, str(root), str(threshold), str(base_rows))
        elapsed, cpu, found, n = out.split()
        base = [float(elapsed), float(cpu), int(found), int(n), peak]
        mine = pd.read_parquet(root / "found_project.parquet")
        theirs = pd.read_parquet(root / "found_baseline.parquet")
        overlap = mine[mine["training_id"].isin(set(f"t-{i}" for i in range(base_rows)))]
        key = ["training_id", "frozen_id", "similarity"]
        mine_pairs = set(map(tuple, overlap[key].astype(str).values.tolist()))
        their_pairs = set(map(tuple, theirs[key].astype(str).values.tolist()))
        same = (their_pairs <= mine_pairs, len(mine_pairs - their_pairs))
    scale = rows / base_rows
    print(f"\nnear-duplicates: {rows:,} training prompts (read from Parquet in 65,536-row "
          f"batches, checked 512 rows at a time, 2 worker threads) vs {frozen:,} frozen "
          f"prompts, {max(10, rows // 200):,} paraphrases planted, threshold {threshold}; "
          f"data written in {made:.0f} s")
    print(table(["check", "prompts", "wall s", "CPU s", "pairs found", "peak MiB",
                 "prompts/s", "wall vs baseline"],
                [["project: find_near_duplicates (prefix filter, vectorised)", f"{project[3]:,}",
                  f"{project[0]:.2f}", f"{project[1]:.2f}", project[2], f"{project[4]:.0f}",
                  f"{project[3] / project[0]:,.0f}", f"{project[0] / (base[0] * scale):.3f}x"],
                 [f"baseline: per-prompt MinHash/LSH on {base[3]:,} prompts", f"{base[3]:,}",
                  f"{base[0]:.2f}", f"{base[1]:.2f}", base[2], f"{base[4]:.0f}",
                  f"{base[3] / base[0]:,.0f}", "-"],
                 [f"baseline scaled linearly x{scale:g} (estimate, not run)", f"{rows:,}",
                  f"{base[0] * scale:.1f}", f"{base[1] * scale:.1f}", "-", "-", "-", "1.00x"]]))
    print(f"every baseline pair found, same similarity, on its {base[3]:,} prompts: {same[0]}; "
          f"pairs at or above the threshold that the baseline's LSH banding missed: {same[1]}")


def fingerprint_section(rows: int) -> None:
    texts = synthetic_prompts(rows, 7)
    texts[::50] = [t + " naïve café ΣΟΦΟΣ" for t in texts[::50]]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    column = pa.array(texts)
    timings = {}
    for name, run in (("project: fingerprints_array (Arrow + numpy normalise)",
                       lambda: fingerprints_array(column)),
                      ("baseline: fingerprint() per text", lambda: [fingerprint(t)
                                                                   for t in texts])):
        best = None
        for _ in range(2):
            start, cpu = time.perf_counter(), time.process_time()
            result = run()
            took = (time.perf_counter() - start, time.process_time() - cpu, result)
            best = took if best is None or took[1] < best[1] else best
        timings[name] = best
    names = list(timings)
    same = timings[names[0]][2].to_pylist() == timings[names[1]][2]
    base = timings[names[1]][1]
    print(f"\nfingerprints: {rows:,} prompts, {megabytes:.0f} MB, 2% with non-ASCII text; "
          f"identical values: {same}; best of two runs each, in this process")
    print(table(["fingerprints", "wall s", "CPU s", "MB/s (CPU)", "CPU vs baseline"],
                [[n, f"{w:.2f}", f"{c:.2f}", f"{megabytes / c:.0f}", f"{c / base:.3f}x"]
                 for n, (w, c, _) in timings.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--frozen", type=int, default=100_000)
    parser.add_argument("--sections", default="id-content,near,fingerprints",
                        help="comma-separated: id-content, near, fingerprints")
    parser.add_argument("--near-rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="near-duplicates on 10^6")
    parser.add_argument("--near-frozen", type=int, default=1_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--fingerprint-rows", type=int, default=100_000)
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    print(f"machine: {machine()}")
    if "id-content" in sections:
        id_content_section(args)
    if "near" in sections:
        near_duplicate_section(1_000_000 if args.million else args.near_rows, args.near_frozen,
                               args.baseline_rows, args.threshold)
    if "fingerprints" in sections:
        fingerprint_section(args.fingerprint_rows)


def id_content_section(args: argparse.Namespace) -> None:
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
    print(f"{args.rows:,} training rows in {args.partitions} partitions vs {args.frozen:,} frozen "
          "rows; 10 id leaks and 10 content leaks planted")
    print(table(["check", "seconds", "leaks found", "id/content", "peak MiB", "time vs baseline"],
                [[r[0], f"{r[1]:.2f}", r[2], r[3], f"{r[4]:.0f}", f"{r[1] / base:.2f}x"]
                 for r in results]))


if __name__ == "__main__":
    main()
