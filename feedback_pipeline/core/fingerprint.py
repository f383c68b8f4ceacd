"""Content fingerprints of redacted prompts, computed once at redaction so leakage checks join.

Case, whitespace, punctuation and redaction tokens are folded, so the same prompt under another
id, with other spacing or another engineer's token number, still matches.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_TOKEN = re.compile(r"<([A-Z][A-Z0-9_]*?)_[0-9a-f]+>")
_NON_WORD = re.compile(r"[^\w<>]+")


def normalise_text(text: str) -> str:
    folded = _TOKEN.sub(lambda m: f"<{m.group(1).lower()}>", text)
    return " ".join(_NON_WORD.sub(" ", folded.lower()).split())


def fingerprint(text: str | None) -> str | None:
    if text is None:
        return None
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:32]


def fingerprints(texts: Iterable[str | None]) -> list[str | None]:
    return [fingerprint(t) for t in texts]
