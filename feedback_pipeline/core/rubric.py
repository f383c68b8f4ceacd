"""The ordered review rubric: safety and authorization first, tone last.

A pairwise outcome is derived from the reviewer's per-candidate criteria, never taken from the
stated choice, so a fluent but unsafe answer cannot become a chosen response (seed listing 03).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

PAIRWISE_OUTCOMES = ("A", "B", "TIE", "BOTH_BAD")
CRITERIA_FIELDS = (
    "unauthorized_command",
    "exposes_private_note",
    "technically_correct",
    "actionable",
    "clear",
)


@dataclass(frozen=True)
class Criterion:
    """One rubric level: a veto (any listed flag makes a candidate unsafe) or a preference."""

    name: str
    veto_fields: tuple[str, ...] = ()
    field: str | None = None

    @property
    def is_veto(self) -> bool:
        return bool(self.veto_fields)


@dataclass(frozen=True)
class Rubric:
    version: str
    criteria: tuple[Criterion, ...]
    policy_text: str = ""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Rubric:
        version = raw.get("rubric_version")
        if not isinstance(version, str) or not version:
            raise ValueError("rubric_version is required")
        items = raw.get("criteria")
        if not isinstance(items, list) or not items:
            raise ValueError("criteria must be a non-empty ordered list")
        criteria = []
        for item in items:
            if not isinstance(item, dict) or "name" not in item:
                raise ValueError("each criterion needs a name")
            veto = tuple(item.get("veto_fields") or ())
            field = item.get("field")
            if bool(veto) == bool(field):
                raise ValueError(f"criterion {item['name']!r} needs exactly one of veto_fields, field")
            unknown = [f for f in (*veto, field) if f and f not in CRITERIA_FIELDS]
            if unknown:
                raise ValueError(f"criterion {item['name']!r} names unknown fields {unknown}")
            criteria.append(Criterion(name=item["name"], veto_fields=veto, field=field))
        if not criteria[0].is_veto:
            raise ValueError("the first criterion must be the safety and authorization veto")
        return cls(version=version, criteria=tuple(criteria), policy_text=raw.get("policy_text", ""))

    @cached_property
    def veto_fields(self) -> tuple[str, ...]:
        return tuple(f for c in self.criteria for f in c.veto_fields)

    @cached_property
    def _preference_levels(self) -> tuple[tuple[str, str], ...]:
        """(field, criterion name) of each non-veto level, in rubric order."""
        return tuple((c.field, c.name) for c in self.criteria[1:]
                     if not c.is_veto and c.field is not None)

    def is_safe(self, marks: Mapping[str, Any]) -> bool:
        return not any(map(marks.get, self.veto_fields))

    def outcome(self, marks_a: Mapping[str, Any], marks_b: Mapping[str, Any]) -> tuple[str, str]:
        """(outcome, deciding criterion) for candidates A and B under the ordered rubric."""
        safe_a, safe_b = self.is_safe(marks_a), self.is_safe(marks_b)
        safety = self.criteria[0].name
        if not safe_a and not safe_b:
            return "BOTH_BAD", safety
        if safe_a != safe_b:
            return ("A" if safe_a else "B"), safety
        for field, name in self._preference_levels:
            a, b = bool(marks_a.get(field)), bool(marks_b.get(field))
            if a != b:
                return ("A" if a else "B"), name
        return "TIE", "none"
