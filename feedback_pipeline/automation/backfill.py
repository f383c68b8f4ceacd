"""Backfill many days at once: one run per day, at most `max_parallel_partitions` at a time.

Each run is a normal `daily_pipeline` run on the instance in DAGSTER_HOME (SQLite or
PostgreSQL), executed with the multiprocess executor, tagged with its partition and with the
backfill it belongs to, so it shows in the UI like any other run. Days never share a file: each
run replaces only its own partitions, atomically.

    python -m feedback_pipeline.automation.backfill --data-root DIR [--start D] [--end D]
        [--max-parallel N] [--job daily_pipeline|judge_calibration_job]

The UI's own backfills (Materialize -> partitions) go through the run queue instead; its limit
is the `dagster/backfill` tag limit in dagster.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from feedback_pipeline.settings import load_policy
from feedback_pipeline.storage import Storage

DATA_ROOT_ENV = "FEEDBACK_DATA_ROOT"
BACKFILL_TAG = "feedback/backfill"
JOBS = ("daily_pipeline", "judge_calibration_job")


def daily_pipeline_from_env():
    """The daily job bound to FEEDBACK_DATA_ROOT; rebuilt the same way in every step process."""
    from feedback_pipeline.definitions import build_definitions

    return build_definitions(os.environ[DATA_ROOT_ENV]).resolve_job_def("daily_pipeline")


def judge_job_from_env():
    from feedback_pipeline.definitions import build_definitions

    return build_definitions(os.environ[DATA_ROOT_ENV]).resolve_job_def("judge_calibration_job")


JOB_FACTORIES = {"daily_pipeline": daily_pipeline_from_env,
                 "judge_calibration_job": judge_job_from_env}


@dataclass(frozen=True)
class PartitionRun:
    day: str
    run_id: str
    success: bool


def run_partition(job_name: str, day: str, data_root: str, backfill_id: str) -> PartitionRun:
    """One day's run on the instance in DAGSTER_HOME (called in a worker process)."""
    import dagster as dg

    os.environ[DATA_ROOT_ENV] = data_root
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(JOB_FACTORIES[job_name]),
            instance=instance,
            tags={"dagster/partition": day, BACKFILL_TAG: backfill_id},
            raise_on_error=False,
        )
        return PartitionRun(day, result.run_id, result.success)


def prepare_instance() -> None:
    """Create the instance's tables once, here, before parallel runs do: SQLite storage that
    several processes initialise at the same moment ends with conflicting schema stamps."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        with contextlib.suppress(NotImplementedError):
            instance.event_log_storage.get_maximum_record_id()


def backfill(days: list[str], data_root: str | Path, *, max_parallel: int | None = None,
             job_name: str = "daily_pipeline") -> list[PartitionRun]:
    """Run `job_name` for every day, `max_parallel` runs at once (default: the policy's
    `max_parallel_partitions`). Needs DAGSTER_HOME: the runs must land on a shared instance."""
    if job_name not in JOB_FACTORIES:
        raise ValueError(f"unknown job {job_name!r}; expected one of {JOBS}")
    if not os.environ.get("DAGSTER_HOME"):
        raise RuntimeError("DAGSTER_HOME is not set: a backfill needs a persistent instance")
    storage = Storage(data_root)
    limit = max_parallel or load_policy(storage).max_parallel_partitions
    prepare_instance()
    backfill_id = uuid.uuid4().hex[:12]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(limit, len(days) or 1)),
                             mp_context=context) as pool:
        futures = [pool.submit(run_partition, job_name, day, str(storage.root), backfill_id)
                   for day in days]
        return [f.result() for f in futures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback_pipeline.automation.backfill",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get(DATA_ROOT_ENV, "data"))
    parser.add_argument("--start")
    parser.add_argument("--end")
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--job", default="daily_pipeline", choices=JOBS)
    args = parser.parse_args(argv)
    storage = Storage(args.data_root)
    days = [d for d in storage.landing_days("traces")
            if (args.start is None or d >= args.start) and (args.end is None or d <= args.end)]
    if not days:
        print(f"no landed days under {storage.root} in the window", file=sys.stderr)
        return 2
    runs = backfill(days, storage.root, max_parallel=args.max_parallel, job_name=args.job)
    for run in runs:
        print(f"{run.day}  {'ok    ' if run.success else 'FAILED'}  run {run.run_id}")
    return 0 if all(r.success for r in runs) else 1


if __name__ == "__main__":
    from feedback_pipeline.automation.backfill import main as module_main

    sys.exit(module_main())
