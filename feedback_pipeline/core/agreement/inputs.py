"""From review rows to what the statistics read: the inputs of one day's agreement.

The stored `reviewed_labels` arrive as Arrow tables or record batches (opened by the caller);
these functions pick the pairwise votes (adjudications are not votes), the pointwise scores per
(trace, candidate) and the demonstration answers, keeping `criteria_json` only where reviews
disagree, so a day's input stays small whatever its size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LABEL_COLUMNS = ["review_id", "trace_id", "reviewer_id", "task", "outcome", "slice",
                 "criteria_json", "status"]
KEY_COLUMNS = ["trace_id", "task", "outcome", "status"]  # what pairwise_input_streamed reads first
NOT_A_VOTE = "ADJUDICATED"
"""An adjudicator's decision closes an item; it is not a reviewer's vote, so agreement never
counts it (core.review)."""
_INPUT_COLUMNS = {"review_id": "review_id", "trace_id": "trace_id",
                  "reviewer_id": "reviewer_id", "label": "outcome", "slice": "slice",
                  "criteria_json": "criteria_json"}
def pairwise_input(labels: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """The agreement input from reviewed labels: one row per pairwise review, its
    rubric-derived outcome as `label`. Filtered in Arrow, because boolean indexing a pandas
    frame of Arrow-backed strings copies every column."""
    if isinstance(labels, pd.DataFrame):
        labels = pa.Table.from_pandas(labels, preserve_index=False)
    return _input_frame(_pairwise_rows(labels, disagreeing_pairwise_traces(labels)))


def pairwise_input_streamed(keys: pa.Table,
                            batches: Iterable[pa.RecordBatch | pa.Table]) -> pd.DataFrame:
    """pairwise_input over a table too large to hold: `keys` is its trace_id, task and outcome
    columns, `batches` its LABEL_COLUMNS in order. Only pairwise rows are kept, and
    criteria_json only where a pair can use it, so a 10^6-trace day's labels never sit in
    memory whole."""
    disagreeing = disagreeing_pairwise_traces(keys)
    parts = [_pairwise_rows(pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch)
                            else batch, disagreeing) for batch in batches]
    parts = [part for part in parts if part.num_rows]
    return _input_frame(pa.concat_tables(parts) if parts else pa.table(
        {name: pa.array([], pa.string()) for name in LABEL_COLUMNS}))


SCORE_COLUMNS = ["review_id", "trace_id", "candidate_id", "reviewer_id", "score"]
"""What the score alphas read of a pointwise score review (see ``pointwise_scores``)."""
STAGE_COLUMNS = [*LABEL_COLUMNS, "candidate_id", "score", "answer", "reviewed_at"]
"""The reviewed_labels columns ``review_inputs_streamed`` reads: pairwise labels, scores and
demonstration answers."""
def pointwise_scores(labels: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """The score-alpha input from reviewed labels: one row per pointwise review carrying a
    1-5 score (adjudicators' decisions left out), as SCORE_COLUMNS; each (trace_id,
    candidate_id) is one item."""
    if isinstance(labels, pd.DataFrame):
        labels = pa.Table.from_pandas(labels, preserve_index=False)
    return _score_frame(_score_rows(labels))


def demonstration_answers(labels: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """The demonstration-agreement input from reviewed labels: one row per demonstration
    review with an answer (adjudicators' decisions left out), its answer as a key (whitespace
    collapsed, as resolution compares answers, then hashed), as DEMONSTRATION_COLUMNS plus
    reviewed_at."""
    if isinstance(labels, pd.DataFrame):
        labels = pa.Table.from_pandas(labels, preserve_index=False)
    if "task" in labels.column_names:
        labels = labels.filter(pc.equal(labels["task"], "demonstration"))
    if "status" in labels.column_names:
        labels = labels.filter(pc.fill_null(pc.not_equal(labels["status"], NOT_A_VOTE), True))
    if "answer" not in labels.column_names:
        return pd.DataFrame({c: pd.Series(dtype=object)
                             for c in [*DEMONSTRATION_COLUMNS, "reviewed_at"]})
    labels = labels.filter(pc.is_valid(labels["answer"]))
    keys = [hashlib.blake2b(" ".join(str(a).split()).encode("utf-8", "surrogatepass"),
                            digest_size=12).hexdigest() for a in labels["answer"].to_pylist()]
    return pd.DataFrame({
        **{c: labels[c].to_pylist() if c in labels.column_names else [None] * labels.num_rows
           for c in ("review_id", "trace_id", "reviewer_id", "reviewed_at")},
        "answer_key": keys})


def review_inputs_streamed(keys: pa.Table, batches: Iterable[pa.RecordBatch | pa.Table]
                           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(pairwise_input rows, pointwise_scores rows, demonstration_answers rows) in one pass
    over a table too large to hold: `keys` is its KEY_COLUMNS, `batches` its STAGE_COLUMNS.
    Each batch keeps only its pairwise rows (criteria only where a pair can use them, as
    pairwise_input_streamed), its score rows (five short columns) and its demonstration
    answers as keys, so the day's labels never sit in memory whole."""
    disagreeing = disagreeing_pairwise_traces(keys)
    pairwise, scored, demonstrated = [], [], []
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        part = _pairwise_rows(table.select([c for c in LABEL_COLUMNS
                                            if c in table.column_names]), disagreeing)
        if part.num_rows:
            pairwise.append(part)
        part = _score_rows(table)
        if part.num_rows:
            scored.append(part)
        answers = demonstration_answers(table)
        if len(answers):
            demonstrated.append(answers)
    label_frame = _input_frame(pa.concat_tables(pairwise) if pairwise else pa.table(
        {name: pa.array([], pa.string()) for name in LABEL_COLUMNS}))
    demo_frame = (pd.concat(demonstrated, ignore_index=True) if demonstrated
                  else demonstration_answers(pa.table({"task": pa.array([], pa.string())})))
    return (label_frame, _score_frame(pa.concat_tables(scored) if scored else None),
            demo_frame)


def _score_rows(labels: pa.Table) -> pa.Table:
    if "task" in labels.column_names:
        labels = labels.filter(pc.equal(labels["task"], "pointwise"))
    if "status" in labels.column_names:
        labels = labels.filter(pc.fill_null(pc.not_equal(labels["status"], NOT_A_VOTE), True))
    if "score" not in labels.column_names:
        return pa.table({name: pa.array([], pa.string()) for name in SCORE_COLUMNS[:-1]}
                        | {"score": pa.array([], pa.int64())})
    labels = labels.filter(pc.is_valid(labels["score"]))
    return pa.table({name: (labels[name] if name in labels.column_names
                            else pa.nulls(labels.num_rows, pa.string()))
                     for name in SCORE_COLUMNS[:-1]}
                    | {"score": pc.cast(labels["score"], pa.int64())})


def _score_frame(rows: pa.Table | None) -> pd.DataFrame:
    if rows is None or rows.num_rows == 0:
        return pd.DataFrame({name: pd.Series(dtype="int64" if name == "score" else object)
                             for name in SCORE_COLUMNS})
    return rows.to_pandas()


def disagreeing_pairwise_traces(labels: pa.Table) -> pa.Array:
    """Trace ids whose pairwise reviews carry more than one outcome: the only ones with a
    disagreeing pair, and so the only ones whose criteria the report reads (dropping a
    superseded review can only remove disagreements, never add one)."""
    labels = _votes(labels)
    outcomes = labels.group_by("trace_id").aggregate([("outcome", "count_distinct")])
    return outcomes["trace_id"].filter(pc.greater(outcomes["outcome_count_distinct"], 1)
                                       ).combine_chunks()


def _pairwise_rows(labels: pa.Table, disagreeing: pa.Array) -> pa.Table:
    """Pairwise rows; criteria_json kept only for `disagreeing` traces (null elsewhere): the
    rest would only be turned into Python strings for nothing (for every duplicate-reviewed
    trace of a large day)."""
    labels = _votes(labels)
    if "criteria_json" in labels.column_names and labels.num_rows:
        drop = pc.invert(pc.is_in(labels["trace_id"],
                                  value_set=disagreeing.cast(labels["trace_id"].type)))
        drop = drop.combine_chunks() if isinstance(drop, pa.ChunkedArray) else drop
        column = labels["criteria_json"].combine_chunks()
        # replace_with_mask builds a compact column; if_else would keep every dropped text's
        # bytes in the new column's data buffer
        criteria = pc.replace_with_mask(column, drop, pa.nulls(pc.sum(drop).as_py() or 0,
                                                               column.type))
        labels = labels.set_column(labels.column_names.index("criteria_json"), "criteria_json",
                                   criteria)
    return labels


def _votes(labels: pa.Table) -> pa.Table:
    """The pairwise reviewers' votes: other tasks and adjudicators' decisions left out."""
    if "task" in labels.column_names:
        labels = labels.filter(pc.equal(labels["task"], "pairwise"))
    if "status" in labels.column_names:
        labels = labels.filter(pc.fill_null(pc.not_equal(labels["status"], NOT_A_VOTE), True))
    return labels


def _input_frame(labels: pa.Table) -> pd.DataFrame:
    return pa.table({name: labels[source] if source in labels.column_names
                     else pa.nulls(labels.num_rows, pa.string())
                     for name, source in _INPUT_COLUMNS.items()}).to_pandas()


DEMONSTRATION_COLUMNS = ["review_id", "trace_id", "reviewer_id", "answer_key"]
