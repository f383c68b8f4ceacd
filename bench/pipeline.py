"""The whole pipeline on one generated day of 10^4, 10^5 (and, with --million, 10^6) traces.

For each size, in a fresh process: generate the day, run every stage through the CLI's entry
point (in-process executor, ephemeral instance) and print per stage its wall time, traces/s,
MB/s of landed trace data and the peak resident memory of the process and all its worker
processes while the stage ran (sampled every 20 ms). Also the fixed orchestration cost: the daily job on a day with no data.

    python bench/pipeline.py [--sizes 10000 100000] [--million]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

WORKER = r"""
import json, os, sys, tempfile, threading, time
from datetime import date
from pathlib import Path
import dagster as dg

size = int(sys.argv[1])
samples = []
stop = False

def _rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def _children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found

def rss_mib():
    # this process and every descendant (the stage worker pool, its forkserver)
    total, stack = 0, [os.getpid()]
    while stack:
        pid = stack.pop()
        total += _rss_kib(pid)
        stack += _children(pid)
    return total / 1024

def sampler():
    while not stop:
        samples.append((time.time(), rss_mib()))
        time.sleep(0.02)

threading.Thread(target=sampler, daemon=True).start()
from feedback_pipeline.synth.generator import generate
from feedback_pipeline.cli import run_pipeline
from feedback_pipeline.definitions import build_definitions

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp) / "data"
    t0 = time.perf_counter()
    generate(root, days=1, traces_per_day=size, seed=5, start=date(2026, 5, 1))
    gen_seconds = time.perf_counter() - t0
    landed = sum(p.stat().st_size for p in (root / "landing" / "traces").rglob("*") if p.is_file())
    instance = dg.DagsterInstance.ephemeral()
    t0 = time.perf_counter()
    outcome = run_pipeline(root, instance=instance)
    total = time.perf_counter() - t0
    steps = {}
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or record.step_key is None:
                continue
            key = record.step_key
            if event.event_type_value == "STEP_START":
                steps.setdefault(key, [record.timestamp, None])[0] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                steps.setdefault(key, [record.timestamp, None])[1] = record.timestamp
    stages = []
    for key, (start, end) in steps.items():
        end = end or start
        peak = max((m for t, m in samples if start <= t <= end), default=rss_mib())
        stages.append({"stage": key, "seconds": end - start, "peak_mib": peak})
    # fixed cost: the daily job on a day with no landed data
    defs = build_definitions(str(root))
    t0 = time.perf_counter()
    defs.resolve_job_def("daily_pipeline").execute_in_process(
        partition_key="2026-06-01", instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    empty = time.perf_counter() - t0
stop = True
print(json.dumps({"size": size, "landed_bytes": landed, "generate_seconds": gen_seconds,
                  "total_seconds": total, "empty_run_seconds": empty,
                  "peak_mib": max(m for _, m in samples), "promoted": outcome.promoted,
                  "error": outcome.error, "reasons": outcome.reasons, "stages": stages}))
"""

ORDER = ["raw_traces", "redacted_traces", "routed_queues", "review_tasks", "reviewed_labels",
         "agreement_report", "selected_batch", "judge_calibration", "judge_accepted_labels",
         "frozen_evaluation_set", "dataset_manifest", "dataset_release"]


def measure(size: int) -> dict:
    env_python = sys.executable
    proc = subprocess.run([env_python, "-c", WORKER, str(size)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"size {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also run 10^6 traces")
    args = parser.parse_args()
    sizes = args.sizes + ([1_000_000] if args.million else [])
    print(f"machine: {machine()}")
    results = [measure(size) for size in sizes]
    rows = []
    for result in results:
        mb = result["landed_bytes"] / 1e6
        by_stage: dict[str, dict] = {}
        for stage in result["stages"]:
            agg = by_stage.setdefault(stage["stage"], {"seconds": 0.0, "peak_mib": 0.0})
            agg["seconds"] += stage["seconds"]
            agg["peak_mib"] = max(agg["peak_mib"], stage["peak_mib"])
        for name in sorted(by_stage, key=lambda n: ORDER.index(n) if n in ORDER else 99):
            stage = by_stage[name]
            secs = max(stage["seconds"], 1e-9)
            rows.append([f"{result['size']:,}", name, f"{secs:.2f}",
                         f"{result['size'] / secs:,.0f}", f"{mb / secs:.1f}",
                         f"{stage['peak_mib']:.0f}"])
        rows.append([f"{result['size']:,}", "TOTAL (CLI run, all days + release)",
                     f"{result['total_seconds']:.2f}",
                     f"{result['size'] / result['total_seconds']:,.0f}",
                     f"{mb / result['total_seconds']:.1f}", f"{result['peak_mib']:.0f}"])
    print(table(["traces/day", "stage", "seconds", "traces/s", "MB/s", "peak RSS MiB"], rows))
    print()
    print(table(["traces/day", "landed MB", "generate s", "empty daily run s", "promoted",
                 "time vs 10^4 per trace"],
                [[f"{r['size']:,}", f"{r['landed_bytes'] / 1e6:.1f}",
                  f"{r['generate_seconds']:.1f}", f"{r['empty_run_seconds']:.2f}",
                  r["promoted"] if not r["error"] else f"error: {r['error'][:60]}",
                  f"{(r['total_seconds'] / r['size']) / (results[0]['total_seconds'] / results[0]['size']):.2f}x"]
                 for r in results]))


if __name__ == "__main__":
    main()
