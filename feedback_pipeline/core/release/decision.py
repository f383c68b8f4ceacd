"""The promotion decision: what a release candidate measured -> its gates and its manifest.

The stage measures (DuckDB over the window's partitions, the residue and unsafe-pair scans, the
leakage search, the parent's verification) and hands the figures to `decide_release`, which
knows nothing of files or Dagster: every gate's rule, value and reason, and the manifest with
the seed's fields, are decided here, once, so the CLI, the checks and the tests read the same
rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from feedback_pipeline.core import agreement
from feedback_pipeline.core.leakage import leaked_ids
from feedback_pipeline.core.manifest import (
    REQUIRED_FIELDS,
    Gate,
    QuarantineCount,
    missing_fields,
    promotion_reasons,
    quarantine_gate,
    slice_gate,
)

MANIFEST_POLICY_EXTRAS = ("license", "license_name", "license_link", "language")


def residue_gate(offending_per_scan: Iterable[list[str]]) -> Gate:
    """The redaction_residue gate over the ids each scan found."""
    ids = sorted({tid for found in offending_per_scan for tid in found})
    return Gate("redaction_residue", not ids, len(ids),
                "independent residue scan over every training file and review task",
                offending=ids, reason=f"{len(ids)} row(s) hold raw identifiers" if ids else None)


def agreement_gate(reviews: pd.DataFrame, gold: list[dict],
                   policy: Any) -> tuple[Gate, dict, agreement.AgreementReport]:
    """The window's agreement over `reviews` (core.agreement.pairwise_input rows)."""
    report = agreement.agreement_report(
        reviews, gold=pd.DataFrame(gold) if gold else None,
        bootstrap=policy.bootstrap_samples, seed=policy.random_seed,
        min_items=policy.min_duplicate_items, gold_miss_prior=policy.gold_prior)
    value = agreement.gate_value(report, policy.agreement_statistic, policy.agreement_gate_on)
    summary = report.summary
    passed = value is not None and value >= policy.kappa_gate
    gated = summary.get("gated_statistic") or policy.agreement_statistic
    if value is None:
        reason = summary.get("insufficient_reason") or "too few duplicate reviews to measure"
    elif not passed:
        reason = f"{gated} {value:.3f} < gate {policy.kappa_gate}"
    else:
        reason = None
    record = {
        "statistic": policy.agreement_statistic,
        # the statistic the gate actually used and why, when the declared one is undefined for
        # the data (Cohen's kappa with more than two reviewers falls back to Conger's)
        "gated_statistic": gated,
        "gated_statistic_note": summary.get("gated_statistic_note"),
        "level": summary.get(f"{gated}_level", "nominal"),
        "sufficient": summary.get("sufficient"),
        "insufficient_reason": summary.get("insufficient_reason"),
        "ci_warning": summary.get("ci_warning"),
        "flagged_reviewers": report.by_reviewer.loc[report.by_reviewer["flagged"],
                                                    "reviewer_id"].tolist()
        if not report.by_reviewer.empty else [],
        "gate_on": policy.agreement_gate_on,
        "value": None if value is None else round(float(value), 4),
        "policy_gate": policy.kappa_gate,
        **{k: summary.get(k) for k in (
            "cohens_kappa", "cohens_kappa_note", "conger_kappa", "conger_kappa_ci_low",
            "conger_kappa_ci_high", "fleiss_kappa", "fleiss_kappa_ci_low", "fleiss_kappa_ci_high",
            "fleiss_kappa_method", "gwet_ac1", "observed_agreement", "chance_agreement",
            "kappa_ci_low", "kappa_ci_high", "krippendorff_alpha_nominal", "alpha_ordinal",
            "alpha_interval", "alpha_ratio", "n_items", "n_reviewers", "labels",
            "confusion_matrix", "kappa_method", "statistic_definitions")},
    }
    gate = Gate("agreement_gate", passed, record["value"],
                f"{gated} ({policy.agreement_gate_on}) >= {policy.kappa_gate}",
                reason=reason)
    return gate, record, report


def slice_agreement_gate(report: agreement.AgreementReport, reviews: pd.DataFrame,
                         policy: Any) -> tuple[Gate, dict[str, dict], dict[str, list[str]]]:
    """The declared slice gates (policy slice_gates) over the report's by_slice table:
    (gate, slices routed to adjudication with their trace count, their trace ids)."""
    slices = {str(r["slice"]): r for r in report.by_slice.to_dict("records")}
    ids: dict[str, list[str]] = {}
    if policy.slice_gates and not reviews.empty:
        named = reviews["slice"].astype(object).where(
            reviews["slice"].notna() & (reviews["slice"].astype(str) != ""), agreement.NO_SLICE)
        for name, group in reviews["trace_id"].astype(str).groupby(named.astype(str)):
            if name in policy.slice_gates:
                ids[name] = sorted(set(group))
    gate, routed = slice_gate(slices, policy.slice_gates, policy.agreement_statistic,
                              {name: len(v) for name, v in ids.items()})
    return gate, routed, {name: ids.get(name, []) for name in routed}


@dataclass
class ReleaseEvidence:
    """Everything the candidate measured, as plain values: what `decide_release` weighs."""

    version: str
    parent: str | None
    days: list[str]
    parent_gate: Gate
    agreement_gate: Gate
    agreement_record: dict[str, Any]
    slice_gate: Gate
    slices_routed: dict[str, dict]
    standing: dict[str, dict]
    suspended: list[str]
    rows: dict[str, int]
    new_rows: dict[str, int]
    retracted_rows: dict[str, int]
    has_changes: bool
    left_out_by_suspension: dict[str, int]
    inherited_left_out: dict[str, int]
    held_for_slices: dict[str, int]
    rubric_conflicts: int
    incident_reasons: list[str]
    adjudication_reasons: list[str]
    review_cost: dict[str, Any]
    frozen_set_id: str
    frozen_set_size: int
    leaks: pd.DataFrame
    near_duplicate_threshold: float
    unsafe_pairs: list[str]
    residue_found: list[list[str]]
    quarantine: dict[str, QuarantineCount]
    run_id: str
    code_version: str
    created_at: str
    jsonl_files: list[str] = field(default_factory=list)


@dataclass
class ReleaseDecision:
    """The gates, in the order the checks report them, and the manifest that records them."""

    gates: list[Gate]
    manifest: dict[str, Any]

    @property
    def promoted(self) -> bool:
        return all(g.passed for g in self.gates)


def decide_release(evidence: ReleaseEvidence, policy: Any) -> ReleaseDecision:
    """Every promotion gate and the manifest, from what the candidate measured."""
    e = evidence
    leaked = leaked_ids(e.leaks)
    leak = Gate("evaluation_leakage", e.leaks.empty, len(leaked),
                "by id, by normalised prompt fingerprint, and by near-duplicate (word "
                f"shingle Jaccard >= {e.near_duplicate_threshold}) vs every training row, "
                "parent rows included", offending=leaked,
                reason="; ".join(f"{r.training_id} ({r.lane}) ~ {r.frozen_id} by {r.rule}"
                                 for r in e.leaks.itertuples()) or None)
    unsafe = Gate("unsafe_pairs_accepted", not e.unsafe_pairs, len(e.unsafe_pairs),
                  "no chosen answer marked unsafe by its reviewers", offending=e.unsafe_pairs,
                  reason=f"chosen answer unsafe in {', '.join(e.unsafe_pairs)}"
                  if e.unsafe_pairs else None)
    residue = residue_gate(e.residue_found)
    both_bad = sum(1 for r in e.incident_reasons if str(r).startswith("BOTH_BAD"))
    ties = sum(1 for r in e.adjudication_reasons if str(r).startswith("tie"))
    manifest: dict[str, Any] = {
        "dataset_version": e.version,
        "dataset_name": policy.dataset_name,
        "source_window": f"{e.days[0]}/{e.days[-1]}" if e.days else None,
        "selection_policy_version": policy.selection_policy_version,
        "redaction_version": policy.redaction_version,
        "reidentification_access_rule": policy.reidentification_access_rule,
        "rubric_version": policy.rubric_version,
        "reviewer_training_set": policy.reviewer_training_set,
        "agreement_report": e.agreement_record,
        "row_counts": {
            "demonstrations": e.rows["sft"],
            "preferences": e.rows["preference"],
            "pointwise": e.rows["unpaired"],
            "ties": ties,
            "both_bad": both_bad,
            "rejected": e.rubric_conflicts,
            "adjudication": len(e.adjudication_reasons),
            "new": e.new_rows,
            "retracted": e.retracted_rows,
        },
        "review_cost": e.review_cost,
        "frozen_evaluation_set": e.frozen_set_id,
        "frozen_evaluation_set_size": e.frozen_set_size,
        "leakage_check_passed": leak.passed,
        "both_bad_escalated": both_bad,
        "parent_dataset": e.parent,
        **{k: policy.extra[k] for k in MANIFEST_POLICY_EXTRAS if k in policy.extra},
        "dagster_run_id": e.run_id,
        "code_version": e.code_version,
        "created_at": e.created_at,
        # rows the suspension removed from the parent's are a change even with nothing new
        "has_changes": e.has_changes or any(e.inherited_left_out.values()),
        "reviewer_standing": e.standing,
        "reviewer_suspension_rule": policy.suspension,
        "suspended_reviewers": e.suspended,
        "rows_left_out_by_suspension": e.left_out_by_suspension,
        "slice_gates": e.slice_gate.value,
        "slices_routed_to_adjudication": e.slices_routed,
        "rows_held_for_slice_adjudication": e.held_for_slices,
        "jsonl_files": e.jsonl_files,
    }
    missing = missing_fields(manifest)
    complete = Gate("manifest_complete", not missing, len(missing),
                    f"every seed field present: {', '.join(REQUIRED_FIELDS)}",
                    offending=missing, reason=f"missing {', '.join(missing)}" if missing else None)
    manifest["quarantine"] = {kind: {"quarantined": c.quarantined, "kept": c.kept,
                                     "share": round(c.share, 4), "reasons": c.reasons}
                              for kind, c in e.quarantine.items()}
    quarantine = quarantine_gate(e.quarantine, policy.max_quarantined_share)
    gates = [residue, leak, e.agreement_gate, e.slice_gate, unsafe, complete, quarantine,
             e.parent_gate]
    manifest["gates"] = {g.name: {"passed": g.passed, "value": g.value, "rule": g.rule,
                                  "reason": g.reason} for g in gates}
    manifest["promotion_reasons"] = promotion_reasons(gates)
    return ReleaseDecision(gates, manifest)
