"""Train/eval leakage: every training row against the frozen evaluation set, in DuckDB.

Two rules here: the same id, and the same normalised redacted prompt under another id (the
fingerprint from core.fingerprint). Each finding names both ids and the rule that matched.
"""

from __future__ import annotations

import duckdb
import pandas as pd

LEAK_COLUMNS = ["rule", "lane", "training_id", "frozen_id"]


def find_leaks(training: pd.DataFrame, frozen: pd.DataFrame) -> pd.DataFrame:
    """Leaks between training rows (lane, trace_id, prompt_fingerprint) and frozen rows
    (trace_id, prompt_fingerprint; the fingerprint may be null when the trace is unseen)."""
    if training.empty or frozen.empty:
        return pd.DataFrame(columns=LEAK_COLUMNS)
    with duckdb.connect() as con:
        con.register("training", training[["lane", "trace_id", "prompt_fingerprint"]])
        con.register("frozen", frozen[["trace_id", "prompt_fingerprint"]])
        return con.execute(
            """
            SELECT DISTINCT 'id' AS rule, t.lane, t.trace_id AS training_id, f.trace_id AS frozen_id
            FROM training t JOIN frozen f ON t.trace_id = f.trace_id
            UNION
            SELECT DISTINCT 'content', t.lane, t.trace_id, f.trace_id
            FROM training t JOIN frozen f
              ON t.prompt_fingerprint = f.prompt_fingerprint AND t.trace_id <> f.trace_id
            ORDER BY 1, 3, 4, 2
            """
        ).df()


def leaked_ids(leaks: pd.DataFrame) -> list[str]:
    return sorted(set(leaks["training_id"]))
