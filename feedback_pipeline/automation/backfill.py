"""Backfill many days through Dagster's own backfills, from a terminal.

`dagster job backfill` records a backfill on the instance in DAGSTER_HOME (SQLite or
PostgreSQL) and submits one run per day to its run queue; the daemon (`dagster dev`, or
`dagster-daemon run` in a deployment) launches them under the queue's limits (the
`dagster/backfill` tag limit in dagster.yaml) and the UI's Backfills tab shows them, exactly as
a backfill launched from the UI. This module only chooses the days (the landed days of a
window) and, with --wait, waits for their runs and reports each day:

    python -m feedback_pipeline.automation.backfill --data-root DIR [--start D] [--end D]
        [--job daily_pipeline|judge_calibration_job] [--no-wait] [--timeout SECONDS]

The runs execute in the deployment's code location, so they read the data root its processes
were started with (FEEDBACK_DATA_ROOT); `--data-root` says which landed days to backfill and
must name the same root.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from feedback_pipeline.storage import Storage

DATA_ROOT_ENV = "FEEDBACK_DATA_ROOT"
BACKFILL_TAG = "dagster/backfill"
JOBS = ("daily_pipeline", "judge_calibration_job")
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
LAUNCHED = re.compile(r"Launched backfill job `([^`]+)`")


class BackfillError(RuntimeError):
    """The backfill could not be submitted, or its runs did not finish in time."""


@dataclass(frozen=True)
class PartitionRun:
    day: str
    run_id: str
    success: bool


def launch_backfill(days: list[str], job_name: str = "daily_pipeline",
                    data_root: str | Path | None = None, workspace: Path = WORKSPACE) -> str:
    """Submit a Dagster backfill of `job_name` over `days` (partitions of `data_root`'s
    definitions); its id. Needs DAGSTER_HOME: the runs must land on the instance the daemon
    serves."""
    if job_name not in JOBS:
        raise ValueError(f"unknown job {job_name!r}; expected one of {JOBS}")
    if not os.environ.get("DAGSTER_HOME"):
        raise BackfillError("DAGSTER_HOME is not set: a backfill needs the deployment's "
                            "instance")
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster) if dagster.exists() else "dagster", "job", "backfill",
               "-w", str(workspace), "-j", job_name, "--partitions", ",".join(days),
               "--noprompt"]
    env = {**os.environ, **({DATA_ROOT_ENV: str(data_root)} if data_root else {})}
    done = subprocess.run(command, capture_output=True, text=True, cwd=workspace.parent,
                          env=env, timeout=600)
    found = LAUNCHED.search(done.stdout)
    if done.returncode or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise BackfillError(f"dagster job backfill failed (exit {done.returncode}): "
                            + " / ".join(tail))
    return found.group(1)


def wait_for_backfill(backfill_id: str, expected: int, *, timeout: float = 3600.0,
                      poll_seconds: float = 2.0) -> list[PartitionRun]:
    """The backfill's runs once all `expected` have finished, one per day, oldest day first.
    Queued runs start only when a daemon serves the instance; the timeout says so."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.get() as instance:
        while True:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
            if len(runs) >= expected and all(r.is_finished for r in runs):
                return sorted((PartitionRun(r.tags.get("dagster/partition", ""), r.run_id,
                                            r.status == dg.DagsterRunStatus.SUCCESS)
                               for r in runs), key=lambda r: r.day)
            if time.monotonic() > deadline:
                waiting = sum(1 for r in runs if r.status == dg.DagsterRunStatus.QUEUED)
                raise BackfillError(
                    f"backfill {backfill_id}: {len(runs)} of {expected} run(s) submitted, "
                    f"{waiting} still queued after {timeout:.0f} s; is a daemon running "
                    "(`dagster dev` or `dagster-daemon run`) on this DAGSTER_HOME?")
            time.sleep(poll_seconds)


def backfill(days: list[str], data_root: str | Path | None = None, *,
             job_name: str = "daily_pipeline", wait: bool = True,
             timeout: float = 3600.0) -> tuple[str, list[PartitionRun]]:
    """Launch a Dagster backfill over `days`; (its id, its runs once finished, or [] without
    `wait`)."""
    backfill_id = launch_backfill(days, job_name, data_root)
    return backfill_id, (wait_for_backfill(backfill_id, len(days), timeout=timeout)
                         if wait else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback_pipeline.automation.backfill",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get(DATA_ROOT_ENV, "data"),
                        help="the root whose landed days are backfilled (default: "
                             "FEEDBACK_DATA_ROOT or ./data)")
    parser.add_argument("--start", help="first day, YYYY-MM-DD (default: the first landed)")
    parser.add_argument("--end", help="last day, YYYY-MM-DD (default: the last landed)")
    parser.add_argument("--job", default="daily_pipeline", choices=JOBS)
    parser.add_argument("--no-wait", action="store_true",
                        help="return once the backfill is submitted")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the runs (default 3600)")
    args = parser.parse_args(argv)
    storage = Storage(args.data_root)
    days = [d for d in storage.landing_days("traces")
            if (args.start is None or d >= args.start) and (args.end is None or d <= args.end)]
    if not days:
        print(f"no landed days under {storage.root} in the window", file=sys.stderr)
        return 2
    try:
        backfill_id, runs = backfill(days, storage.root, job_name=args.job, wait=not args.no_wait,
                                     timeout=args.timeout)
    except BackfillError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"backfill {backfill_id}: {len(days)} day(s) of {args.job} submitted")
    for run in runs:
        print(f"{run.day}  {'ok    ' if run.success else 'FAILED'}  run {run.run_id}")
    return 0 if all(r.success for r in runs) else 1


if __name__ == "__main__":
    from feedback_pipeline.automation.backfill import main as module_main

    sys.exit(module_main())
