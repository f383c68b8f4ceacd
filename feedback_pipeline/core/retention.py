"""Raw-zone retention: which days' raw data has outlived the policy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta


def expired_days(days: Iterable[str], today: date, retention_days: int) -> list[str]:
    """Days strictly older than `retention_days` before `today` (retention 0 keeps nothing past
    today)."""
    cutoff = today - timedelta(days=retention_days)
    return sorted(d for d in set(days) if date.fromisoformat(d) < cutoff)
