"""The dataset manifest and the promotion decision (seed listings 10 and 11).

Gates are evaluated into plain records; the manifest states exactly why a dataset may, or may
not, be used for training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
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


def next_version(existing: Iterable[str], dataset_name: str) -> tuple[str, str | None]:
    """(new version, parent version or None) for a dataset name, from the versions on disk."""
    numbers = sorted(n for v in existing if (n := version_number(v, dataset_name)) is not None)
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
