"""The whole pipeline on one generated day of 10^4, 10^5 (and, with --million, 10^6) traces.

For each size, in a fresh process: generate the day (the CLI's `generate`, in a child
process that is not sampled), run every stage through the CLI's entry
point (`run_pipeline`, in process like the CLI's default, or one process per step with
`--executor multiprocess`) and print per stage its
wall time, traces/s, MB/s of landed trace data and the peak memory of the whole process tree
(the CLI process, step processes, worker pools) while the stage ran, sampled every 50 ms, two
ways: the sum of RSS, which counts a page shared by forked processes once per process, and the
sum of PSS (proportional set size, /proc/PID/smaps_rollup), which splits each shared page
between its sharers and so adds up to the physical memory the tree really holds. Also the
fixed orchestration cost: the daily job on a day with no data.

    python bench/pipeline.py [--sizes 10000 100000] [--million] [--executor in_process]
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
import json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path
import dagster as dg

size, executor = int(sys.argv[1]), sys.argv[2]
samples = []
stop = False

def _rss_pss_kib(pid):
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss

def _children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found

def tree_mib():
    # (RSS sum, PSS sum) of this process and every descendant: step processes, worker pools
    rss = pss = 0
    stack = [os.getpid()]
    while stack:
        pid = stack.pop()
        r, p = _rss_pss_kib(pid)
        rss, pss = rss + r, pss + p
        stack += _children(pid)
    return rss / 1024, pss / 1024

def sampler():
    while not stop:
        samples.append((time.time(), *tree_mib()))
        time.sleep(0.05)

from feedback_pipeline.cli import run_pipeline
from feedback_pipeline.definitions import build_definitions

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp) / "data"
    t0 = time.perf_counter()
    # The CLI's own `generate`, in a child process as a user would land data: the
    # generator's heap is not the pipeline's (the sampler has not started, so it is not counted).
    subprocess.run([sys.executable, "-m", "feedback_pipeline.cli", "generate", "--out", str(root),
                    "--days", "1", "--traces-per-day", str(size), "--seed", "5",
                    "--start", "2026-05-01", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    gen_seconds = time.perf_counter() - t0
    landed = sum(p.stat().st_size for p in (root / "landing" / "traces").rglob("*") if p.is_file())
    threading.Thread(target=sampler, daemon=True).start()
    isolated = executor == "multiprocess"
    if isolated:  # step processes report to an on-disk instance
        (Path(tmp) / "home").mkdir()
        instance = dg.DagsterInstance.local_temp(str(Path(tmp) / "home"))
    else:
        instance = dg.DagsterInstance.ephemeral()
    t0 = time.perf_counter()
    run_start = time.time()
    outcome = run_pipeline(root, instance=instance, executor=executor)
    total = time.perf_counter() - t0
    run_end = time.time()
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
        window = [(r, p) for t, r, p in samples if start <= t <= end] or [tree_mib()]
        stages.append({"stage": key, "seconds": end - start,
                       "peak_mib": max(r for r, _ in window),
                       "peak_pss_mib": max(p for _, p in window)})
    # fixed cost: the daily job on a day with no landed data
    defs = build_definitions(str(root))
    t0 = time.perf_counter()
    defs.resolve_job_def("daily_pipeline").execute_in_process(
        partition_key="2026-06-01", instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    empty = time.perf_counter() - t0
    # the same empty day with one process per step (what a big day gets)
    from feedback_pipeline.cli import run_job
    (Path(tmp) / "empty_home").mkdir()
    with dg.DagsterInstance.local_temp(str(Path(tmp) / "empty_home")) as on_disk:
        t0 = time.perf_counter()
        run_job("daily_pipeline", str(root), on_disk, True,
                {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}, "2026-06-01")
        empty_steps = time.perf_counter() - t0
stop = True
print(json.dumps({"size": size, "landed_bytes": landed, "generate_seconds": gen_seconds,
                  "total_seconds": total, "empty_run_seconds": empty,
                  "empty_run_steps_seconds": empty_steps,
                  "executor": "one process per step" if isolated else "in process",
                  # the run's own peak: the empty-day runs measured after it start processes
                  # of their own beside a main process that still holds the run's heap
                  "peak_mib": max(r for t, r, _ in samples if run_start <= t <= run_end),
                  "peak_pss_mib": max(p for t, _, p in samples if run_start <= t <= run_end),
                  "promoted": outcome.promoted,
                  "error": outcome.error, "reasons": outcome.reasons, "stages": stages}))
"""

ORDER = ["raw_traces", "redacted_traces", "routed_queues", "review_tasks", "reviewed_labels",
         "agreement_report", "selected_batch", "judge_calibration", "judge_accepted_labels",
         "frozen_evaluation_set", "dataset_manifest", "dataset_release"]


def measure(size: int, executor: str) -> dict:
    env_python = sys.executable
    proc = subprocess.run([env_python, "-c", WORKER, str(size), executor], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"size {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also run 10^6 traces")
    parser.add_argument("--executor", choices=["in_process", "multiprocess"],
                        default="in_process", help="as `feedback-pipeline run --executor`")
    args = parser.parse_args()
    sizes = args.sizes + ([1_000_000] if args.million else [])
    print(f"machine: {machine()}")
    results = [measure(size, args.executor) for size in sizes]
    rows = []
    for result in results:
        mb = result["landed_bytes"] / 1e6
        by_stage: dict[str, dict] = {}
        for stage in result["stages"]:
            agg = by_stage.setdefault(stage["stage"], {"seconds": 0.0, "peak_mib": 0.0,
                                                       "peak_pss_mib": 0.0})
            agg["seconds"] += stage["seconds"]
            agg["peak_mib"] = max(agg["peak_mib"], stage["peak_mib"])
            agg["peak_pss_mib"] = max(agg["peak_pss_mib"], stage["peak_pss_mib"])
        for name in sorted(by_stage, key=lambda n: ORDER.index(n) if n in ORDER else 99):
            stage = by_stage[name]
            secs = max(stage["seconds"], 1e-9)
            rows.append([f"{result['size']:,}", name, f"{secs:.2f}",
                         f"{result['size'] / secs:,.0f}", f"{mb / secs:.1f}",
                         f"{stage['peak_mib']:.0f}", f"{stage['peak_pss_mib']:.0f}"])
        rows.append([f"{result['size']:,}", "TOTAL (CLI run, all days + release)",
                     f"{result['total_seconds']:.2f}",
                     f"{result['size'] / result['total_seconds']:,.0f}",
                     f"{mb / result['total_seconds']:.1f}", f"{result['peak_mib']:.0f}",
                     f"{result['peak_pss_mib']:.0f}"])
    print(table(["traces/day", "stage", "seconds", "traces/s", "MB/s", "peak RSS sum MiB",
                 "peak PSS sum MiB"], rows))
    print()
    print(table(["traces/day", "executor", "landed MB", "generate s",
                 "empty daily run s (in process / process per step)",
                 "promoted", "time vs 10^4 per trace"],
                [[f"{r['size']:,}", r["executor"], f"{r['landed_bytes'] / 1e6:.1f}",
                  f"{r['generate_seconds']:.1f}",
                  f"{r['empty_run_seconds']:.2f} / {r['empty_run_steps_seconds']:.2f}",
                  r["promoted"] if not r["error"] else f"error: {r['error'][:60]}",
                  f"{(r['total_seconds'] / r['size']) / (results[0]['total_seconds'] / results[0]['size']):.2f}x"]
                 for r in results]))


if __name__ == "__main__":
    main()
