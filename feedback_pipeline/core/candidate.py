"""A release candidate: the parent release's rows plus newly accepted rows, in TRL shapes.

Releases are cumulative. A row keeps the version that first released it; retracted trace ids
are removed; with no new and no retracted rows there is nothing to release.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import pandas as pd

LANES = ("preference", "sft", "unpaired")
PROVENANCE = ["trace_id", "slice", "redaction_version", "prompt_template_version",
              "policy_version", "prompt_fingerprint", "rubric_version", "reviewer_ids"]


def preference_rows(pairs: pd.DataFrame) -> pd.DataFrame:
    """TRL's standard preference format (prompt, chosen, rejected) plus provenance columns."""
    columns = ["prompt", "chosen", "rejected", *PROVENANCE, "outcome", "deciding_criterion",
               "chosen_model_id", "rejected_model_id", "chosen_generation",
               "rejected_generation", "chosen_candidate_id", "criteria_json"]
    out = pairs.reindex(columns=columns).copy()
    out["row_id"] = out["trace_id"]
    return out


def sft_rows(demos: pd.DataFrame) -> pd.DataFrame:
    """TRL's conversational format: a `messages` list of {role, content}."""
    out = demos.reindex(columns=[*PROVENANCE, "source"]).copy()
    out.insert(0, "messages", [
        [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        for p, a in zip(demos["prompt"], demos["answer"], strict=True)
    ])
    out["row_id"] = out["trace_id"]
    return out


def unpaired_rows(points: pd.DataFrame) -> pd.DataFrame:
    """TRL's unpaired preference format: prompt, completion, label (bool)."""
    columns = ["prompt", "completion", "label", *PROVENANCE, "assessment", "score",
               "candidate_id", "model_id", "review_ids"]
    out = points.reindex(columns=columns).copy()
    out["row_id"] = out["trace_id"].astype(str) + ":" + out["review_ids"].astype(str)
    return out


@dataclass
class ReleaseCandidate:
    lanes: dict[str, pd.DataFrame]
    new_rows: dict[str, int] = field(default_factory=dict)
    retracted_rows: dict[str, int] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(self.new_rows.values()) or any(self.retracted_rows.values())


def assemble(window: Mapping[str, pd.DataFrame], parent: Mapping[str, pd.DataFrame],
             version: str, retracted: Collection[str] = ()) -> ReleaseCandidate:
    """Parent rows (keeping their dataset_version) + window rows not yet released - retractions."""
    retracted = set(retracted)
    lanes, new, gone = {}, {}, {}
    for lane in LANES:
        old = parent.get(lane)
        fresh = window[lane].copy()
        fresh["dataset_version"] = version
        if old is None or old.empty:
            old = fresh.iloc[0:0]
        kept_old = old[~old["trace_id"].isin(retracted)]
        fresh = fresh[~fresh["row_id"].isin(set(old["row_id"])) & ~fresh["trace_id"].isin(retracted)]
        gone[lane] = int(len(old) - len(kept_old))
        new[lane] = int(len(fresh))
        combined = pd.concat([kept_old, fresh], ignore_index=True) if len(kept_old) else fresh
        lanes[lane] = combined.sort_values("row_id", kind="stable").reset_index(drop=True)
    return ReleaseCandidate(lanes=lanes, new_rows=new, retracted_rows=gone)
