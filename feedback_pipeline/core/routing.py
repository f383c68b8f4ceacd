"""The seed's routing rule (listing 01), vectorised over a trace table.

Reserved traces never reach a training queue; ids listed in the frozen evaluation set are
reserved whatever the trace says. A trace may land in two queues (frozen and incident).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

FROZEN_EVALUATION = "FROZEN_EVALUATION"
INCIDENT_REVIEW = "INCIDENT_REVIEW"
PREFERENCE_QUEUE = "PREFERENCE_QUEUE"
DEMONSTRATION_QUEUE = "DEMONSTRATION_QUEUE"
NEEDS_TRIAGE = "NEEDS_TRIAGE"
DESTINATIONS = (
    FROZEN_EVALUATION,
    INCIDENT_REVIEW,
    PREFERENCE_QUEUE,
    DEMONSTRATION_QUEUE,
    NEEDS_TRIAGE,
)
TRAINING_QUEUES = (PREFERENCE_QUEUE, DEMONSTRATION_QUEUE)


def candidate_counts(candidates: pd.Series) -> np.ndarray:
    return np.fromiter((0 if c is None else len(c) for c in candidates), dtype=np.int64,
                       count=len(candidates))


def route(traces: pd.DataFrame, frozen_ids: Collection[str] = ()) -> pd.DataFrame:
    """One row per (trace, destination) with the rule that sent it there."""
    reserved = traces["reserved_for_evaluation"].fillna(False).to_numpy(bool) | traces[
        "trace_id"
    ].isin(frozen_ids).to_numpy(bool)
    listed = traces["trace_id"].isin(frozen_ids).to_numpy(bool)
    unsafe = traces["unsafe_effect"].fillna(False).to_numpy(bool)
    pair = candidate_counts(traces["candidates"]) >= 2
    approved = traces["approved_answer"].fillna("").astype(str).str.strip().ne("").to_numpy(bool)
    trainable = ~reserved & ~unsafe

    rules = [
        (FROZEN_EVALUATION, reserved,
         np.where(listed, "listed in the frozen evaluation set", "reserved_for_evaluation")),
        (INCIDENT_REVIEW, unsafe, "unsafe_effect recorded"),
        (PREFERENCE_QUEUE, trainable & pair, "two or more candidates"),
        (DEMONSTRATION_QUEUE, trainable & ~pair & approved, "approved answer"),
        (NEEDS_TRIAGE, trainable & ~pair & ~approved, "no candidate pair and no approved answer"),
    ]
    parts = []
    for destination, mask, reason in rules:
        if not mask.any():
            continue
        part = traces.loc[mask, ["trace_id", "slice"]].copy()
        part["destination"] = destination
        part["reason"] = reason[mask] if isinstance(reason, np.ndarray) else reason
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["trace_id", "slice", "destination", "reason"])
    out = pd.concat(parts, ignore_index=True)
    order = {d: i for i, d in enumerate(DESTINATIONS)}
    out["_order"] = out["destination"].map(order)
    return out.sort_values(["trace_id", "_order"]).drop(columns="_order").reset_index(drop=True)
