"""feedback-pipeline: run | demo | generate | verify | check-config | status | labelstudio.

`run` executes every stage for a window on the Dagster instance in DAGSTER_HOME (or a throwaway
one) and attempts a release. Exit status: 0 promoted (or nothing new to promote), 3 a gate
blocked promotion, 1 an error, 2 bad usage.

Executor: every job runs in this process by default. `--executor multiprocess` runs one process
per step instead, one step at a time (the forkserver executor the UI's runs use), which returns
each stage's memory to the OS when it ends; on a large day it still costs more than it saves
(the CLI, the forkserver and every step process each hold Dagster and the stages' imports), and
an empty day takes several times longer. The figures are in the README, Performance.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BLOCKED = 0, 1, 2, 3
EXECUTORS = ("in_process", "multiprocess")
DAILY_GATE_OF_CHECK = {
    "no_redaction_residue": "redaction_residue",
    "no_residue_in_review_tasks": "redaction_residue",
}


@dataclass
class RunOutcome:
    promoted: bool = False
    dataset_version: str | None = None
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    release_path: str | None = None
    advisories: list[str] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per landed kind over the window: quarantined and kept lines, and counts by reason."""
    withheld: dict[str, list[str]] = field(default_factory=dict)
    """Day -> the blocking daily gates it failed; with any, no release is attempted."""
    config_problems: list[str] = field(default_factory=list)
    """What check-config found: with any, nothing runs (exit status 2)."""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "dataset_version": self.dataset_version,
                "gates": self.gates, "reasons": self.reasons, "quarantine": self.quarantine,
                "withheld_days": self.withheld, "release_written": self.promoted}

    @property
    def exit_code(self) -> int:
        if self.config_problems:
            return EXIT_USAGE
        if self.error:
            return EXIT_ERROR
        return EXIT_BLOCKED if self.reasons else EXIT_OK


def _instance():
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


@contextlib.contextmanager
def _process_capable(instance: Any) -> Iterator[Any]:
    """`instance`, or a throwaway on-disk one when it is ephemeral: step processes can only
    report to storage they can open themselves."""
    import dagster as dg

    if not instance.is_ephemeral:
        yield instance
        return
    with tempfile.TemporaryDirectory(prefix="feedback-dagster-") as home, \
            dg.DagsterInstance.local_temp(home) as temporary:
        yield temporary


@functools.lru_cache(maxsize=4)
def _definitions(data_root: str) -> Any:
    """Definitions per data root, built once: every day of a window reuses them."""
    from feedback_pipeline.definitions import build_definitions

    return build_definitions(data_root)


def run_job(job_name: str, data_root: str, instance: Any, isolated: bool,
             run_config: dict[str, Any], day: str | None = None) -> Any:
    """One job run: in this process, or one process per step, one step at a time (steps of a
    big day each use both cores already; two at once would only add their memory)."""
    import dagster as dg

    if not isolated:
        job = _definitions(data_root).resolve_job_def(job_name)
        return job.execute_in_process(partition_key=day, instance=instance,
                                      raise_on_error=False, run_config=run_config)
    job = dg.build_reconstructable_job("feedback_pipeline.definitions", "job_for_root",
                                       reconstructable_args=(job_name, data_root))
    return dg.execute_job(
        job, instance=instance, raise_on_error=False,
        tags={"dagster/partition": day} if day else None,
        run_config={**run_config, "execution": {"config": {"max_concurrent": 1}}})


def _valid_day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD day") from err


def _day_or_yesterday(text: str) -> str:
    if text == "yesterday":
        return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    return _valid_day(text)


ReviewerHook = Callable[[str], set[str]]
"""Called after a day's round is exported, with the day; returns the trace days whose review
folders it changed (the demo's simulated reviewers: a backlog item issued today is reviewed in
its own trace day's folder). Each of those days runs again, in order, to take them in."""


def run_pipeline(data_root: str | Path, start: str | None = None, end: str | None = None,
                 instance: Any = None, executor: str = "in_process",
                 reviewers: ReviewerHook | None = None) -> RunOutcome:
    """Every stage for each landed day in the window, then a release attempt.

    Day by day: the daily pipeline (ingest through the labeling round and the reviews landed so
    far), the judge calibration, and the selection experiment, whose verdict the next day's
    round follows. With `executor="multiprocess"` an ephemeral `instance` is swapped for a
    throwaway on-disk one, since step processes must reach the run storage."""
    from feedback_pipeline.storage import Storage

    storage = Storage(data_root)
    if not storage.remote:  # the keys must live outside this root: refuse before any stage
        from feedback_pipeline.core.signing import resolve_signing_key
        from feedback_pipeline.core.vault import resolve_vault_key

        guarded = {**os.environ, "FEEDBACK_DATA_ROOT": str(storage.root)}
        resolve_vault_key(guarded)
        resolve_signing_key(guarded)
    from feedback_pipeline.settings import check_config

    problems = check_config(storage)
    if problems:  # refused before any work, naming file, key and rule
        return RunOutcome(config_problems=problems,
                          error=f"config: {len(problems)} problem(s): " + "; ".join(problems))
    from feedback_pipeline.partitions import (
        LANDED_KINDS,
        PARTITIONS_START,
        PARTITIONS_START_SOURCE,
        daily_partitions,
    )

    days = storage.window_days(start, end)
    last = daily_partitions.get_last_partition_key()
    outcome = RunOutcome(days=[d for d in days if PARTITIONS_START <= d <= (last or "")])
    early = [d for d in days if d < PARTITIONS_START]
    late = [d for d in days if d > (last or "")]
    if late:
        outcome.advisories.append(
            f"{len(late)} landed day(s) after the last complete UTC day {last} were not run "
            f"yet: {', '.join(late[:10])}{' ...' if len(late) > 10 else ''}; a day runs once "
            "it is over")
    for kind in LANDED_KINDS:
        strays = storage.landing_strays(kind)
        if strays:
            outcome.advisories.append(
                f"{strays} entr{'y' if strays == 1 else 'ies'} under landing/{kind}/ "
                "are not YYYY-MM-DD day folders and were not read")
    if early:
        outcome.advisories.append(
            f"{len(early)} landed day(s) before the partitions start {PARTITIONS_START} (from "
            f"{PARTITIONS_START_SOURCE}) were not run: {', '.join(early[:10])}"
            f"{' ...' if len(early) > 10 else ''}; declare an earlier partitions_start in "
            "policy.yaml to take them in")
    if not outcome.days:
        outcome.error = (f"no landed traces under {storage.root}/landing/traces in the window"
                         + (f" on or after the partitions start {PARTITIONS_START}"
                            if early else "")
                         + (f" up to the last complete UTC day {last}" if late else ""))
        return outcome
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    instance = instance or _instance()
    if executor == "in_process":
        return _run_window(storage, start, end, instance, False, outcome, reviewers)
    with _process_capable(instance) as capable:
        return _run_window(storage, start, end, capable, True, outcome, reviewers)


def round_summary(day: str, result: Any) -> str | None:
    """One line per day's round, from the labeling round's materialization metadata."""
    issued = backlog = None
    for event in result.asset_materializations_for_node("labeling_round"):
        meta = {k: v.value for k, v in event.metadata.items()}
        if event.asset_key.path[-1] == "selected_batch":
            issued = meta
        else:
            backlog = meta
    if issued is None:
        return None
    line = (f"{issued.get('round_id', day)}: hybrid {issued.get('hybrid_arm', 0)} / random "
            f"{issued.get('random_arm', 0)} of {issued.get('eligible_pairs', 0)} eligible "
            f"pairs (selector: {issued.get('selector')})")
    if backlog is not None:
        line += (f"; backlog {backlog.get('waiting', 0)} waiting, "
                 f"{backlog.get('aged_out', 0)} aged out")
    return line


def _run_window(storage: Any, start: str | None, end: str | None, instance: Any,
                isolated: bool, outcome: RunOutcome,
                reviewers: ReviewerHook | None = None) -> RunOutcome:
    from feedback_pipeline.core.manifest import GATE_REASONS

    root = str(storage.root)
    quiet = {"loggers": {"console": {"config": {
        "log_level": os.environ.get("FEEDBACK_LOG_LEVEL", "CRITICAL")}}}}
    daily_failures: dict[str, list[str]] = {}
    for day in outcome.days:
        result = run_job("daily_pipeline", root, instance, isolated, quiet, day)
        if reviewers is not None and result.success:
            reviewed = reviewers(day)
            for earlier in sorted(d for d in reviewed if d < day):
                rerun = run_job("daily_pipeline", root, instance, isolated, quiet, earlier)
                if not rerun.success:
                    outcome.error = (f"daily pipeline failed for {earlier} taking in reviews: "
                                     f"{_failure_message(rerun)}")
                    return outcome
            if day in reviewed:
                result = run_job("daily_pipeline", root, instance, isolated, quiet, day)
        summary = round_summary(day, result)
        if summary:
            outcome.rounds.append(summary)
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed
                         and e.check_name in DAILY_GATE_OF_CHECK]
        for evaluation in failed_checks:
            daily_failures.setdefault(DAILY_GATE_OF_CHECK[evaluation.check_name], []).append(day)
        if not result.success and not failed_checks:
            outcome.error = f"daily pipeline failed for {day}: {_failure_message(result)}"
            return outcome
        judge = run_job("judge_calibration_job", root, instance, isolated, quiet, day)
        for evaluation in judge.get_asset_check_evaluations():
            if not evaluation.passed:
                outcome.advisories.append(
                    f"{day}: judge labels stay advisory ({evaluation.check_name} failed)")
        experiment = run_job("selection_experiment", root, instance, isolated, quiet)
        if not experiment.success:
            outcome.error = (f"selection experiment failed after {day}: "
                             f"{_failure_message(experiment)}")
            return outcome

    if daily_failures:
        # a day withheld by a blocking daily gate: no release is built from the other days
        for gate, days in daily_failures.items():
            outcome.gates[gate] = {"passed": False, "value": f"failed on {', '.join(days)}"}
            for day in days:
                outcome.withheld.setdefault(day, []).append(gate)
        outcome.reasons = [GATE_REASONS.get(name, name) for name in outcome.gates]
        return outcome
    release = run_job("release", root, instance, isolated, {
        **quiet, "ops": {"dataset_manifest": {"config": {"start": start, "end": end}}}})
    for evaluation in release.get_asset_check_evaluations():
        value = evaluation.metadata.get("value")
        outcome.gates[evaluation.check_name] = {
            "passed": evaluation.passed,
            "value": json.loads(value.value) if value is not None else None,
        }
    outcome.reasons = [GATE_REASONS.get(name, name) for name, gate in outcome.gates.items()
                       if not gate["passed"]]
    outcome.quarantine = candidate_quarantine(storage)
    if not outcome.gates:
        outcome.error = f"release run failed before its gates: {_failure_message(release)}"
        return outcome
    if not outcome.reasons:
        if not release.success:
            outcome.error = f"release failed: {_failure_message(release)}"
            return outcome
        metadata = {}
        for event in release.asset_materializations_for_node("dataset_release"):
            metadata = {k: v.value for k, v in event.metadata.items()}
        outcome.promoted = bool(metadata.get("promoted"))
        version = metadata.get("dataset_version")
        outcome.dataset_version = version if version and version != "none" else None
        if outcome.dataset_version:
            outcome.release_path = str(storage.releases_dir / outcome.dataset_version)
    return outcome


def candidate_quarantine(storage: Any) -> dict[str, dict[str, Any]]:
    """The release candidate manifest's quarantine counts (what the quarantine gate weighed)."""
    from feedback_pipeline.storage import WAREHOUSE

    path = storage.path(WAREHOUSE, "release_candidate") / "manifest.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("quarantine") or {}


def quarantine_lines(quarantine: dict[str, dict[str, Any]]) -> list[str]:
    """One line per landed kind, then its reasons by count: what a run set aside, and why."""
    lines = []
    for kind, counts in quarantine.items():
        total = counts["quarantined"] + counts["kept"]
        lines.append(f"  quarantined {kind}: {counts['quarantined']} of {total} lines "
                     f"({counts['share']:.1%})")
        for reason, n in sorted(counts["reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {n:>6}  {reason}")
    return lines


def _failure_message(result: Any) -> str:
    for event in result.all_events:
        if event.is_step_failure or event.is_failure:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            if error is not None:
                return error.message.strip().splitlines()[0]
            return event.message or event.event_type_value
    return "unknown failure"


def print_outcome(outcome: RunOutcome) -> None:
    print(f"days: {', '.join(outcome.days) or 'none'}")
    for line in outcome.rounds:
        print(f"  round {line}")
    for name, gate in outcome.gates.items():
        print(f"  {'PASS' if gate['passed'] else 'FAIL'}  {name:<24} value={gate['value']}")
    for line in quarantine_lines(outcome.quarantine):
        print(line)
    for note in outcome.advisories:
        print(f"  note: {note}")
    if outcome.error:
        print(f"error: {outcome.error}")
    elif outcome.reasons:
        print(f"promotion refused: {', '.join(outcome.reasons)}; no release was written")
        for day, gates in sorted(outcome.withheld.items()):
            print(f"  withheld: {day} failed {', '.join(gates)}, so no release was built")
    elif outcome.promoted:
        print(f"promoted {outcome.dataset_version} -> {outcome.release_path}")
    else:
        print("every gate passed; no new rows since "
              f"{outcome.dataset_version or 'the last release'}, so no new version was written")


def cmd_run(args: argparse.Namespace) -> int:
    if args.start and args.end and args.start > args.end:
        print("error: --start is after --end", file=sys.stderr)
        return EXIT_USAGE
    from feedback_pipeline.progress import displayed
    from feedback_pipeline.storage import Storage

    root = args.data_root
    if not Storage(root).root.is_dir():
        print(f"error: data root {root} does not exist", file=sys.stderr)
        return EXIT_USAGE
    try:
        with displayed(not args.json):
            outcome = run_pipeline(root, args.start, args.end, executor=args.executor)
    except Exception as err:  # noqa: BLE001 - the CLI turns any failure into exit status 1
        outcome = RunOutcome(error=f"{type(err).__name__}: {err}")
        if os.environ.get("FEEDBACK_DEBUG"):
            traceback.print_exc()
    if args.json:
        payload = outcome.to_json()
        if outcome.error:
            payload["error"] = outcome.error
        print(json.dumps(payload, sort_keys=True))
    else:
        print_outcome(outcome)
    return outcome.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    """`run` on a synthetic data root whose reviews are not landed yet: after each day's round
    is exported, the generator's simulated reviewers answer exactly the exported tasks, and the
    day runs again to take their reviews in (the closed labeling loop, on one machine)."""
    from feedback_pipeline.progress import displayed
    from feedback_pipeline.synth.review_simulator import answer_exported_tasks

    root = Path(args.data_root)

    def simulated_reviewers(day: str) -> set[str]:
        answered = answer_exported_tasks(root, day)
        return {path.parent.name for path in (*answered.written, *answered.removed)}

    try:
        with displayed():
            outcome = run_pipeline(root, executor=args.executor, reviewers=simulated_reviewers)
    except Exception as err:  # noqa: BLE001 - the CLI turns any failure into exit status 1
        outcome = RunOutcome(error=f"{type(err).__name__}: {err}")
        if os.environ.get("FEEDBACK_DEBUG"):
            traceback.print_exc()
    print_outcome(outcome)
    if not outcome.error:
        print_experiment(root)
    return outcome.exit_code


def print_experiment(root: Path) -> None:
    """The experiment's verdict over all rounds, as the UI shows it."""
    from feedback_pipeline.storage import WAREHOUSE, Storage

    storage = Storage(root)
    if not storage.partition_path(WAREHOUSE, "selection_experiment_report", None).exists():
        return
    table = storage.read_table(WAREHOUSE, "selection_experiment_report", None).to_pandas()
    overall = table[table["scope"] == "all rounds"]
    for row in overall.itertuples():
        if row.arm == "baseline":
            continue
        cost = ("-" if row.seconds_per_accepted_label != row.seconds_per_accepted_label
                or row.seconds_per_accepted_label is None
                else f"{row.seconds_per_accepted_label:.0f} s")
        print(f"  experiment {row.candidate} {row.arm:<6} accepted={row.accepted_labels} "
              f"gain={row.gain * 100:+.1f} pts  review cost per label={cost}")
    if len(table):
        evidence = overall["evidence"].iloc[0] if len(overall) else "no comparison yet"
        print(f"  next round's selector: {table['recommendation'].iloc[0]} ({evidence})")


def cmd_generate(args: argparse.Namespace) -> int:
    from feedback_pipeline.synth.generator import generate

    if args.days < 1:
        print("error: --days must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    start = date.fromisoformat(args.start)
    if args.end is not None:  # the last day given: the days run up to it
        start = date.fromisoformat(args.end) - timedelta(days=args.days - 1)
    summary = generate(Path(args.out), days=args.days, traces_per_day=args.traces_per_day,
                       seed=args.seed, start=start,
                       progress=not args.quiet, reviews=args.reviews,
                       write_config=not args.no_config)
    print(f"wrote {summary.traces} traces, {summary.reviews} reviews and "
          f"{summary.judge_labels} judge labels for {len(summary.days)} day(s) to {summary.out}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from feedback_pipeline.verify import verify_release

    problems = verify_release(args.data_root, args.version)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print(f"OK {args.version}: every file matches its sha256, the signature holds, and no frozen id leaks")
    return EXIT_OK if not problems else EXIT_BLOCKED


EPILOG = """\
exit status:
  0  done (run: promoted, or nothing new to promote; verify: intact; check-config: valid)
  1  an error stopped the run (its message says which stage and day)
  2  bad usage or a config problem (check-config names the file, key and rule)
  3  a gate blocked promotion (run) or a release failed verification (verify)

examples:
  feedback-pipeline check-config --data-root data
  feedback-pipeline run --data-root data --start 2026-05-01 --end 2026-05-03
  feedback-pipeline status --data-root data --json
  feedback-pipeline verify code-review-feedback-v3 --data-root data
"""
DATA_ROOT_HELP = ("the data root: a folder or an fsspec URL (default: FEEDBACK_DATA_ROOT, else "
                  "%(default)s)")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (unless it has none, or the help says it), and
    the epilog's layout kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or action.help is None \
                or "default" in action.help:
            return action.help
        return super()._get_help_string(action)


def _data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=os.environ.get("FEEDBACK_DATA_ROOT", "data"),
                        metavar="DIR_OR_URL", help=DATA_ROOT_HELP)


def _executor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=EXECUTORS, default="in_process",
                        help="run every step in this process, or each step in its own process")


def cmd_check_config(args: argparse.Namespace) -> int:
    from feedback_pipeline.settings import check_config
    from feedback_pipeline.storage import Storage

    problems = check_config(Storage(args.data_root))
    for problem in problems:
        print(f"config: {problem}", file=sys.stderr)
    if not problems:
        print(f"OK: the config under {args.data_root}/config is valid")
    return EXIT_USAGE if problems else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from feedback_pipeline.status import data_root_status, status_text
    from feedback_pipeline.storage import Storage

    status = data_root_status(Storage(args.data_root))
    print(json.dumps(status) if args.json else status_text(status))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedback-pipeline", formatter_class=_HelpFormatter, epilog=EPILOG,
        description="Turn landed assistant traces and human reviews into versioned, redacted "
                    "SFT / DPO / KTO releases, on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int]
                ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                             formatter_class=_HelpFormatter)
        cmd.set_defaults(func=func)
        return cmd

    run = command("run", "run every stage for each landed day of a window, then attempt a "
                         "release", cmd_run)
    _data_root(run)
    run.add_argument("--start", type=_valid_day, metavar="YYYY-MM-DD",
                     help="first day of the window (default: the first landed day)")
    run.add_argument("--end", type=_valid_day, metavar="YYYY-MM-DD",
                     help="last day of the window (default: the last landed day)")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object (promoted, dataset_version, gates, reasons, "
                          "quarantine, withheld_days) instead of the summary, and no progress "
                          "(otherwise each stage's rows, rows/s and elapsed time go to stderr)")
    _executor(run)
    gen = command("generate", "write a realistic synthetic data root", cmd_generate)
    gen.add_argument("--out", required=True, metavar="DIR", help="the data root to write")
    gen.add_argument("--days", type=int, default=3, help="landed days")
    gen.add_argument("--traces-per-day", type=int, default=80, help="traces a day (>= 20)")
    gen.add_argument("--seed", type=int, default=7, help="random seed")
    when = gen.add_mutually_exclusive_group()
    when.add_argument("--start", default="2026-05-01", type=_valid_day, metavar="YYYY-MM-DD",
                      help="the first day")
    when.add_argument("--end", type=_day_or_yesterday, metavar="YYYY-MM-DD|yesterday",
                      help="the last day instead (the days end there: `yesterday`, UTC, gives "
                           "a root whose daily partitions are all filled, as `make demo` lands)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.add_argument("--no-config", action="store_true",
                     help="land data only, keeping the config already under --out (how "
                          "`make demo` lands the bundled sample's recipe beside its curated "
                          "config)")
    gen.add_argument("--reviews", choices=("all", "on_export"), default="all",
                     help="land every simulated review now (all) or none, to be answered task "
                          "by task as rounds export them (on_export, for demo)")
    demo = command("demo", "run the closed labeling loop on a synthetic data root: simulated "
                           "reviewers answer each round's exported tasks", cmd_demo)
    _data_root(demo)
    _executor(demo)
    ver = command("verify", "re-hash a release, check its signature and re-run its leakage "
                            "checks", cmd_verify)
    ver.add_argument("version", help="the release to verify, e.g. code-review-feedback-v3 "
                                     "(a folder under <data-root>/releases)")
    _data_root(ver)
    check = command("check-config", "validate the data root's config (policy, rubrics, frozen "
                                    "set, gold sets, reviewers, sources, deny list) without "
                                    "running anything", cmd_check_config)
    _data_root(check)
    status = command("status", "per landed day: files, quarantined lines, partitions written "
                               "and the release holding it; the candidate's gates", cmd_status)
    _data_root(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    from feedback_pipeline.labelstudio_commands import add_labelstudio_parser

    add_labelstudio_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = getattr(args, "data_root", None)
    if root:
        # the data root named on the command line is the one every key-file check guards
        # (the vault and signing keys must live outside it), as FEEDBACK_DATA_ROOT is
        os.environ["FEEDBACK_DATA_ROOT"] = str(root)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
