"""A release candidate: the parent release's rows plus newly accepted rows, in TRL shapes.

Releases are cumulative. A row keeps the version that first released it; retracted trace ids
are removed; with no new and no retracted rows there is nothing to release. Each lane is built
by DuckDB from the window's Parquet partitions straight into a Parquet file (sorted by row id),
so a window of millions of rows never passes through pandas.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from feedback_pipeline.core.conversation import (
    MESSAGES_JSON_TYPE,
    final_user_sql,
    prompt_text_sql,
)

LANES = ("preference", "sft", "unpaired")
PROVENANCE = ["trace_id", "slice", "redaction_version", "prompt_template_version",
              "policy_version", "prompt_fingerprint", "rubric_version", "reviewer_ids",
              "round_id", "arm"]
_PROV = ", ".join(PROVENANCE)

# TRL's conversational formats, each followed by provenance: preference (prompt as messages,
# chosen / rejected as one assistant message each), language modelling (`messages`: the prompt's
# messages then the answer) and unpaired preference (prompt messages, completion as one
# assistant message, label). The prompt is the conversation the reviewers judged, with its
# context (core.conversation); the source is a window of preference_pairs, demonstrations and
# pointwise_assessments partitions.
_PROMPT = (f"coalesce(from_json(prompt_messages, '{MESSAGES_JSON_TYPE}'), "
           "[{'role': 'user', 'content': prompt}])")


def _assistant(column: str) -> str:
    return f"[{{'role': 'assistant', 'content': {column}}}]"


LANE_SELECT = {
    "preference": f"{_PROMPT} AS prompt, {_assistant('chosen')} AS chosen, "
                  f"{_assistant('rejected')} AS rejected, {_PROV}, outcome, "
                  "deciding_criterion, chosen_model_id, rejected_model_id, chosen_generation, "
                  "rejected_generation, chosen_candidate_id, criteria_json, trace_id AS row_id",
    "sft": f"list_concat({_PROMPT}, {_assistant('answer')}) AS messages, {_PROV}, source, "
           "trace_id AS row_id",
    "unpaired": f"{_PROMPT} AS prompt, {_assistant('completion')} AS completion, label, "
                f"{_PROV}, assessment, score, candidate_id, model_id, review_ids, "
                "trace_id || ':' || coalesce(review_ids, 'None') AS row_id",
}
TEXT_LANES = {"preference_text": "preference", "sft_text": "sft", "unpaired_text": "unpaired"}
"""The plain-string twin of each conversational lane (TRL's standard formats): the same rows,
the prompt rendered by core.conversation.prompt_text_sql, answers as plain strings."""
TEXT_SELECT = {
    "preference_text": f"{prompt_text_sql('prompt')} AS prompt, chosen[1].content AS chosen, "
                       f"rejected[1].content AS rejected, {_PROV}, outcome, row_id, "
                       "dataset_version",
    "sft_text": f"{prompt_text_sql('messages[:-1]')} AS prompt, messages[-1].content AS "
                f"completion, {_PROV}, source, row_id, dataset_version",
    "unpaired_text": f"{prompt_text_sql('prompt')} AS prompt, completion[1].content AS "
                     f"completion, label, {_PROV}, assessment, score, row_id, dataset_version",
}
TRAINING_PROMPT = {"preference": final_user_sql("prompt"), "sft": final_user_sql("messages"),
                   "unpaired": final_user_sql("prompt")}
"""Per conversational lane, the final user turn of a row: what the frozen set's prompts are
compared with."""


def training_sql(sources: Mapping[str, str]) -> str:
    """Every training row of the lanes in `sources` (DuckDB FROM-clauses by lane): lane,
    trace_id, the final user turn as `prompt`, prompt_fingerprint."""
    return " UNION ALL ".join(
        f"SELECT '{lane}' AS lane, trace_id, {TRAINING_PROMPT[lane]} AS prompt, "
        f"prompt_fingerprint FROM {source}" for lane, source in sources.items())


_INPUT_TYPES = {"label": pa.bool_(), "score": pa.int64(), "n_reviews": pa.int64()}
LANE_INPUT = {
    "preference": ["trace_id", "slice", "redaction_version", "prompt_template_version",
                   "policy_version", "prompt_fingerprint", "prompt", "prompt_messages",
                   "chosen", "rejected", "outcome", "chosen_candidate_id",
                   "rejected_candidate_id", "chosen_model_id", "rejected_model_id",
                   "chosen_generation", "rejected_generation",
                   "rubric_version", "deciding_criterion", "reviewer_ids", "review_ids",
                   "n_reviews", "criteria_json", "round_id", "arm"],
    "sft": ["trace_id", "slice", "redaction_version", "prompt_template_version",
            "policy_version", "prompt_fingerprint", "prompt", "prompt_messages", "answer",
            "source", "review_ids", "reviewer_ids", "rubric_version", "round_id", "arm"],
    "unpaired": ["trace_id", "slice", "redaction_version", "prompt_template_version",
                 "policy_version", "prompt_fingerprint", "prompt", "prompt_messages",
                 "completion", "label", "assessment", "score", "candidate_id", "model_id",
                 "rubric_version",
                 "reviewer_ids", "review_ids", "round_id", "arm"],
}


@dataclass
class ReleaseCandidate:
    """Where each lane's file was written, and what changed against the parent."""

    files: dict[str, Path]
    rows: dict[str, int] = field(default_factory=dict)
    new_rows: dict[str, int] = field(default_factory=dict)
    retracted_rows: dict[str, int] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(self.new_rows.values()) or any(self.retracted_rows.values())


LANE_ROW_GROUP_ROWS = 20_000
"""Rows per Parquet row group of a lane file. DuckDB's default (122,880 rows) makes a row group
of preference pairs so large that reading the file back as the next release's parent runs out of
the release's DuckDB memory limit; row groups this size sort within it. Training loaders also
stream a file a row group at a time."""


def empty_input(lane: str) -> pa.Table:
    """A lane's source table with no rows (a window without partitions)."""
    return pa.schema([(c, _INPUT_TYPES.get(c, pa.string())) for c in LANE_INPUT[lane]]
                     ).empty_table()


def write_candidate(con: duckdb.DuckDBPyConnection, window: Mapping[str, str | None],
                    parent: Mapping[str, str | None], version: str, retracted: Collection[str],
                    folder: Path) -> ReleaseCandidate:
    """Parent rows (keeping their dataset_version) + window rows not yet released -
    retractions, one sorted Parquet file per lane in `folder`.

    `window[lane]` and `parent[lane]` are DuckDB FROM-clauses (e.g. `read_parquet([...])`) or
    None when there is nothing of that lane.
    """
    con.register("retracted", pa.table({"trace_id": pa.array(sorted(retracted), pa.string())}))
    out = ReleaseCandidate(files={})
    for lane in LANES:
        source = window.get(lane)
        if source is None:
            con.register(f"empty_{lane}", empty_input(lane))
            source = f"empty_{lane}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW fresh AS SELECT {LANE_SELECT[lane]}, "
                    f"'{sql_escaped(version)}' AS dataset_version FROM {source}")
        old = (_conversational(con, lane, parent[lane]) if parent.get(lane)
               else "(SELECT * FROM fresh WHERE false)")
        con.execute(f"CREATE OR REPLACE TEMP VIEW old AS SELECT * FROM {old}")
        con.execute("""
            CREATE OR REPLACE TEMP VIEW lane AS
            SELECT * FROM (
                SELECT *, 0 AS _origin FROM old ANTI JOIN retracted USING (trace_id)
                UNION ALL BY NAME
                SELECT *, 1 AS _origin FROM (SELECT * FROM fresh ANTI JOIN old USING (row_id))
                    ANTI JOIN retracted USING (trace_id))
        """)
        path = folder / f"{lane}.parquet"
        con.execute(f"COPY (SELECT * EXCLUDE (_origin) FROM lane ORDER BY row_id, _origin) "
                    f"TO '{sql_escaped(str(path))}' (FORMAT parquet, COMPRESSION zstd, "
                    f"ROW_GROUP_SIZE {LANE_ROW_GROUP_ROWS})")
        kept, new = con.execute("SELECT count(*) FILTER (WHERE _origin = 0), "
                                "count(*) FILTER (WHERE _origin = 1) FROM lane").fetchall()[0]
        total_old = con.execute("SELECT count(*) FROM old").fetchall()[0][0]
        out.files[lane] = path
        out.rows[lane] = pq.ParquetFile(path).metadata.num_rows
        out.new_rows[lane] = int(new)
        out.retracted_rows[lane] = int(total_old - kept)
    for text_lane, lane in TEXT_LANES.items():
        path = folder / f"{text_lane}.parquet"
        con.execute(f"COPY (SELECT {TEXT_SELECT[text_lane]} FROM "
                    f"read_parquet('{sql_escaped(str(out.files[lane]))}') ORDER BY row_id) TO "
                    f"'{sql_escaped(str(path))}' (FORMAT parquet, COMPRESSION zstd, "
                    f"ROW_GROUP_SIZE {LANE_ROW_GROUP_ROWS})")
        out.files[text_lane] = path
    return out


_PLAIN_COLUMNS = {"preference": {"prompt": "user", "chosen": "assistant",
                                  "rejected": "assistant"},
                  "unpaired": {"prompt": "user", "completion": "assistant"}}
"""The columns a release made before the conversational format held as plain strings."""


def _conversational(con: duckdb.DuckDBPyConnection, lane: str, source: str) -> str:
    """A parent lane as conversational rows: a release written before the prompt became
    messages holds plain strings, each becomes a one-message list (the role it had), so the
    new release keeps the parent's rows in the one format of its configs."""
    types = {row[0]: row[1] for row in con.execute(
        f"DESCRIBE SELECT * FROM {source}").fetchall()}
    replaced = [f"[{{'role': '{role}', 'content': {column}}}] AS {column}"
                for column, role in _PLAIN_COLUMNS.get(lane, {}).items()
                if types.get(column) == "VARCHAR"]
    if not replaced:
        return source
    return f"(SELECT * REPLACE ({', '.join(replaced)}) FROM {source})"


def sql_escaped(text: str) -> str:
    """Text made safe inside a single-quoted DuckDB string literal."""
    return text.replace("'", "''")
