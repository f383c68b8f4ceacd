"""The dataset manifest and the promotion decision (seed listings 10 and 11).

Gates are evaluated into plain records; the manifest states exactly why a dataset may, or may
not, be used for training.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

REQUIRED_FIELDS = (
    "dataset_version",
    "source_window",
    "selection_policy_version",
    "redaction_version",
    "reidentification_access_rule",
    "rubric_version",
    "reviewer_training_set",
    "agreement_report",
    "row_counts",
    "frozen_evaluation_set",
    "leakage_check_passed",
    "both_bad_escalated",
    "parent_dataset",
)

GATE_REASONS = {
    "redaction_residue": "redaction failed",
    "evaluation_leakage": "evaluation leakage",
    "agreement_gate": "agreement below declared gate",
    "unsafe_pairs_accepted": "unsafe pair accepted as preference",
    "manifest_complete": "manifest incomplete",
    "quarantine_share": "quarantine above the declared share",
    "parent_release_verified": "parent release failed verification",
    "slice_agreement": "slice agreement below declared gate",
}


@dataclass(frozen=True)
class Gate:
    """One promotion gate: its value, whether it passed, and why (offending ids, the rule)."""

    name: str
    passed: bool
    value: Any
    rule: str
    offending: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def failure_reason(self) -> str:
        base = GATE_REASONS.get(self.name, self.name)
        return f"{base}: {self.reason}" if self.reason and base != self.reason else base

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_fields(manifest: Mapping[str, Any]) -> list[str]:
    return sorted(f for f in REQUIRED_FIELDS if f not in manifest or manifest[f] is None and
                  f != "parent_dataset")


def promotion_reasons(gates: Iterable[Gate]) -> list[str]:
    """The seed's reason strings for every failed gate, in gate order."""
    return [GATE_REASONS.get(g.name, g.name) for g in gates if not g.passed]


_VERSION = re.compile(r"^(?P<name>.+)-v(?P<n>\d+)$")


def version_number(version: str, dataset_name: str) -> int | None:
    match = _VERSION.match(version)
    if not match or match.group("name") != dataset_name:
        return None
    return int(match.group("n"))


def next_version(existing: Iterable[str], dataset_name: str,
                 declared_parent: str | None = None) -> tuple[str, str | None]:
    """(new version, parent version or None) for a dataset name, from the versions on disk
    and, for a series continued from elsewhere, the policy's declared parent (numbering
    starts after whichever is later)."""
    versions = [*existing, *([declared_parent] if declared_parent else [])]
    numbers = sorted(n for v in versions if (n := version_number(v, dataset_name)) is not None)
    parent = f"{dataset_name}-v{numbers[-1]}" if numbers else None
    return f"{dataset_name}-v{(numbers[-1] + 1) if numbers else 1}", parent


@dataclass(frozen=True)
class QuarantineCount:
    """One table's quarantine over a window: lines set aside, lines kept, and why (by
    contract.reason_category)."""

    quarantined: int
    kept: int
    reasons: dict[str, int]

    @property
    def share(self) -> float:
        total = self.quarantined + self.kept
        return self.quarantined / total if total else 0.0


def quarantine_gate(counts: Mapping[str, QuarantineCount], max_share: float) -> Gate:
    """Fails when any table quarantined more than `max_share` of its lines: a surge (a changed
    log format, an export from the wrong project) is a failed gate with the reason, never a
    quiet promotion of what was left."""
    over = {table: c for table, c in counts.items() if c.share > max_share}
    reason = "; ".join(
        f"{table} quarantined {c.quarantined} of {c.quarantined + c.kept} lines "
        f"({c.share:.1%}), mostly {max(c.reasons, key=c.reasons.get)!r}"
        for table, c in over.items()) or None
    return Gate("quarantine_share", not over,
                {table: round(c.share, 4) for table, c in counts.items()},
                f"quarantined share of each table's lines <= {max_share}",
                offending=sorted(over), reason=reason)


SLICE_STATISTIC_COLUMNS = {"krippendorff_alpha_nominal": "alpha"}
"""The agreement by_slice column a slice gate reads for the policy's statistic; every other
statistic reads `kappa` (Conger's kappa over the slice's review pairs: the per-slice table has
no Fleiss, Gwet or score-alpha column)."""


def slice_gate(slices: Mapping[str, Mapping[str, Any]], gates: Mapping[str, Mapping[str, Any]],
               statistic: str, traces: Mapping[str, int] | None = None
               ) -> tuple[Gate, dict[str, dict[str, Any]]]:
    """The declared per-slice agreement gates (policy slice_gates) over the agreement report's
    by_slice rows (`slices`: slice -> {kappa, alpha, n_items}).

    A slice with action "block" fails the gate when its statistic is under min_statistic, is
    undefined, or rests on fewer than min_items duplicate-reviewed items; the reason names the
    slice. A slice with action "adjudicate" never blocks: under its gate (or short of items) it
    is returned in the second value, slice -> {n_traces, reason}, with `traces[slice]` the
    number of the window's traces in it (for the manifest's slices_routed_to_adjudication)."""
    column = SLICE_STATISTIC_COLUMNS.get(statistic, "kappa")
    traces = traces or {}
    values: dict[str, Any] = {}
    failing: list[str] = []
    reasons: list[str] = []
    routed: dict[str, dict[str, Any]] = {}
    for name in sorted(gates):
        gate = gates[name]
        floor, min_items = float(gate["min_statistic"]), int(gate["min_items"])
        action = gate.get("action", "block")
        row = slices.get(name) or {}
        n = int(row.get("n_items") or 0)
        value = row.get(column)
        value = None if value is None or not math.isfinite(float(value)) else float(value)
        if n < min_items:
            problem = f"slice {name}: only {n} duplicate-reviewed items, {min_items} needed"
        elif value is None:
            problem = f"slice {name}: {column} undefined ({n} items)"
        elif value < floor:
            problem = f"slice {name}: {column} {value:.2f} < {floor:.2f} ({n} items)"
        else:
            problem = None
        values[name] = {column: None if value is None else round(value, 4), "n_items": n,
                        "min_statistic": floor, "min_items": min_items, "action": action,
                        "passed": problem is None}
        if problem is None:
            continue
        if action == "adjudicate":
            routed[name] = {"n_traces": int(traces.get(name, 0)), "reason": problem}
        else:
            failing.append(name)
            reasons.append(problem)
    rule = (f"each declared slice's {column} >= its min_statistic on >= min_items items "
            "(action block); action adjudicate routes the slice instead of blocking")
    return Gate("slice_agreement", not failing, values, rule, offending=failing,
                reason="; ".join(reasons) or None), routed


SUSPENDED, REINSTATED = "suspended", "reinstated"


@dataclass(frozen=True)
class GoldAnswer:
    """One gold answer of a reviewer, as the standing rule weighs it."""

    reviewer_id: str
    reviewed_at: datetime | None
    miss: bool


def reviewer_standing(flagged: Iterable[str], answers: Iterable[GoldAnswer],
                      previous: Mapping[str, Mapping[str, Any]] | None,
                      rule: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each tracked reviewer's standing for a release: pseudonym -> {status, suspended_since,
    requalify_answers, requalify_misses, reason}.

    With rule["on"] == "gold_flag", a reviewer flagged by the gold check in the window is
    suspended from their latest gold answer in the window (the evidence's end;
    `suspended_since`), unless `previous` (the parent release's reviewer_standing) already
    tracks them, in which case their recorded suspended_since stands. A tracked reviewer is
    reinstated when their latest rule["requalify_items"] gold answers after suspended_since hold
    at most rule["requalify_max_misses"] misses; otherwise suspended. A suspended reviewer
    stays suspended until they requalify, flagged again or not; a reinstated one is weighed
    again only when the gold check flags them again. Answers without reviewed_at never count
    as after a suspension."""
    if rule.get("on", "gold_flag") == "never":
        return {}
    need, allowed = int(rule["requalify_items"]), int(rule["requalify_max_misses"])
    flagged = set(flagged)
    previous = dict(previous or {})
    by_reviewer: dict[str, list[GoldAnswer]] = {}
    for answer in answers:
        by_reviewer.setdefault(answer.reviewer_id, []).append(answer)
    out: dict[str, dict[str, Any]] = {}
    for reviewer in sorted(flagged | set(previous)):
        mine = [a for a in by_reviewer.get(reviewer, []) if a.reviewed_at is not None]
        record = previous.get(reviewer)
        if record is not None:
            since = _parse_time(record.get("suspended_since"))
            if record.get("status") == REINSTATED and reviewer not in flagged:
                out[reviewer] = dict(record)
                continue
        else:
            since = max((a.reviewed_at for a in mine), default=None)
        after = sorted((a for a in mine if since is not None and a.reviewed_at > since),
                       key=lambda a: a.reviewed_at)[-need:]
        misses = sum(a.miss for a in after)
        requalified = since is not None and len(after) >= need and misses <= allowed
        if requalified:
            reason = (f"requalified: {misses} miss(es) in the latest {need} gold answers "
                      f"after the suspension (at most {allowed})")
        elif since is None:
            reason = ("flagged by the gold check; its gold answers carry no reviewed_at, so "
                      "no re-qualification can be counted after the suspension")
        else:
            reason = (("flagged by the gold check" if reviewer in flagged else
                       "suspended by an earlier release") +
                      f"; {len(after)} of {need} re-qualification gold answers since, "
                      f"{misses} missed (at most {allowed})")
        out[reviewer] = {"status": REINSTATED if requalified else SUSPENDED,
                         "suspended_since": since.isoformat() if since else None,
                         "requalify_answers": len(after), "requalify_misses": int(misses),
                         "reason": reason}
    return out


def suspended(standing: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The pseudonyms whose labels a release leaves out."""
    return sorted(r for r, s in standing.items() if s.get("status") == SUSPENDED)


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
