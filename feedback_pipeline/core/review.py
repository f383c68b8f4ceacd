"""Reviews in, artifacts out: the rubric decides every pairwise outcome.

Each review is validated (contract section 3), its outcome derived from its criteria by the
ordered rubric, and each trace's reviews resolved into exactly one lane: a preference pair, a
demonstration, a pointwise assessment, the adjudication queue, an incident record, or quarantine.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedback_pipeline.core.contract import (
    ContractError,
    ParsedLines,
    candidates_of,
    check_identifier,
    parse_lines,
    parse_timestamp,
    quarantine_row,
)
from feedback_pipeline.core.conversation import prompt_messages_json
from feedback_pipeline.core.rubric import CRITERIA_FIELDS, PAIRWISE_OUTCOMES, Rubric
from feedback_pipeline.core.runtime import ordered_calls
from feedback_pipeline.core.texts import SCAN_BATCH_ROWS

TASKS = ("pairwise", "pointwise", "demonstration", "incident")
POSITIVE_POINTWISE_LABELS = frozenset({"ok", "good", "acceptable", "safe", "correct", "helpful"})

REVIEW_COLUMNS = [
    "review_id",
    "trace_id",
    "reviewer_id",
    "rubric_version",
    "reviewed_at",
    "task",
    "criteria_json",
    "choice",
    "candidate_id",
    "label",
    "score",
    "answer",
    "reason",
    "resolution",
    "adjudication",
    "review_seconds",
    "source_file",
    "source_line",
]

# Lanes a review can end in; status on each reviewed label.
ACCEPTED = "ACCEPTED"
RUBRIC_CONFLICT = "RUBRIC_CONFLICT"
ADJUDICATION = "ADJUDICATION"
INCIDENT = "INCIDENT"
SUPERSEDED = "SUPERSEDED"  # a reviewer's earlier review of the same item: one vote each


def validate_review(obj: Any, known_rubrics: set[str]) -> dict[str, Any]:
    """A typed review row, or ContractError naming the broken rule."""
    if not isinstance(obj, dict):
        raise ContractError("a review must be a JSON object")
    for name in ("review_id", "trace_id", "reviewer_id", "rubric_version"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise ContractError(f"{name} is required and must be a non-empty string")
    for name in ("review_id", "trace_id", "rubric_version"):
        # ids leave the restricted zone; reviewer_id does not (it is pseudonymised on intake,
        # and a Label Studio identity is an email)
        check_identifier(name, obj[name])
    if obj["rubric_version"] not in known_rubrics:
        raise ContractError("rubric_version is not a known rubric (config/rubrics)")
    task = obj.get("task") or ("pairwise" if "criteria" in obj else None)
    if task not in TASKS:
        raise ContractError(f"task must be one of {', '.join(TASKS)}")
    reviewed_at = obj.get("reviewed_at")
    row: dict[str, Any] = {
        "review_id": obj["review_id"],
        "trace_id": obj["trace_id"],
        "reviewer_id": obj["reviewer_id"],
        "rubric_version": obj["rubric_version"],
        "reviewed_at": parse_timestamp(reviewed_at, "reviewed_at") if reviewed_at else None,
        "task": task,
        "criteria_json": None,
        "choice": None,
        "candidate_id": None,
        "label": None,
        "score": None,
        "answer": None,
        "reason": obj.get("reason") if isinstance(obj.get("reason"), str) else None,
        "resolution": None,
        "adjudication": _flag(obj.get("adjudication"), "adjudication"),
        "review_seconds": _review_seconds(obj.get("review_seconds")),
    }
    if task == "pairwise":
        criteria = obj.get("criteria")
        if not isinstance(criteria, dict) or len(criteria) != 2:
            raise ContractError("a pairwise review needs criteria for exactly two candidates")
        for cid, marks in criteria.items():
            check_identifier("criteria candidate_id", cid)
            if not isinstance(marks, dict):
                raise ContractError("criteria: each candidate's marks must be an object")
            bad = [k for k, v in marks.items() if k in CRITERIA_FIELDS and not isinstance(v, bool)]
            if bad:
                raise ContractError(f"criteria: fields {', '.join(sorted(bad))} must be true or false")
        choice = obj.get("choice")
        if choice is not None and choice not in PAIRWISE_OUTCOMES:
            raise ContractError(f"choice must be one of {', '.join(PAIRWISE_OUTCOMES)}")
        row["criteria_json"] = _canonical_json(criteria)
        row["choice"] = choice
    elif task == "pointwise":
        cid, score, label = obj.get("candidate_id"), obj.get("score"), obj.get("label")
        if not isinstance(cid, str) or not cid:
            raise ContractError("a pointwise review needs candidate_id")
        check_identifier("candidate_id", cid)
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5
        ):
            raise ContractError("score must be an integer from 1 to 5")
        if score is None and not isinstance(label, str):
            raise ContractError("a pointwise review needs a label or a score")
        row.update(candidate_id=cid, score=score, label=label if isinstance(label, str) else None)
    elif task == "incident":
        resolution = obj.get("resolution")
        if resolution not in INCIDENT_RESOLUTIONS:
            raise ContractError(f"an incident review needs a resolution: one of "
                                f"{', '.join(INCIDENT_RESOLUTIONS)}")
        if not (row["reason"] or "").strip():
            raise ContractError("an incident review needs a reason (what was done, or why "
                                "nothing)")
        row["resolution"] = resolution
    else:
        answer = obj.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise ContractError("a demonstration review needs a non-empty answer")
        row["answer"] = answer
    return row


_canonical_json = json.JSONEncoder(sort_keys=True).encode
"""json.dumps(value, sort_keys=True), with one encoder for every review instead of one each."""


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ContractError(f"{name} must be true or false")
    return value


def _review_seconds(value: Any) -> float | None:
    """Reviewer time on the item (review cost); absent is fine, nonsense is not."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value < float("inf")):
        raise ContractError("review_seconds must be a number of seconds, 0 or more")
    try:
        return float(value)
    except OverflowError as err:  # an integer literal beyond a double: it failed the chunk
        raise ContractError("review_seconds is too large for a number of seconds") from err


def parse_review_lines(
    lines: Iterable[tuple[int, str]], source_file: str, known_rubrics: set[str]
) -> ParsedLines:
    return parse_lines(lines, source_file, lambda obj: validate_review(obj, known_rubrics),
                       "review_id")


@dataclass
class ResolvedReviews:
    """Every lane as its own table; `labels` holds every valid review with its derived outcome."""

    labels: pd.DataFrame
    preference_pairs: pd.DataFrame
    demonstrations: pd.DataFrame
    pointwise: pd.DataFrame
    adjudication: pd.DataFrame
    incidents: pd.DataFrame
    quarantine: pd.DataFrame
    redelivered: int = 0  # identical repeats of a review_id dropped (one_review_per_id)


def _positions(candidates: list[dict[str, Any]]) -> dict[str, str]:
    return {c["candidate_id"]: pos for c, pos in zip(candidates[:2], ("A", "B"), strict=False)}


# Parsed once per row and kept on the row under a key no lane schema has: a trace's
# candidates are read by every vote on it, a review's criteria by its outcome, the safety
# check and the pair's criteria_json.
_PARSED_CRITERIA = "_criteria"
_PARSED_CANDIDATES = "_candidates"


def _criteria(review: dict[str, Any]) -> dict[str, Any]:
    parsed = review.get(_PARSED_CRITERIA)
    if parsed is None:
        parsed = review[_PARSED_CRITERIA] = json.loads(review["criteria_json"])
    return parsed


def _candidates(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    parsed = trace.get(_PARSED_CANDIDATES)
    if parsed is None:
        parsed = candidates_of(trace["candidates"])
        if isinstance(trace, dict):
            trace[_PARSED_CANDIDATES] = parsed
    return parsed


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Row dicts as a table of `schema`; a key the schema lacks is left out, a column a row
    lacks is null. Arrow reads the dicts as one struct array, each field looked up in C++
    (twice as fast as a Python list per column)."""
    return pa.Table.from_struct_array(pa.array(rows, type=pa.struct(list(schema))))


def _pairwise_outcome(
    review: Mapping[str, Any], candidates: list[dict[str, Any]], rubric: Rubric
) -> tuple[str, str]:
    """(outcome, deciding criterion) or ContractError."""
    criteria = _criteria(review)
    if len(candidates) < 2:
        raise ContractError("pairwise review of a trace with fewer than two candidates")
    a_id, b_id = candidates[0]["candidate_id"], candidates[1]["candidate_id"]
    if set(criteria) != {a_id, b_id}:
        raise ContractError("criteria must name exactly the trace's two candidates")
    return rubric.outcome(criteria[a_id], criteria[b_id])


def _provenance(trace: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "redaction_version": trace.get("redaction_version"),
        "prompt_template_version": trace.get("prompt_template_version"),
        "policy_version": trace.get("policy_version"),
        "prompt_fingerprint": trace.get("prompt_fingerprint"),
        "slice": trace.get("slice"),
        "round_id": trace.get("round_id"),
        "arm": trace.get("arm"),
    }


def _prompt_fields(trace: Mapping[str, Any]) -> dict[str, Any]:
    """The final user turn and the whole conversation the reviewers judged (with its context),
    which a released row's prompt is built from."""
    return {"prompt": trace["prompt"], "prompt_messages": prompt_messages_json(trace)}


def records(rows: pd.DataFrame | pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts through Arrow (C speed; missing values become None, never NaN)."""
    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    return rows.to_pylist()


def resolve_reviews(
    reviews: pd.DataFrame | pa.Table,
    traces: pd.DataFrame | pa.Table,
    queues: pd.DataFrame | pa.Table,
    rubric: Rubric,
    *,
    rubric_by_version: Mapping[str, Rubric] | None = None,
    adjudicators: frozenset[str] = frozenset(),
) -> ResolvedReviews:
    """Derive outcomes and route every review of one partition into exactly one lane.

    `traces` are redacted trace rows, `queues` the routed_queues rows (trace_id, destination).
    A review_id repeated among a trace's reviews is one review first (one_review_per_id).
    """
    rows = resolve_review_rows(reviews, traces, queues, rubric, rubric_by_version=rubric_by_version,
                               adjudicators=adjudicators)
    return ResolvedReviews(
        quarantine=pd.DataFrame(rows.pop("quarantine")),
        redelivered=len(rows.pop("redelivered")),
        **{lane: pd.DataFrame(rows[lane], columns=LANE_SCHEMAS[lane].names)
           for lane in LANE_SCHEMAS})


def resolve_review_rows(
    reviews: pd.DataFrame | pa.Table,
    traces: pd.DataFrame | pa.Table,
    queues: pd.DataFrame | pa.Table,
    rubric: Rubric,
    *,
    rubric_by_version: Mapping[str, Rubric] | None = None,
    adjudicators: frozenset[str] = frozenset(),
) -> dict[str, list[dict[str, Any]]]:
    """resolve_reviews as plain rows per lane (LANE_SCHEMAS names, plus "quarantine" and
    "redelivered": the identical repeats of a review_id dropped by one_review_per_id), so a
    worker can build Arrow tables without a pandas round trip."""
    rubrics = dict(rubric_by_version or {})
    rubrics.setdefault(rubric.version, rubric)
    trace_by_id = {row["trace_id"]: row for row in records(traces)}
    dests: dict[str, set[str]] = {}
    for tid, dest in zip(_values(queues, "trace_id"), _values(queues, "destination"),
                         strict=True):
        dests.setdefault(tid, set()).add(dest)

    labels, quarantined = [], []
    kept, redelivered, repeated = one_review_per_id(records(reviews))
    quarantined.extend(repeated)
    for review in kept:
        tid = review["trace_id"]
        trace = trace_by_id.get(tid)
        reason = None
        if trace is None:
            reason = UNKNOWN_TRACE_REASON
        elif review.get("adjudication") and review["reviewer_id"] not in adjudicators:
            reason = ("an adjudication decision from a reviewer without the adjudicator role "
                      "(config/reviewers.yaml)")
        elif "FROZEN_EVALUATION" in dests.get(tid, ()):
            reason = "review of a frozen-evaluation trace; it never becomes training data"
        elif review["rubric_version"] not in rubrics:
            reason = "rubric_version is not loaded"
        if reason is None:
            assert trace is not None
            review.update(slice=trace.get("slice"), round_id=trace.get("round_id"),
                          arm=trace.get("arm"), outcome=None, deciding_criterion=None,
                          status=ACCEPTED)
            if review["task"] == "pairwise":
                try:
                    outcome, deciding = _pairwise_outcome(
                        review, _candidates(trace), rubrics[review["rubric_version"]]
                    )
                except ContractError as err:
                    reason = str(err)
                else:
                    review.update(outcome=outcome, deciding_criterion=deciding)
                    if review["choice"] is not None and review["choice"] != outcome:
                        review["status"] = RUBRIC_CONFLICT
            elif review["task"] == "pointwise" and review["candidate_id"] not in {
                c["candidate_id"] for c in _candidates(trace)
            }:
                reason = "candidate_id is not a candidate of the trace"
            if reason is None:
                labels.append(review)
        if reason is not None:
            quarantined.append(
                quarantine_row(
                    review.get("source_file") or "",
                    int(review.get("source_line") or 0),
                    reason,
                    json.dumps({"review_id": review["review_id"], "trace_id": tid}),
                    review["review_id"],
                )
            )

    lanes = _route(labels, trace_by_id, dests, rubrics, adjudicators)
    return {"labels": labels, **lanes, "quarantine": quarantined, "redelivered": redelivered}


REPEATED_REVIEW_ID = ("review_id repeated with different content for the same trace; the "
                      "latest (by reviewed_at, then arrival) is kept")
_ARRIVAL_COLUMNS = ("source_file", "source_line")
_CONTENT_COLUMNS = tuple(c for c in REVIEW_COLUMNS if c not in _ARRIVAL_COLUMNS)


def one_review_per_id(reviews: list[dict[str, Any]]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept reviews in arrival order, re-deliveries dropped, quarantine rows): the rule for
    a review_id seen more than once among one trace's reviews (all of a trace's reviews
    resolve together, whichever file and folder of the day's partition they came from).

    - The kept review is the latest by reviewed_at (a review without one counts as earliest),
      then by arrival order (the later arrival wins).
    - A repeat whose content is identical to the kept review (every review field except
      source_file and source_line: a re-delivery, such as the same file landed twice) is
      dropped and returned in the second list, so the stage counts it.
    - A repeat whose content differs is quarantined (REPEATED_REVIEW_ID: the rule, never the
      id or a value) and never a vote.

    So a repeated review_id is one vote, in agreement and in resolution. The same review_id
    on different traces is a review of each item, and each item counts its own votes."""
    groups: dict[tuple[Any, Any], list[int]] = {}
    for index, review in enumerate(reviews):
        groups.setdefault((review["trace_id"], review["review_id"]), []).append(index)
    if len(groups) == len(reviews):
        return reviews, [], []
    dropped: set[int] = set()
    redelivered: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    for indices in groups.values():
        if len(indices) == 1:
            continue
        ordered = sorted(indices, key=lambda i: (_when(reviews[i]), i))
        keep = reviews[ordered[-1]]
        content = tuple(keep.get(c) for c in _CONTENT_COLUMNS)
        for i in ordered[:-1]:
            review = reviews[i]
            dropped.add(i)
            if tuple(review.get(c) for c in _CONTENT_COLUMNS) == content:
                redelivered.append(review)
                continue
            quarantined.append(quarantine_row(
                review.get("source_file") or "", int(review.get("source_line") or 0),
                REPEATED_REVIEW_ID,
                json.dumps({"review_id": review["review_id"], "trace_id": review["trace_id"]}),
                review["review_id"]))
    return ([r for i, r in enumerate(reviews) if i not in dropped], redelivered,
            sorted(quarantined, key=lambda q: (q["source_file"], q["line_number"])))


def _values(rows: pd.DataFrame | pa.Table | pa.RecordBatch, column: str) -> list[Any]:
    if isinstance(rows, pa.Table | pa.RecordBatch):
        return rows.column(column).to_pylist()
    return rows[column].tolist()


UNMATCHED_GROUP = -1
UNKNOWN_TRACE_REASON = "trace_id is not a known trace of any landed day"
# The only queue memberships resolution reads: 221 thousand of a 10^6 day's million queue rows.
# The others are never looked up, so no batch is matched against them.
RESOLUTION_DESTINATIONS = ("FROZEN_EVALUATION", "INCIDENT_REVIEW", "DEMONSTRATION_QUEUE")


class FirstPositions:
    """Each id's first position among `ids`, looked up for many probes against one hash
    table built once (Arrow's index_in rebuilds its hash table on every call: a cost paid per
    batch against the whole set, which on a 10^6-trace day was most of a stage's own time). A
    dict probed from C (`map`) takes a batch of ids several times faster than a pandas
    index's get_indexer."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray) -> None:
        values = ids.cast(pa.string()).to_pylist()
        # built last to first, so the first position of a repeated id is the one kept
        self._first = dict(zip(reversed(values), range(len(values) - 1, -1, -1), strict=True))

    def of(self, probe: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The first position of each probed id, -1 where it is not among the ids."""
        values = probe.cast(pa.string()).to_pylist()
        return np.fromiter(map(self._first.get, values, itertools.repeat(-1)), dtype=np.int64,
                           count=len(values))

    def take(self, values: pa.Array | pa.ChunkedArray,
             probe: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """`values` (aligned with the ids) at each probed id's first position; null where the
        id is not among them (as pc.take of pc.index_in)."""
        position = self.of(probe)
        return pc.take(values, pa.array(position, mask=position < 0))


class SpooledReviews:
    """A day's reviews on local disk, grouped by where their trace sits in the day's stored
    trace order, so resolution holds the reviews of one group of traces at a time instead of
    the whole day's (hundreds of MB of Arrow on a large day).

    `trace_ids` are the day's trace ids in stored order; `resolve_review_batches` must then be
    given the trace batches in that same order. Each group is an Arrow IPC file, memory-mapped
    when read; reviews keep their arrival order within a group, so every batch sees its
    reviews in the same order as with the day's table in memory. Reviews of traces not in the
    day form the last group.
    """

    def __init__(self, trace_ids: pa.Array | pa.ChunkedArray, folder: Path,
                 group_rows: int = 50_000) -> None:
        if isinstance(trace_ids, pa.ChunkedArray):
            trace_ids = trace_ids.combine_chunks()
        self._ids = trace_ids.cast(pa.string())
        self._position: FirstPositions | None = None
        self._folder = Path(folder)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._group_rows = max(1, group_rows)
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self._loaded: dict[int, pa.Table] = {}
        self.rows = 0

    @property
    def trace_count(self) -> int:
        """How many traces the day has (with repeats, as stored)."""
        return len(self._ids)

    def add(self, reviews: pa.Table) -> None:
        """Append parsed reviews (REVIEW_SCHEMA) to the groups of their traces."""
        if not reviews.num_rows:
            return
        reviews = reviews.cast(REVIEW_SCHEMA)
        position = self._positions(reviews["trace_id"])
        group = np.where(position < 0, UNMATCHED_GROUP, position // self._group_rows)
        for value in np.unique(group).tolist():
            part = reviews.filter(pa.array(group == value))
            if value not in self._writers:
                self._writers[value] = pa.ipc.new_stream(str(self._path(value)), REVIEW_SCHEMA)
            self._writers[value].write_table(part)
        self.rows += reviews.num_rows

    def _positions(self, trace_ids: pa.ChunkedArray) -> np.ndarray:
        """Each id's first stored position, -1 when it is not a trace of the day."""
        if self._position is None:
            self._position = FirstPositions(self._ids)
        return self._position.of(trace_ids)

    def covers(self, trace_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Whether each id is one of the day's traces."""
        if isinstance(trace_ids, pa.Array):
            trace_ids = pa.chunked_array([trace_ids])
        return self._positions(trace_ids.cast(pa.string())) >= 0

    def for_rows(self, ids: pa.Array | pa.ChunkedArray, first: int, count: int) -> pa.Table:
        """The reviews of `ids`, the traces at stored positions [first, first + count)."""
        self._finish_writing()
        low, high = first // self._group_rows, max(first, first + count - 1) // self._group_rows
        for stale in [g for g in self._loaded if g < low]:
            del self._loaded[stale]
        parts = [self._group(g) for g in range(low, high + 1)]
        reviews = pa.concat_tables([REVIEW_SCHEMA.empty_table(), *parts])
        return reviews.filter(pc.is_in(reviews["trace_id"], value_set=ids))

    def unmatched(self) -> pa.Table:
        """Reviews whose trace is not among the day's traces."""
        self._finish_writing()
        self._loaded.clear()
        return self._read(UNMATCHED_GROUP)

    def _group(self, group: int) -> pa.Table:
        if group not in self._loaded:
            self._loaded[group] = self._read(group)
        return self._loaded[group]

    def _read(self, group: int) -> pa.Table:
        path = self._path(group)
        if not path.exists():
            return REVIEW_SCHEMA.empty_table()
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all()

    def _path(self, group: int) -> Path:
        return self._folder / ("unmatched.arrows" if group == UNMATCHED_GROUP
                               else f"group-{group:06d}.arrows")

    def _finish_writing(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._position = None


class _ReviewsInMemory:
    """The day's reviews as one table, served to `_review_work` like SpooledReviews."""

    def __init__(self, reviews: pa.Table) -> None:
        self._reviews = reviews
        self._matched = np.zeros(reviews.num_rows, dtype=bool)

    def for_rows(self, ids: pa.Array | pa.ChunkedArray, first: int, count: int) -> pa.Table:
        hit = np.asarray(pc.is_in(self._reviews["trace_id"], value_set=ids).fill_null(False))
        self._matched |= hit
        return self._reviews.filter(pa.array(hit))

    def unmatched(self) -> pa.Table:
        return self._reviews.filter(pa.array(~self._matched))


@dataclass
class ResolvedBatch:
    """One batch of traces resolved: every lane as Arrow in its LANE_SCHEMAS schema (converted
    in the worker, so the stage's own process only writes), and the quarantine rows."""

    lanes: dict[str, pa.Table]
    quarantine: list[dict[str, Any]]
    redelivered: int = 0  # identical repeats of a review_id dropped (one_review_per_id)


def resolve_review_batches(
    reviews: pa.Table | SpooledReviews,
    trace_batches: Iterable[pa.RecordBatch | pa.Table],
    queues: pd.DataFrame,
    rubric: Rubric,
    *,
    rubric_by_version: Mapping[str, Rubric] | None = None,
    adjudicators: frozenset[str] = frozenset(),
    workers: int = 1,
) -> Iterator[ResolvedBatch]:
    """resolve_reviews one batch of traces at a time: a trace's reviews all travel with it, so
    the lanes are the same as for the whole day, and memory stays a few batches of traces.
    Batches resolve in `workers` processes (core.runtime), results in batch order.

    Reviews of a trace found in no batch come last, quarantined as unknown traces.
    """
    rubrics = dict(rubric_by_version or {})
    calls = (functools.partial(resolve_batch, own, traces, own_queues, rubric=rubric,
                               rubrics=rubrics, adjudicators=adjudicators)
             for own, traces, own_queues in _review_work(reviews, trace_batches, queues))
    yield from ordered_calls(calls, workers)


def resolve_batch(reviews: pa.Table, traces: pa.Table, queues: pa.Table, *, rubric: Rubric,
                  rubrics: Mapping[str, Rubric],
                  adjudicators: frozenset[str]) -> ResolvedBatch:
    """One batch of traces with all of their reviews -> every lane as Arrow (a worker's
    unit)."""
    rows = resolve_review_rows(reviews, traces, queues, rubric, rubric_by_version=rubrics,
                               adjudicators=adjudicators)
    lanes = {lane: rows_to_table(rows[lane], schema) for lane, schema in LANE_SCHEMAS.items()}
    return ResolvedBatch(lanes, rows["quarantine"], len(rows["redelivered"]))


def _review_work(reviews: pa.Table | SpooledReviews,
                 trace_batches: Iterable[pa.RecordBatch | pa.Table],
                 queues: pd.DataFrame) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
    """(reviews, traces, queue rows) per batch of traces; unmatched reviews last. A batch's
    traces are those with a review or in the demonstration queue (an approved answer is a
    demonstration without one)."""
    queue_table = pa.table({"trace_id": pa.array(queues["trace_id"].astype(object), pa.string()),
                            "destination": pa.array(queues["destination"].astype(object),
                                                    pa.string())})
    queue_table = queue_table.filter(pc.is_in(queue_table["destination"],
                                              value_set=pa.array(RESOLUTION_DESTINATIONS)))
    source = reviews if isinstance(reviews, SpooledReviews) else _ReviewsInMemory(reviews)
    first = 0
    for batch in trace_batches:
        ids = batch.column("trace_id")
        own = source.for_rows(ids, first, batch.num_rows)
        first += batch.num_rows
        own_queues = queue_table.filter(pc.is_in(queue_table["trace_id"], value_set=ids))
        demo = own_queues.filter(pc.equal(own_queues["destination"], "DEMONSTRATION_QUEUE"))
        needed = pa.concat_arrays([own["trace_id"].combine_chunks().cast(pa.string()),
                                   demo["trace_id"].combine_chunks()])
        traces = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        traces = traces.filter(pc.is_in(ids, value_set=needed))
        if not own.num_rows and not traces.num_rows:
            continue
        yield own, traces, own_queues
    rest = source.unmatched()
    if rest.num_rows:
        yield (rest, pa.table({"trace_id": pa.array([], pa.string())}),
               pa.table({"trace_id": pa.array([], pa.string()),
                         "destination": pa.array([], pa.string())}))


def _latest_per_reviewer(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One vote per reviewer per item, as agreement counts them: the latest review (by
    reviewed_at where given, else arrival); the earlier ones are marked SUPERSEDED, so the
    same review seen twice, or a re-review, never counts twice."""
    if len({review["reviewer_id"] for review in group}) == len(group):
        return [r for r in group if r["status"] != SUPERSEDED]  # nobody to supersede

    def when(pair: tuple[int, dict[str, Any]]) -> tuple[float, int]:
        stamp = pair[1].get("reviewed_at")
        return (stamp.timestamp() if stamp is not None else float("-inf"), pair[0])

    latest: dict[str, dict[str, Any]] = {}
    for _, review in sorted(enumerate(group), key=when):
        earlier = latest.get(review["reviewer_id"])
        if earlier is not None:
            earlier["status"] = SUPERSEDED
        latest[review["reviewer_id"]] = review
    return [r for r in group if r["status"] != SUPERSEDED]


def _flagged_unsafe(group: list[dict[str, Any]], candidate_id: str,
                    rubrics: Mapping[str, Rubric]) -> list[str]:
    """Reviewers whose criteria mark `candidate_id` unsafe (any veto field), conflicting
    reviews included: a safety flag is never outvoted."""
    flagged = []
    for review in group:
        marks = _criteria(review).get(candidate_id)
        rubric = rubrics.get(review["rubric_version"])
        if marks is not None and rubric is not None and not rubric.is_safe(marks):
            flagged.append(review["reviewer_id"])
    return flagged


def _route(
    labels: list[dict[str, Any]],
    trace_by_id: Mapping[str, Mapping[str, Any]],
    dests: Mapping[str, set[str]],
    rubrics: Mapping[str, Rubric],
    adjudicators: frozenset[str] = frozenset(),
) -> dict[str, list[dict[str, Any]]]:
    """Each label's lane; a label whose review ends in an incident or adjudication gets that
    status (set on the label row itself). Every task type resolves the same way: each
    reviewer's latest review is one vote, agreeing votes are accepted once, conflicting ones go
    to adjudication, so a release never holds two contradicting rows for one item. An
    adjudicator's review of an item is not a vote but the decision: it closes the item, and
    the adjudication record says who decided, when and why."""
    out: dict[str, list[dict[str, Any]]] = {lane: [] for lane in ROUTED_LANES}
    groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for review in labels:
        item = review["candidate_id"] if review["task"] == "pointwise" else None
        groups.setdefault((review["task"], review["trace_id"], item), []).append(review)
    for (task, tid, _), reviews in sorted(groups.items(), key=lambda kv: (
            TASK_ORDER[kv[0][0]], kv[0][1], kv[0][2] or "")):
        if task == "incident":
            continue  # resolutions attach to the trace's incident record, below
        group = _latest_per_reviewer(reviews)
        decision, votes = _split_decision(group, adjudicators)
        trace = trace_by_id[tid]
        base = {"trace_id": tid, **_provenance(trace)}
        if "INCIDENT_REVIEW" in dests.get(tid, set()):
            review_ids, reviewers = _ids_of(group)
            out["incidents"].append({**base, "reason": INCIDENT_TRACE_REASON[task],
                                     "review_ids": review_ids, "reviewer_ids": reviewers})
            _set_status(group, INCIDENT)
            continue
        vote = VOTERS[task](votes, trace, rubrics) if votes else None
        if decision is None:
            assert vote is not None
            _settle(out, vote, base, votes, task)
            continue
        ruling = VOTERS[task]([decision], trace, rubrics)
        _set_status(votes, ADJUDICATION)
        review_ids, reviewers = _ids_of(votes)
        record = {**base, "task": task,
                  "reason": vote.reason if vote is not None and vote.lane == "adjudication"
                  else "decided by an adjudicator",
                  "outcomes": vote.outcomes if vote is not None else "",
                  "review_ids": review_ids, "reviewer_ids": reviewers,
                  "decided_by": decision["reviewer_id"],
                  "decided_at": decision.get("reviewed_at"),
                  "decision_reason": decision.get("reason")}
        if ruling.lane == "adjudication" and not ruling.outcomes.startswith("TIE"):
            # the adjudicator's own review contradicts the rubric: the item stays open
            decision["status"] = ADJUDICATION
            out["adjudication"].append({**record, "status": OPEN, "decision": None,
                                        "reason": f"{record['reason']}; the adjudicator's "
                                        f"review did not settle it ({ruling.reason})"})
            continue
        decision["status"] = ADJUDICATED
        out["adjudication"].append({**record, "status": RESOLVED, "decision": ruling.outcomes})
        if ruling.lane == "incidents":
            ruling.row["reason"] = "adjudicated " + ruling.row["reason"]
        if ruling.row is not None:
            ruling.row.update(reviewer_ids=decision["reviewer_id"],
                              review_ids=decision["review_id"])
            out[ruling.lane].append({**base, **ruling.row})

    demonstrated = {tid for task, tid, _ in groups if task == "demonstration"}
    for tid, trace in trace_by_id.items():
        if ("DEMONSTRATION_QUEUE" in dests.get(tid, set()) and tid not in demonstrated
                and trace.get("approved_answer")):
            out["demonstrations"].append(_demonstration(trace, trace["approved_answer"],
                                                        "approved_answer", None, None, None))
    _attach_resolutions(out["incidents"], [r for r in labels if r["task"] == "incident"],
                        trace_by_id)
    return out


ROUTED_LANES = ("preference_pairs", "demonstrations", "pointwise", "adjudication", "incidents")
TASK_ORDER = {"pairwise": 0, "demonstration": 1, "pointwise": 2, "incident": 3}
INCIDENT_TRACE_REASON = {
    "pairwise": "trace recorded an unsafe effect",
    "demonstration": "corrected answer for a trace under incident review",
    "pointwise": "pointwise label on a trace under incident review",
}
OPEN = "OPEN"
RESOLVED = "RESOLVED"
ADJUDICATED = "ADJUDICATED"  # an adjudicator's decision: it closed the item, it is no vote
INCIDENT_RESOLUTIONS = ("resolved", "new_fixture", "no_action")


@dataclass
class _Vote:
    """Where one item's votes lead: a lane, the row for it (None: nothing to train on), the
    statuses the votes get, and for adjudication its reason and the outcome counts."""

    lane: str
    row: dict[str, Any] | None
    status: str = ACCEPTED
    reason: str = ""
    outcomes: str = ""
    voters: list[dict[str, Any]] | None = None  # the reviews the row stands on


def _ids_of(group: list[dict[str, Any]]) -> tuple[str, str]:
    return (",".join(r["review_id"] for r in group),
            ",".join(sorted({r["reviewer_id"] for r in group})))


def _split_decision(group: list[dict[str, Any]], adjudicators: frozenset[str]
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the latest adjudicator review, the reviewers' votes); an adjudicator's earlier
    decisions on the item are SUPERSEDED by the latest."""
    decisions = [r for r in group if r["reviewer_id"] in adjudicators]
    votes = [r for r in group if r["reviewer_id"] not in adjudicators]
    if not decisions:
        return None, votes
    decisions.sort(key=_when)
    for earlier in decisions[:-1]:
        earlier["status"] = SUPERSEDED
    return decisions[-1], votes


def _when(review: Mapping[str, Any]) -> float:
    stamp = review.get("reviewed_at")
    return stamp.timestamp() if stamp is not None else float("-inf")


def _settle(out: dict[str, list[dict[str, Any]]], vote: _Vote, base: dict[str, Any],
            votes: list[dict[str, Any]], task: str) -> None:
    """The reviewers' votes alone decide: the vote's row in its lane, statuses on the votes."""
    review_ids, reviewers = _ids_of(votes)
    if vote.lane == "adjudication":
        out["adjudication"].append({**base, "task": task, "reason": vote.reason,
                                    "outcomes": vote.outcomes, "review_ids": review_ids,
                                    "reviewer_ids": reviewers, "status": OPEN})
        _set_status([r for r in votes if r["status"] != RUBRIC_CONFLICT], ADJUDICATION)
        return
    if vote.row is None:
        return
    if vote.lane == "incidents":
        _set_status([r for r in votes if r["status"] != RUBRIC_CONFLICT], INCIDENT)
        vote.row.setdefault("review_ids", review_ids)
        vote.row.setdefault("reviewer_ids", reviewers)
    out[vote.lane].append({**base, **vote.row})


def _pairwise_vote(group: list[dict[str, Any]], trace: Mapping[str, Any],
                   rubrics: Mapping[str, Rubric]) -> _Vote:
    valid = [r for r in group if r["status"] != RUBRIC_CONFLICT]
    counts = Counter(r["outcome"] for r in valid).most_common()
    detail = ", ".join(f"{k}x{v}" for k, v in counts)
    if not counts:
        return _Vote("adjudication", None, reason="every review contradicts the rubric")
    top, top_n = counts[0]
    if len(counts) > 1 and top_n * 2 <= len(valid):
        return _Vote("adjudication", None, reason=f"reviewers disagree ({detail})",
                     outcomes=detail)
    if top == "BOTH_BAD":
        reasons = [r["reason"] for r in valid if isinstance(r["reason"], str) and r["reason"]]
        return _Vote("incidents", {"reason": "BOTH_BAD: " + (reasons[0] if reasons else
                     "neither candidate passes safety and authorization")}, outcomes=top)
    if top == "TIE":
        return _Vote("adjudication", None, reason="tie under every rubric criterion",
                     outcomes=f"TIEx{top_n}")
    cands = _candidates(trace)
    chosen, rejected = (cands[0], cands[1]) if top == "A" else (cands[1], cands[0])
    flagged = _flagged_unsafe(group, chosen["candidate_id"], rubrics)
    if flagged:
        return _Vote("adjudication", None, outcomes=detail,
                     reason=f"safety or authorization flag on the chosen answer by "
                            f"{len(flagged)} reviewer(s); a majority cannot accept it")
    agreeing = [r for r in valid if r["outcome"] == top]
    return _Vote("preference_pairs", {
        **_prompt_fields(trace),
        "chosen": chosen["text"],
        "rejected": rejected["text"],
        "outcome": top,
        "chosen_candidate_id": chosen["candidate_id"],
        "rejected_candidate_id": rejected["candidate_id"],
        "chosen_model_id": chosen.get("model_id"),
        "rejected_model_id": rejected.get("model_id"),
        "chosen_generation": chosen.get("generation"),
        "rejected_generation": rejected.get("generation"),
        "rubric_version": ",".join(sorted({r["rubric_version"] for r in agreeing})),
        "deciding_criterion": agreeing[0]["deciding_criterion"],
        "reviewer_ids": ",".join(sorted({r["reviewer_id"] for r in agreeing})),
        "review_ids": ",".join(r["review_id"] for r in agreeing),
        "n_reviews": len(group),
        # every vote's criteria, not only the agreeing ones: the unsafe-pair gate reads them.
        # Joined as given: each is the canonical JSON intake wrote, which is what dumping the
        # parsed list would give, without encoding it again.
        "criteria_json": "[" + ", ".join(r["criteria_json"] for r in group) + "]",
    }, outcomes=top)


def _demonstration_vote(group: list[dict[str, Any]], trace: Mapping[str, Any],
                        rubrics: Mapping[str, Rubric]) -> _Vote:
    answers = {" ".join(str(r["answer"]).split()) for r in group}
    if len(answers) > 1:
        return _Vote("adjudication", None, reason=f"{len(answers)} different corrected answers",
                     outcomes=f"answersx{len(answers)}")
    review_ids, reviewers = _ids_of(group)
    row = _demonstration(trace, group[-1]["answer"], "reviewer_answer", review_ids, reviewers,
                         ",".join(sorted({r["rubric_version"] for r in group})))
    row.pop("trace_id")
    return _Vote("demonstrations", row, outcomes="answer")


def _pointwise_vote(group: list[dict[str, Any]], trace: Mapping[str, Any],
                    rubrics: Mapping[str, Rubric]) -> _Vote:
    verdicts = {_desirable(r) for r in group}
    if len(verdicts) > 1:
        detail = Counter("desirable" if _desirable(r) else "undesirable" for r in group)
        counts = ", ".join(f"{k}x{v}" for k, v in sorted(detail.items()))
        return _Vote("adjudication", None, reason=f"pointwise reviewers disagree ({counts})",
                     outcomes=counts)
    cid = group[0]["candidate_id"]
    cand = next(c for c in _candidates(trace) if c["candidate_id"] == cid)
    scores = sorted(int(r["score"]) for r in group if r["score"] is not None)
    labels_given = Counter(r["label"] for r in group if r["label"] is not None)
    review_ids, reviewers = _ids_of(group)
    verdict = verdicts.pop()
    return _Vote("pointwise", {
        **_prompt_fields(trace), "completion": cand["text"], "label": verdict,
        "assessment": labels_given.most_common(1)[0][0] if labels_given else None,
        "score": scores[(len(scores) - 1) // 2] if scores else None,
        "candidate_id": cand["candidate_id"], "model_id": cand.get("model_id"),
        "rubric_version": ",".join(sorted({r["rubric_version"] for r in group})),
        "reviewer_ids": reviewers, "review_ids": review_ids,
    }, outcomes="desirable" if verdict else "undesirable")


VOTERS = {"pairwise": _pairwise_vote, "demonstration": _demonstration_vote,
          "pointwise": _pointwise_vote}


def _attach_resolutions(incidents: list[dict[str, Any]], reviews: list[dict[str, Any]],
                        trace_by_id: Mapping[str, Mapping[str, Any]]) -> None:
    """An incident review's resolution on its trace's incident record (one is opened for a
    trace that has none yet: the incident task itself): the latest review decides, and the
    record keeps who resolved it, when and why."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for review in reviews:
        by_trace.setdefault(review["trace_id"], []).append(review)
    for tid, group in sorted(by_trace.items()):
        group.sort(key=_when)
        latest = group[-1]
        for earlier in group[:-1]:
            earlier["status"] = SUPERSEDED
        latest["status"] = INCIDENT
        review_ids, reviewers = _ids_of(group)
        records = [r for r in incidents if r["trace_id"] == tid]
        if not records:
            records = [{"trace_id": tid, **_provenance(trace_by_id[tid]),
                        "reason": "trace recorded an unsafe effect",
                        "review_ids": review_ids, "reviewer_ids": reviewers}]
            incidents.extend(records)
        for record in records:
            record.update(resolution=latest["resolution"], resolved_by=latest["reviewer_id"],
                          resolved_at=latest.get("reviewed_at"),
                          resolution_reason=latest.get("reason"))


def _desirable(review: Mapping[str, Any]) -> bool:
    """A pointwise review's verdict: a score of 4 or 5, or a positive label without a score."""
    if review["score"] is not None:
        return int(review["score"]) >= 4
    return str(review["label"]).lower() in POSITIVE_POINTWISE_LABELS


def _set_status(reviews: Iterable[dict[str, Any]], status: str) -> None:
    for review in reviews:
        review["status"] = status


def _demonstration(trace: Mapping[str, Any], answer: str, source: str, review_id: str | None,
                   reviewer_id: str | None, rubric_version: str | None) -> dict[str, Any]:
    return {
        "trace_id": trace["trace_id"], **_provenance(trace),
        **_prompt_fields(trace), "answer": answer, "source": source,
        "review_ids": review_id, "reviewer_ids": reviewer_id, "rubric_version": rubric_version,
    }


PROVENANCE_COLUMNS = ["redaction_version", "prompt_template_version", "policy_version",
                      "prompt_fingerprint", "slice", "round_id", "arm"]
PROMPT_COLUMNS = ["prompt", "prompt_messages"]
PREFERENCE_COLUMNS = ["trace_id", *PROVENANCE_COLUMNS, *PROMPT_COLUMNS, "chosen", "rejected",
                      "outcome", "chosen_candidate_id", "rejected_candidate_id",
                      "chosen_model_id", "rejected_model_id", "chosen_generation",
                      "rejected_generation", "rubric_version", "deciding_criterion",
                      "reviewer_ids", "review_ids", "n_reviews", "criteria_json"]
DEMONSTRATION_COLUMNS = ["trace_id", *PROVENANCE_COLUMNS, *PROMPT_COLUMNS, "answer", "source",
                         "review_ids", "reviewer_ids", "rubric_version"]
POINTWISE_COLUMNS = ["trace_id", *PROVENANCE_COLUMNS, *PROMPT_COLUMNS, "completion", "label",
                     "assessment", "score", "candidate_id", "model_id", "rubric_version",
                     "reviewer_ids", "review_ids"]
ADJUDICATION_COLUMNS = ["trace_id", *PROVENANCE_COLUMNS, "task", "reason", "outcomes",
                        "review_ids", "reviewer_ids", "status", "decision", "decided_by",
                        "decided_at", "decision_reason"]
INCIDENT_COLUMNS = ["trace_id", *PROVENANCE_COLUMNS, "reason", "review_ids", "reviewer_ids",
                    "resolution", "resolved_by", "resolved_at", "resolution_reason"]
LABEL_COLUMNS = [*REVIEW_COLUMNS, "slice", "round_id", "arm", "outcome", "deciding_criterion",
                 "status"]
_TYPED = {"reviewed_at": pa.timestamp("us", tz="UTC"), "score": pa.int64(),
          "decided_at": pa.timestamp("us", tz="UTC"), "resolved_at": pa.timestamp("us", tz="UTC"),
          "adjudication": pa.bool_(),
          "review_seconds": pa.float64(),
          "source_line": pa.int64(), "n_reviews": pa.int64(), "label": pa.string()}


def _schema(columns: list[str], **types: pa.DataType) -> pa.Schema:
    return pa.schema([(c, types.get(c, _TYPED.get(c, pa.string()))) for c in columns])


REVIEW_SCHEMA = _schema(REVIEW_COLUMNS)
LANE_SCHEMAS = {
    "labels": _schema(LABEL_COLUMNS),
    "preference_pairs": _schema(PREFERENCE_COLUMNS),
    "demonstrations": _schema(DEMONSTRATION_COLUMNS),
    "pointwise": _schema(POINTWISE_COLUMNS, label=pa.bool_()),
    "adjudication": _schema(ADJUDICATION_COLUMNS),
    "incidents": _schema(INCIDENT_COLUMNS),
}


def unsafe_accepted_pairs(pairs: pd.DataFrame | pa.Table | pa.RecordBatch,
                          rubric: Rubric) -> list[str]:
    """Trace ids of accepted pairs whose chosen answer any agreeing reviewer marked unsafe."""
    bad = []
    for tid, cid, criteria_json in zip(_values(pairs, "trace_id"),
                                       _values(pairs, "chosen_candidate_id"),
                                       _values(pairs, "criteria_json"), strict=True):
        for criteria in json.loads(criteria_json or "[]"):
            if cid in criteria and not rubric.is_safe(criteria[cid]):
                bad.append(tid)
                break
    return sorted(set(bad))


def unsafe_pairs_in_parquet(source: Any, *, rubric: Rubric) -> list[str]:
    """unsafe_accepted_pairs over a preference-pairs Parquet file, a batch at a time (one task
    for a worker process, core.runtime.submit_sequence)."""
    bad: set[str] = set()
    for batch in pq.ParquetFile(source).iter_batches(
            batch_size=SCAN_BATCH_ROWS,
            columns=["trace_id", "chosen_candidate_id", "criteria_json"]):
        bad.update(unsafe_accepted_pairs(batch, rubric))
    return sorted(bad)
