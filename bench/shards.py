"""Sharded days on one machine: the sharded stages (ingest, redaction) with 1 and 2 shard steps at
once, against the unsharded stages, and what the figures project for N machines.

One generated day (split into `--files` landed files, so shards have whole files to take) is
run through the daily job with the stage executor (one process per step), three ways:

- unsharded: `shards_per_day: 1`, one step per stage, each with a pool of both cores (the
  default on this machine);
- sharded, 1 at a time: `shards_per_day: S`, the executor's `max_concurrent: 1`, one core per
  step (`FEEDBACK_STAGE_WORKERS=1`): one worker machine of one core;
- sharded, 2 at a time: the same with `max_concurrent: 2`: two one-core workers.

Per stage it prints the wall time from the plan step's start to the merge step's end, the
serial part (plan and merge) and the shard steps' summed time. The projection for N one-core
machines with S >= N shards is serial + shard work / N, stated as a projection: it assumes the
shard steps scale as they do from 1 to 2 here, and a shared store as fast as this disk.

    python bench/shards.py [--traces 100000] [--files 8] [--shards 4]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

DAY = "2026-05-01"
STAGES = {"raw_traces": "ingest", "redacted_traces": "redaction"}


def split_day(root: Path, files: int) -> int:
    """The generated day's one trace file as `files` files of whole lines; landed bytes."""
    folder = root / "landing" / "traces" / DAY
    [source] = list(folder.iterdir())
    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rt") as handle:
        lines = handle.read().splitlines()
    source.unlink()
    per = -(-len(lines) // files)
    for k in range(files):
        (folder / f"traces-{k:03d}.jsonl").write_text("\n".join(lines[k * per:(k + 1) * per])
                                                      + "\n")
    return sum(p.stat().st_size for p in folder.iterdir())


def set_policy(root: Path, shards: int) -> None:
    import yaml

    policy = root / "config" / "policy.yaml"
    data = yaml.safe_load(policy.read_text())
    data["shards_per_day"] = shards
    policy.write_text(yaml.safe_dump(data))


def run_day(root: Path, home: Path, concurrent: int) -> dict[str, tuple[float, float, float]]:
    """stage -> (wall seconds, serial seconds, summed shard-step seconds) of one daily run."""
    import dagster as dg

    job = dg.build_reconstructable_job("feedback_pipeline.definitions", "job_for_root",
                                       reconstructable_args=("daily_pipeline", str(root)))
    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        result = dg.execute_job(
            job, instance=instance, tags={"dagster/partition": DAY}, raise_on_error=True,
            run_config={"execution": {"config": {"max_concurrent": concurrent}},
                        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        steps: dict[str, list[float]] = {}
        for record in instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is None or record.step_key is None:
                continue
            span = steps.setdefault(record.step_key, [record.timestamp, record.timestamp])
            if event.event_type_value == "STEP_START":
                span[0] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                span[1] = record.timestamp
    out = {}
    for stage in STAGES:
        mine = {k: v for k, v in steps.items() if k == stage or k.startswith(stage + ".")}
        wall = max(e for _, e in mine.values()) - min(s for s, _ in mine.values())
        shard = sum(e - s for k, (s, e) in mine.items() if "[" in k)
        serial = sum(e - s for k, (s, e) in mine.items() if "[" not in k)
        out[stage] = (wall, serial, shard)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--one", nargs=3, metavar=("ROOT", "HOME", "CONCURRENT"),
                        help=argparse.SUPPRESS)  # one run, in its own process
    args = parser.parse_args()
    if args.one:
        root, home, concurrent = args.one
        print(json.dumps(run_day(Path(root), Path(home), int(concurrent))))
        return
    from feedback_pipeline.synth.generator import generate

    print(f"machine: {machine()}")
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate(root, days=1, traces_per_day=args.traces, seed=5, start=date(2026, 5, 1))
        landed = split_day(root, args.files)
        runs = [("unsharded (1 step, pool of 2 cores)", 1, 1, "2"),
                (f"{args.shards} shards, 1 at a time (1 core each)", args.shards, 1, "1"),
                (f"{args.shards} shards, 2 at a time (1 core each)", args.shards, 2, "1")]
        for n, (name, shards, concurrent, workers) in enumerate(runs):
            # a fresh copy and a fresh process per run: a process keeps the job it first
            # reconstructed for a root, and its forkserver the environment it started with
            run_root = shutil.copytree(root, Path(tmp) / f"data{n}")
            set_policy(run_root, shards)
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--one", str(run_root), str(Path(tmp) / f"home{n}"),
                 str(concurrent)], env={**os.environ, "FEEDBACK_STAGE_WORKERS": workers},
                capture_output=True, text=True, check=False)
            if proc.returncode:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            figures[name] = {k: tuple(v) for k, v in json.loads(
                proc.stdout.strip().splitlines()[-1]).items()}
            print(f"  {name}: daily run {time.perf_counter() - started:.1f} s", flush=True)
            shutil.rmtree(run_root)
        for name, stages in figures.items():
            for stage, (wall, serial, shard) in stages.items():
                rows.append([name, STAGES[stage], f"{wall:.2f}", f"{serial:.2f}", f"{shard:.2f}",
                             f"{landed / 1e6 / wall:.1f}"])
    print(f"{args.traces:,} traces in {args.files} files, {landed / 1e6:.1f} MB landed")
    print(table(["run", "stage", "wall s", "plan + merge s", "shard steps s (sum)", "MB/s"],
                rows))
    one, two = (figures[r[0]] for r in runs[1:])
    print()
    projection = []
    for stage in STAGES:
        wall1, serial, shard = one[stage]
        wall2 = two[stage][0]
        line = [STAGES[stage], f"{wall1 / wall2:.2f}x"]
        for machines in (1, 2, 4, 8, 16):
            line.append(f"{serial + shard / machines:.1f}")
        projection.append(line)
    print(table(["stage", "2 at a time vs 1 (measured)", "N=1 s", "N=2 s", "N=4 s", "N=8 s",
                 "N=16 s"], projection))
    print("N columns: a projection, serial + shard work / N (one-core machines, S >= N "
          "shards), not a measurement")


if __name__ == "__main__":
    main()
