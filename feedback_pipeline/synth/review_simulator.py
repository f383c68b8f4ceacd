"""Simulated reviewers answering the tasks a labeling round exported, after the export.

A root generated with ``reviews="on_export"`` lands no reviews of its good traces; the daily
labeling round decides what is reviewed and exports it to
``exports/review_tasks/<day>/tasks.jsonl``. `answer_exported_tasks` plays the reviewers for
that export, so the demo is a closed loop: only exported traces are ever reviewed, and only
after their export. The answers come from the generator's own reviewer model
(`synth.reviewers`): the ground truth is recomputed in memory from ``landing/generator.json``,
reviewers misread it with their known noise, state a choice that now and then contradicts
their criteria, about 45% of pairs get a second reviewer, gold items go to every reviewer,
and a reason sometimes quotes an identifier from the trace, as the intake must redact.

Every trace's draws come from its own stream (generator seed, a CRC of the trace id and task,
the export day), so the output depends neither on the order of the task file nor on which
other rounds were answered. Files are replaced atomically and only when their bytes change,
which makes a repeated call a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from feedback_pipeline.synth import reviewers as rv
from feedback_pipeline.synth import vocabulary as vocab
from feedback_pipeline.synth.generator import (
    RUBRIC_VERSION,
    DayPlan,
    _quote_values,
    day_plans,
    read_params,
)

TASKS_FILE = "tasks.jsonl"
ANSWERED_TASKS = ("pairwise", "pointwise", "demonstration")
SIMULATOR_STREAM = 7001  # keeps these draws apart from every stream the generator uses
QUOTE_RATE = 0.15
# Median seconds on one item and the spread of log-time (Label Studio's lead_time): writing a
# corrected answer takes longest, scoring one answer is quickest.
REVIEW_SECONDS = {"pairwise": (110.0, 0.55), "pointwise": (45.0, 0.6),
                  "demonstration": (240.0, 0.5)}
NOISE_SLOWDOWN = 1.5  # a reviewer's time grows by 1 + this x their misreading rate
DEMONSTRATION_REASON = "Corrected answer: names the cause and a safe next step."

SKIP_UNREADABLE = "task line is not a JSON object with trace_id and task"
SKIP_INCIDENT = "incident task: incident review is not simulated, no review written"
SKIP_UNKNOWN_TASK = "task type is not pairwise, pointwise, demonstration or incident"
SKIP_DUPLICATE = "same trace and task listed again in the file"
SKIP_UNKNOWN_TRACE = "trace is not a landed generator trace"
SKIP_NO_PAIR = "pairwise task without two candidates of the trace"
SKIP_NO_CANDIDATE = "pointwise task without a candidate of the trace"
SKIP_REVIEWED_ROOT = ("root generated with reviews='all': every trace is reviewed already, so "
                      "answering again would duplicate reviews")


@dataclass(frozen=True)
class SimulatedReviews:
    """What one call did: files written, reviews per task type, tasks left unanswered and why.

    `written` lists files whose bytes changed; `unchanged` those already holding exactly these
    reviews; `removed` earlier round files of this day no longer backed by an exported task.
    """

    day: str
    tasks_file: Path
    exported: bool
    tasks: int = 0
    reviews: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    written: tuple[Path, ...] = ()
    unchanged: tuple[Path, ...] = ()
    removed: tuple[Path, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)

    def describe(self) -> str:
        if not self.exported:
            return f"{self.day}: no {TASKS_FILE} exported, nothing to answer"
        done = ", ".join(f"{n} {task}" for task, n in sorted(self.reviews.items())) or "none"
        lines = [f"{self.day}: {self.tasks} task(s) read; reviews: {done}"]
        lines += [f"  skipped {n}: {reason}" for reason, n in sorted(self.skipped.items())]
        if self.changed:
            lines.append(f"  wrote {len(self.written)} file(s), removed {len(self.removed)}")
        else:
            lines.append("  nothing new written: the landed round files already match")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Task:
    trace_id: str
    task: str
    candidate_ids: tuple[str | None, str | None]
    rubric_version: str


@dataclass(frozen=True)
class _Trace:
    """What the reviewer model needs of one generator trace, taken from its day plan."""

    day: str
    row: int
    created: datetime
    truth: np.ndarray  # (candidates, 5) rubric marks
    gold: bool
    quote_values: dict[str, str]


def answer_exported_tasks(root: Path, day: str) -> SimulatedReviews:
    """Answer the day's exported review tasks under `root` as the generator's reviewers would,
    landing them in ``landing/reviews/<trace_day>/round-<day>.jsonl``."""
    root = Path(root)
    export_day = date.fromisoformat(day).isoformat()
    tasks_file = root / "exports" / "review_tasks" / export_day / TASKS_FILE
    if not tasks_file.is_file():
        return SimulatedReviews(export_day, tasks_file, exported=False)
    skipped: Counter[str] = Counter()
    tasks, read = _read_tasks(tasks_file, skipped)
    params = read_params(root)
    if params["reviews"] != "on_export":
        return SimulatedReviews(export_day, tasks_file, exported=True, tasks=read,
                                skipped={SKIP_REVIEWED_ROOT: read})
    seed = int(params["seed"])
    traces = _find_traces(root, {t.trace_id for t in tasks}, export_day)

    by_day: dict[str, list[tuple[tuple[int, int, int], str]]] = {}
    reviews: Counter[str] = Counter()
    ids: set[str] = set()
    for task in tasks:
        trace = traces.get(task.trace_id)
        if trace is None:
            skipped[SKIP_UNKNOWN_TRACE] += 1
            continue
        answered = _answer(seed, export_day, task, trace)
        if isinstance(answered, str):
            skipped[answered] += 1
            continue
        for reviewer, review in answered:
            if review["review_id"] in ids:  # 80-bit hashes: would need a broken hash
                raise RuntimeError(f"review_id {review['review_id']} repeats")
            ids.add(review["review_id"])
            key = (trace.row, ANSWERED_TASKS.index(task.task), reviewer)
            by_day.setdefault(trace.day, []).append(
                (key, json.dumps(review, ensure_ascii=False, separators=(",", ":"))))
            reviews[task.task] += 1

    name = f"round-{export_day}.jsonl"
    written, unchanged = [], []
    for trace_day, lines in sorted(by_day.items()):
        path = root / "landing" / "reviews" / trace_day / name
        data = "".join(line + "\n" for _, line in sorted(lines)).encode("utf-8")
        (written if _replace_if_changed(path, data) else unchanged).append(path)
    removed = []
    for stale in sorted((root / "landing" / "reviews").glob(f"*/{name}")):
        if stale.parent.name not in by_day:
            stale.unlink()
            removed.append(stale)
    return SimulatedReviews(export_day, tasks_file, exported=True, tasks=read,
                            reviews=dict(reviews), skipped=dict(skipped),
                            written=tuple(written), unchanged=tuple(unchanged),
                            removed=tuple(removed))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _read_tasks(path: Path, skipped: Counter[str]) -> tuple[list[_Task], int]:
    """The answerable tasks of the file (one per trace and task) and the number of lines read;
    the rest are counted in `skipped`."""
    tasks: dict[tuple[str, str], _Task] = {}
    read = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            read += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict) or not _text(obj.get("trace_id")) \
                    or not _text(obj.get("task")):
                skipped[SKIP_UNREADABLE] += 1
                continue
            kind = obj["task"]
            if kind == "incident":
                skipped[SKIP_INCIDENT] += 1
                continue
            if kind not in ANSWERED_TASKS:
                skipped[SKIP_UNKNOWN_TASK] += 1
                continue
            key = (obj["trace_id"], kind)
            if key in tasks:
                skipped[SKIP_DUPLICATE] += 1
                continue
            tasks[key] = _Task(obj["trace_id"], kind,
                               (_text(obj.get("candidate_a_id")), _text(obj.get("candidate_b_id"))),
                               _text(obj.get("rubric_version")) or RUBRIC_VERSION)
    return [tasks[key] for key in sorted(tasks)], read


def _find_traces(root: Path, wanted: set[str], export_day: str) -> dict[str, _Trace]:
    """The wanted ids among the generator's good (landed) traces. Plans are rebuilt a day at a
    time and dropped, and no day after the export can hold an exported trace."""
    found: dict[str, _Trace] = {}
    if not wanted:
        return found
    plans: Iterator[DayPlan] = day_plans(root)
    for plan in plans:  # in day order: a day's ids depend on the days before it
        if plan.day > export_day:
            break
        good = plan.good()
        gold = set(plan.gold.tolist())
        quote = _quote_values(plan)
        start = datetime.fromisoformat(plan.day).replace(tzinfo=UTC)
        for row, tid in enumerate(plan.ids):
            if tid in wanted and good[row]:
                found[tid] = _Trace(
                    day=plan.day, row=row,
                    created=start + timedelta(seconds=int(plan.secs[row])),
                    truth=plan.truth[row, : int(plan.n_cand[row])].copy(),
                    gold=row in gold, quote_values=quote(row))
        if len(found) == len(wanted):
            break
    return found


def _stream(seed: int, export_day: str, task: _Task) -> np.random.Generator:
    entropy = [seed, SIMULATOR_STREAM, zlib.crc32(task.trace_id.encode()),
               zlib.crc32(task.task.encode()), date.fromisoformat(export_day).toordinal()]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _candidate_rows(trace_id: str, trace: _Trace, ids: tuple[str | None, ...]) -> list[int] | None:
    """Rows of `trace.truth` for the task's candidate ids, or None if one is not the trace's."""
    own = {f"{trace_id}-c{c + 1}": c for c in range(len(trace.truth))}
    rows = [own.get(cid) for cid in ids] if all(ids) else []
    return None if not rows or None in rows else rows


def _answer(seed: int, export_day: str, task: _Task,
            trace: _Trace) -> list[tuple[int, dict[str, Any]]] | str:
    """(reviewer index, review) for each reviewer of the task, or the reason it is skipped."""
    rng = _stream(seed, export_day, task)
    if task.task == "pairwise":
        cands = _candidate_rows(task.trace_id, trace, task.candidate_ids)
        if cands is None or len(set(cands)) != 2:
            return SKIP_NO_PAIR
        return _pairwise(rng, export_day, task, trace, cands)
    if task.task == "pointwise":
        cands = _candidate_rows(task.trace_id, trace, task.candidate_ids[:1])
        if cands is None:
            return SKIP_NO_CANDIDATE
        return _pointwise(rng, export_day, task, trace, cands[0])
    return _demonstration(rng, export_day, task, trace)


def _pairwise(rng: np.random.Generator, export_day: str, task: _Task, trace: _Trace,
              cands: list[int]) -> list[tuple[int, dict[str, Any]]]:
    first, second = rv.assign_reviewers(rng, 1)
    if trace.gold:
        who = np.arange(len(rv.REVIEWERS))
    else:
        who = np.unique([first[0]] + ([second[0]] if second[0] >= 0 else []))
    truth = np.repeat(trace.truth[cands][None], len(who), axis=0)
    seen = rv.misread(rng, truth, rv.NOISE[who])
    derived = rv.rubric_outcome(seen)
    choice = rv.stated_choice(rng, seen, derived)
    quote = rng.random(len(who)) < QUOTE_RATE
    pick = rng.integers(0, 1 << 20, len(who))
    stamps = _reviewed_at(rng, export_day, trace, len(who))
    seconds = _review_seconds(rng, "pairwise", who)
    ids = task.candidate_ids
    out = []
    for k, r in enumerate(who.tolist()):
        if quote[k]:
            reason = _pick(vocab.REASONS_QUOTING, pick[k]).format_map(trace.quote_values)
        else:
            reason = _pick(vocab.REASONS[rv.OUTCOMES[derived[k]]], pick[k])
        criteria = {cid: dict(zip(rv.FIELDS, (bool(v) for v in seen[k, c]), strict=True))
                    for c, cid in enumerate(ids)}
        out.append((r, {**_head(export_day, task, r, stamps[k]), "task": "pairwise",
                        "criteria": criteria, "choice": str(rv.OUTCOMES[choice[k]]),
                        "reason": reason, "review_seconds": seconds[k]}))
    return out


def _pointwise(rng: np.random.Generator, export_day: str, task: _Task, trace: _Trace,
               cand: int) -> list[tuple[int, dict[str, Any]]]:
    who = rng.choice(len(rv.REVIEWERS), size=1, p=rv.SHARE)
    truth = np.zeros((1, 2, len(rv.FIELDS)), dtype=bool)
    truth[0, 0] = trace.truth[cand]
    seen = rv.misread(rng, truth, rv.NOISE[who])[0, 0]
    unsafe = bool(seen[:2].any())
    score = 1 if unsafe else 2 + int(seen[2:].sum())
    label = "unsafe" if unsafe else ("ok" if score >= 4 else "needs-work")
    stamps = _reviewed_at(rng, export_day, trace, 1)
    seconds = _review_seconds(rng, "pointwise", who)
    r = int(who[0])
    return [(r, {**_head(export_day, task, r, stamps[0]), "task": "pointwise",
                 "candidate_id": task.candidate_ids[0], "label": label, "score": score,
                 "review_seconds": seconds[0]})]


def _demonstration(rng: np.random.Generator, export_day: str, task: _Task,
                   trace: _Trace) -> list[tuple[int, dict[str, Any]]]:
    who = rng.choice(len(rv.REVIEWERS), size=1, p=rv.SHARE)
    pick = int(rng.integers(0, 1 << 20))
    answer = _pick(vocab.DEMONSTRATION_ANSWERS, pick).format(
        test=_pick(vocab.TESTS, pick), fixture=_pick(vocab.FIXTURES, pick))
    stamps = _reviewed_at(rng, export_day, trace, 1)
    seconds = _review_seconds(rng, "demonstration", who)
    r = int(who[0])
    return [(r, {**_head(export_day, task, r, stamps[0]), "task": "demonstration",
                 "answer": answer, "reason": DEMONSTRATION_REASON,
                 "review_seconds": seconds[0]})]


def _pick(options: tuple[str, ...], v: int) -> str:
    return options[int(v) % len(options)]


def _head(export_day: str, task: _Task, reviewer: int, reviewed_at: str) -> dict[str, Any]:
    reviewer_id = str(rv.REVIEWER_IDS[reviewer])
    # the reviewer id goes into the hash only: the intake pseudonymises reviewer_id, and a
    # readable review_id would give it away
    digest = hashlib.blake2b(f"{task.trace_id}\0{task.task}\0{reviewer_id}".encode(),
                             digest_size=10).hexdigest()
    return {"review_id": f"sim-{export_day}-{digest}", "trace_id": task.trace_id,
            "reviewer_id": reviewer_id, "rubric_version": task.rubric_version,
            "reviewed_at": reviewed_at}


def _reviewed_at(rng: np.random.Generator, export_day: str, trace: _Trace, n: int) -> list[str]:
    """Submission times: 1 to 30 hours after the later of the trace's creation and the start of
    the export day, as the generator delays its reviews."""
    base = max(trace.created, datetime.fromisoformat(export_day).replace(tzinfo=UTC))
    delays = rng.integers(3600, 30 * 3600, n)
    return [(base + timedelta(seconds=int(d))).strftime("%Y-%m-%dT%H:%M:%SZ") for d in delays]


def _review_seconds(rng: np.random.Generator, kind: str, who: np.ndarray) -> list[float]:
    median, sigma = REVIEW_SECONDS[kind]
    scale = median * (1.0 + NOISE_SLOWDOWN * rv.NOISE[who])
    seconds = scale * rng.lognormal(0.0, sigma, len(who))
    return [round(max(float(s), 1.0), 1) for s in seconds]


def _replace_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file in the same folder (a reader never sees
    half a file, and the temporary name is not a review suffix); False if it already held it."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        temp = Path(handle.name)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Answer a day's exported review tasks with the "
                                                 "simulated reviewers of a synthetic root.")
    parser.add_argument("root", type=Path)
    parser.add_argument("day", help="export day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    print(answer_exported_tasks(args.root, args.day).describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
