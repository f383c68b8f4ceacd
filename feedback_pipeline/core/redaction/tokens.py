"""Tokens: the per-trace value -> token table and the span overlap rule.

`TokenTable` numbers each kind's values in order of first appearance within one trace, so the
same value is the same token in every field of a trace; its public methods are the only way
the redactor reads or adds entries. Overlapping candidate spans resolve by priority, then
length.
"""

from __future__ import annotations

import re
from collections.abc import ItemsView, KeysView, Mapping, ValuesView

from feedback_pipeline.core.redaction.detectors import Detector


class TokenTable:
    """Per-trace value -> token map; the same (kind, value) always gets the same token."""

    __slots__ = ("_by_value", "_mapping", "_counts")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._mapping: dict[str, tuple[str, str]] = {}
        self._counts: dict[str, int] = {}

    def token(self, kind: str, canonical: str, value: str, label: str | None = None) -> str:
        key = (kind, canonical)
        found = self._by_value.get(key)
        if found is not None:
            return found
        if label is None:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            label = str(n)
        token = f"<{kind}_{label}>"
        self._by_value[key] = token
        self._mapping[token] = (kind, value)
        return token

    def record(self, kind: str, canonical: str, value: str, token: str) -> str:
        """Enter a token made elsewhere (a corpus-stable one) for (kind, canonical)."""
        self._by_value[(kind, canonical)] = token
        self._mapping[token] = (kind, value)
        return token

    def known_tokens(self) -> Mapping[tuple[str, str], str]:
        """(kind, canonical value) -> token, read-only and live: the redactor's hot loops look
        values up here without a method call per span."""
        return self._by_value

    def entries(self) -> ItemsView[str, tuple[str, str]]:
        """token -> (kind, raw value), live: what the vault seals."""
        return self._mapping.items()

    def tokens(self) -> KeysView[str]:
        """The tokens, live, in the order of `entries`."""
        return self._mapping.keys()

    def sealed(self) -> ValuesView[tuple[str, str]]:
        """(kind, raw value) of each token, live, in the order of `entries`."""
        return self._mapping.values()

    def mapping(self) -> dict[str, tuple[str, str]]:
        return dict(self._mapping)

    def __len__(self) -> int:
        return len(self._mapping)


Span = tuple[int, int, str, str, str]  # start, end, kind, canonical value, raw value
_Candidate = tuple[int, int, int, str, str, str]  # start, end, priority, kind, canonical, raw
def resolve_overlaps(candidates: list[_Candidate]) -> list[Span]:
    """Highest priority, then longest, wins; the survivors come back in text order."""
    return [(c[0], c[1], c[3], c[4], c[5]) for c in _resolve(candidates)]


def _resolve(candidates: list[tuple]) -> list[tuple]:
    """resolve_overlaps keeping the candidate tuples whole (whatever follows the priority).

    One sweep in start order; only clusters that actually overlap are sorted by priority, so
    the usual case (no overlap) costs one comparison a candidate.
    """
    candidates.sort()
    chosen: list[tuple] = []
    keep = chosen.append
    pending = None
    cluster: list[tuple] | None = None
    cluster_end = -1
    for cand in candidates:
        if cand[0] >= cluster_end:
            if cluster is not None:
                chosen.extend(_resolve_cluster(cluster))
                cluster = None
            elif pending is not None:
                keep(pending)
            pending = cand
            cluster_end = cand[1]
        else:
            if cluster is None:
                cluster = [pending]
            cluster.append(cand)
            if cand[1] > cluster_end:
                cluster_end = cand[1]
    if cluster is not None:
        chosen.extend(_resolve_cluster(cluster))
    elif pending is not None:
        keep(pending)
    return chosen


def _resolve_cluster(cluster: list[tuple]) -> list[tuple]:
    if len(cluster) == 2:
        # Two overlapping candidates (the usual cluster): one survives, the first on a tie.
        a, b = cluster
        return [a if (a[2], a[1] - a[0], -a[0]) >= (b[2], b[1] - b[0], -b[0]) else b]
    cluster.sort(key=lambda c: (-c[2], c[0] - c[1], c[0]))
    taken: list[tuple[int, int]] = []
    kept: list[tuple] = []
    for cand in cluster:
        start, end = cand[0], cand[1]
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        kept.append(cand)
    kept.sort()
    return kept


def _candidate(det: Detector, text: str, m: re.Match[str]) -> _Candidate | None:
    start, end = det.value_span(m)
    if start < 0 or end <= start:
        return None
    value = text[start:end]
    if det.validate is not None:
        quoted = start > 0 and end < len(text) and text[start - 1] == text[end] in "\"'"
        if not det.validate(value, quoted):
            return None
    canon = det.canonical(value) if det.canonical else value
    return start, end, det.priority, det.kind, canon, value


