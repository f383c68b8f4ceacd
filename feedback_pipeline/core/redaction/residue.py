"""The residue scanner: the independent second opinion behind the blocking gates.

Its own simpler, broader patterns in their own Hyperscan database, run over already-redacted
text; a match that starts inside a redaction token never counts, and benign shapes (semver
build metadata, checksums after `sha1sum:`, scp-style git remotes) are not residue.
`find_residue` reports (kind, text) per text; `residue_flags` only answers "anything raw?" per
text (plus counts per kind) and reads an Arrow column directly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from feedback_pipeline.core.redaction.detectors import (
    _HAS_DIGIT,
    _KEYED_DETECTORS,
    _NOT_DIGIT,
    _VENDOR_DETECTORS,
    NON_ROUTABLE_IPV4,
    _clean_terms,
    _deny_variants,
    commit_in_context_ok,
    family_body_ok,
    hex_mixed,
    hf_token_ok,
    ipv6_ok,
    is_placeholder,
    luhn_ok,
    mixed_token,
    random_token,
    secret_value_ok,
    vendor_value_ok,
)
from feedback_pipeline.core.redaction.engine import (
    _BATCH_BYTES,
    _arrow_batches,
    _batches,
    _grouped_reports,
    _Joined,
    _scan_keys,
    _ThreadScratch,
    hyperscan,
    use_hyperscan,
)
from feedback_pipeline.core.redaction.secret_rules import TOKEN_FAMILIES

_R_TOKEN = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9a-f]+>")
Accept = Callable[[str, re.Match[str]], bool]
def _prev_not(chars: str) -> Accept:
    def accept(text: str, m: re.Match[str]) -> bool:
        i = m.start()
        return i == 0 or not (text[i - 1].isalnum() or text[i - 1] in chars)
    return accept


def _both(first: Accept, second: Accept) -> Accept:
    return lambda text, m: first(text, m) and second(text, m)


def _on_value(check: Callable[[str], bool], group: int = 0) -> Accept:
    return lambda text, m: check(m.group(group))


def _residue_card(run: str) -> bool:
    """Any run of whole digit groups inside `run` that is a valid card number."""
    groups = re.split(r"[ -]", run)
    for i in range(len(groups)):
        digits = ""
        for group in groups[i:]:
            digits += group
            if len(digits) > 19:
                break
            if len(digits) >= 13 and digits[0] in "23456" and luhn_ok(digits):
                return True
    return False


def _residue_secret(value: str) -> bool:
    quoted = value[:1] in "\"'"
    bare = value.strip("\"'")
    if _R_TOKEN.match(bare):
        return False  # the value is (or starts with) a redaction token
    if _R_TOKEN.search(bare):
        # A value that holds a token (`"Authorization: SSWS <OKTA_TOKEN_1>"`, a URL whose
        # `?code=` was replaced): what was secret in it was replaced; only a random-looking
        # word left beside it counts.
        return any(random_token(word) for word in _R_TOKEN.sub(" ", bare).split())
    return secret_value_ok(bare, quoted)


# Hex that is not a commit: a Docker image id after "Successfully built", a checksum after a
# sum tool's name.
_NOT_COMMIT_BEFORE = re.compile(
    r"(?i)(?:successfully\s+built|sha(?:1|224|256|384|512)?sum|md5sum|checksum|digest|"
    r"image\s+id|imageid)\W{0,3}$")
def _not_after_sum(text: str, m: re.Match[str]) -> bool:
    return _NOT_COMMIT_BEFORE.search(text, max(0, m.start() - 24), m.start()) is None


_BUILD_METADATA = re.compile(r"\d+\.\d+\.\d+(?:-[\w.-]+)?\+[\w.-]*$")
def _not_build_metadata(text: str, m: re.Match[str]) -> bool:
    """`1.2.3+exp.sha.5114f85`: semver build metadata, not a commit reference."""
    return _BUILD_METADATA.search(text, max(0, m.start() - 64), m.start()) is None


_IBAN_HEAD = re.compile(r"\b[A-Z]{2}\d\d ?$")
def _not_in_iban(text: str, m: re.Match[str]) -> bool:
    """Digit groups after `DE89 ` are the body of an IBAN (the IBAN rule judges it)."""
    return _IBAN_HEAD.search(text, max(0, m.start() - 6), m.start()) is None


_SCP_PATH = re.compile(r":[\w~.-]*/")
def _not_scp_remote(text: str, m: re.Match[str]) -> bool:
    """`git@github.com:org/repo.git` is an scp-style remote, not an email."""
    return _SCP_PATH.match(text, m.end()) is None


@dataclass(frozen=True)
class _ResidueRule:
    """A residue pattern: `locator` (Hyperscan) reports where `pattern` may match, at the same
    start, or anywhere within `window` characters before it; `lead` are the characters such a
    match may run over before the reported place (see `_window_matches`)."""

    kind: str
    locator: bytes
    pattern: re.Pattern[str]
    accept: Accept | None = None
    window: int = 0
    lead: str = ""


def _window_matches(rule: _ResidueRule, text: str, at: int, lo: int, hi: int
                    ) -> Sequence[re.Match[str]]:
    """The matches a scan of the `window` around `at` finds that cover `at`.

    Only a match starting in the run of `lead` characters (and word characters) just before
    `at` can cover it; the pattern is tried once at the start of that run. When the run is
    preceded by the reported character itself (`a@b.io@c.io`), an earlier match may end inside
    it, and the window is scanned the slow way to keep the same answer.
    """
    floor = max(lo, at - rule.window)
    end = min(hi, at + rule.window)
    start = at
    lead = rule.lead
    while start > floor:
        c = text[start - 1]
        if c in lead or c.isalnum():
            start -= 1
        else:
            break
    if start > floor and text[start - 1] == text[at]:
        return [m for m in rule.pattern.finditer(text, floor, end) if m.start() <= at < m.end()]
    m = rule.pattern.match(text, start, end)
    return (m,) if m is not None and m.start() <= at < m.end() else ()


_R_RULES: tuple[_ResidueRule, ...] = (
    _ResidueRule("PRIVATE_KEY", rb"-----BEGIN", re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY")),
    _ResidueRule("JWT", rb"eyJ[\w-]{4}", re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,}")),
    _ResidueRule(
        "API_KEY",
        rb"sk-ant-|sk-proj-|gh[pousr]_|github_pat_|xox[a-z]-|[rs]k_(?:live|test|prod)_|AIza|hf_",
        re.compile(r"(?:sk-ant-|sk-proj-|gh[pousr]_|github_pat_|xox[a-z]-|[rs]k_live_|[rs]k_test_"
                   r"|[rs]k_prod_|AIza|hf_)[\w-]{10,}"),
        _on_value(lambda v: mixed_token(v) or v.startswith(("sk-ant-", "github_pat_"))
                  or (v.startswith("hf_") and hf_token_ok(v)))),
    _ResidueRule("API_KEY", rb"sk-[A-Za-z0-9_-]{20}", re.compile(r"sk-[A-Za-z0-9_-]{20,}"),
                 _both(_prev_not("_"), _on_value(mixed_token))),
    _ResidueRule(
        "API_KEY",
        rb"glpat-|gldt-|glrt-|glptt-|glffct-|GR1348941|npm_|pypi-AgE[IN]|hv[sbr]\.|\.atlasv1\."
        rb"|dapi[0-9a-f]"
        rb"|SG\.|whsec_|ya29\.|shp(?:at|ss|ca|pa)_|do[opr]_v1_|lin_api_|ATATT3|ATCTT3|PMAK-"
        rb"|dp\.pt\.|pul-[0-9a-f]|glc_|glsa_|NRAK-|HRKU-|hooks\.slack\.com/services/",
        re.compile(r"(?:glpat-|gldt-|glrt-|glptt-|glffct-|GR1348941|npm_|pypi-AgE[IN]|hv[sbr]\."
                   r"|\.atlasv1\."
                   r"|dapi|SG\.|whsec_|ya29\.|shp(?:at|ss|ca|pa)_|do[opr]_v1_|lin_api_|ATATT3"
                   r"|ATCTT3|PMAK-|dp\.pt\.|pul-|glc_|glsa_|NRAK-|HRKU-|hooks\.slack\.com/services/)"
                   r"[\w.=/-]{16,}"),
        _both(_prev_not("_"), _on_value(lambda v: _HAS_DIGIT.search(v) is not None))),
    _ResidueRule("API_KEY", rb"(?:AC|SK)[0-9a-z]{32}",
                 re.compile(r"(?:AC|SK)[0-9a-z]{32}(?![A-Za-z0-9])"),
                 _both(_prev_not(""), _on_value(
                     lambda v: _HAS_DIGIT.search(v[2:]) is not None and not v[2:].isdigit()))),
    _ResidueRule("CLOUD_CREDENTIAL",
                 rb"(?i)AccountKey=|SharedAccessKey=|[?&]sig=|X-Amz-Signature=",
                 re.compile(r"(?i)(?:AccountKey=|SharedAccessKey=|[?&]sig=|X-Amz-Signature=)"
                            r"([A-Za-z0-9+/%=_-]{16,})"),
                 _on_value(lambda v: not _R_TOKEN.match(v), 1)),
    _ResidueRule("SSN", rb"\b\d{3}-\d\d-\d{4}",
                 re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d\d-(?!0000)\d{4}(?![\w-])"),
                 _prev_not("_-")),
    _ResidueRule("AWS_KEY", rb"AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA|A3T",
                 re.compile(r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA|A3T[A-Z0-9])"
                            r"[A-Z0-9]{12,}"),
                 _prev_not("_")),
    _ResidueRule("URL_CREDENTIALS", rb"://[^\s/@:]*:[^\s/@]+@",
                 re.compile(r"://[^\s/@:]*:([^\s/@]+)@"),
                 _on_value(lambda v: not is_placeholder(v), 1)),
    _ResidueRule("EMAIL", rb"@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]",
                 re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"), _not_scp_remote,
                 window=256, lead="_.+%-"),
    # an internationalised domain (`köln.example`): the locator above is ASCII-only
    _ResidueRule("EMAIL", rb"@[\w.-]*[\x80-\xff]",
                 re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}"), _not_scp_remote,
                 window=256, lead="_.+%-"),
    _ResidueRule("ENGINEER", rb"ENG-\d", re.compile(r"ENG-\d+"), _prev_not("_")),
    _ResidueRule("CARD", rb"\d(?:[ -]?\d){12}", re.compile(r"\d(?:[ -]?\d){12,}(?![\w])"),
                 _both(_both(_prev_not("_.-"), _on_value(_residue_card)), _not_in_iban)),
    _ResidueRule("PHONE", rb"\+\d", re.compile(r"\+\d[\d ().-]{7,}\d"),
                 _on_value(lambda v: len(_NOT_DIGIT.sub("", v)) >= 10)),
    _ResidueRule("PHONE", rb"\(?[2-9]\d\d\)?[ .-][2-9]\d\d[ .-]\d{4}",
                 re.compile(r"\(?[2-9]\d\d\)?[ .-][2-9]\d\d[ .-]\d{4}\b"), _prev_not("_")),
    _ResidueRule("IPV4", rb"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d",
                 re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)"),
                 _both(_prev_not("_."), _on_value(
                     lambda v: all(int(p) <= 255 for p in v.split("."))
                     and v not in NON_ROUTABLE_IPV4))),
    _ResidueRule("IPV6", rb"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
                 re.compile(r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])"),
                 _both(_prev_not("_:"), _on_value(ipv6_ok))),
    _ResidueRule("COMMIT", rb"\b[0-9a-f]{12}",
                 re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{12})(?![\w-])"),
                 _both(_both(_prev_not("_-"), _on_value(hex_mixed)), _not_after_sum)),
    _ResidueRule("COMMIT", rb"(?i)(?:commit|sha|rev|revert|cherry-pick|merge|head is now at)"
                 rb"\W{1,3}[0-9a-f]{7}",
                 re.compile(r"(?i:commit|sha|rev|revert|cherry-pick|merge|HEAD is now at)\W{1,3}"
                            r"([0-9a-f]{7,40})(?![\w-])"),
                 _both(_on_value(commit_in_context_ok, 1), _not_build_metadata)),
    _ResidueRule("SECRET", rb"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key"
                 rb"|apikey|credentials?|(?:secret|access|private|signing|encryption|master)[_-]?key)"
                 rb"[\"']?\s{0,8}[:=]",
                 re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey"
                            r"|credentials?|(?:secret|access|private|signing|encryption|master)[_-]?key)"
                            r"[\"']?\s{0,8}[:=]\s*(\"[^\"\n]+\"|'[^'\n]+'"
                            r"|[^\s\"',;()\[\]{}]+)"),
                 _on_value(_residue_secret, 1)),
) + tuple(
    # gitleaks-style keyword rules, with an operator or said in prose: the redactor's own
    # shapes, since a random value beside a secret word is what both define
    _ResidueRule("SECRET", d.locator, d.pattern, _on_value(random_token, 1))
    for d in _KEYED_DETECTORS) + tuple(
    # gitleaks' vendor keyword rules (`asana_client_id: <16 digits>`): likewise the redactor's
    # shape, a vendor's name, an assignment and a value of exactly that vendor's shape
    _ResidueRule(d.kind, d.locator, d.pattern, _on_value(vendor_value_ok, 1))
    for d in _VENDOR_DETECTORS) + tuple(
    # token families announce themselves by prefix: the redactor and the check share the shape
    _ResidueRule(f.kind, f.locator, re.compile(f.pattern),
                 _on_value(family_body_ok(f), 1 if f.value_only else 0),
                 window=256 if f.rewind else 0, lead=f.rewind)
    for f in TOKEN_FAMILIES)
@lru_cache(maxsize=64)
def _residue_deny(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    cleaned = [unicodedata.normalize("NFC", t.strip()) for t in _deny_variants(terms)]
    if not cleaned:
        return None
    alternation = "|".join(r"\s+".join(map(re.escape, t.split())) for t in cleaned)
    return re.compile(rf"(?:{alternation})(?!\w)", re.IGNORECASE)


class _ResidueScanner:
    """The residue rules (and deny terms) in one Hyperscan database of their own."""

    def __init__(self, terms: tuple[str, ...], engine: str = "auto",
                 batch_bytes: int = _BATCH_BYTES) -> None:
        deny = _residue_deny(terms)
        self.batch_bytes = batch_bytes
        self.rules: list[_ResidueRule] = list(_R_RULES)
        if deny is not None:
            self.rules.append(_ResidueRule("NAME", b"", deny, _prev_not("")))
        self.db = None
        if not use_hyperscan(engine):
            return
        expressions = [r.locator for r in _R_RULES]
        flags = [hyperscan.HS_FLAG_SOM_LEFTMOST] * len(expressions)
        owners = list(range(len(_R_RULES)))
        spellings = [r"\s+".join(map(re.escape, words)) for term in _deny_variants(terms)
                     if (words := unicodedata.normalize("NFC", term.strip()).split())]
        if spellings and deny is not None:
            expressions.append("|".join(spellings).encode())
            flags.append(hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_CASELESS
                         | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP)
            owners.append(len(self.rules) - 1)
        self.owners = owners
        self.rule_of = np.array(owners, dtype=np.int64)
        self.db = hyperscan.Database()
        self.db.compile(expressions=expressions, ids=list(range(len(expressions))),
                        elements=len(expressions), flags=flags)
        self.scratch = _ThreadScratch(self.db)

    def scan(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        if self.db is None:
            return [self._scan_python(t) if t else [] for t in texts]
        found: list[list[tuple[str, str]]] = [[] for _ in texts]
        for lo, hi in _batches(texts, self.batch_bytes):
            batch = _Joined(texts[lo:hi])
            for k, _start, _rule, kind, matched in self._scan_batch(batch):
                found[lo + k].append((kind, matched))
        return found

    def _scan_batch(self, batch: _Joined) -> list[tuple[int, int, int, str, str]]:
        """(text index, start, rule, kind, matched text) of every accepted match, in order.

        Reports are grouped by rule so that each rule's loop runs on local variables; a match
        counts once per rule and start, and never when it starts inside a redaction token."""
        buffer = batch.encoded()
        groups = _grouped_reports(batch, buffer, _scan_keys(self.db, self.scratch.get(), buffer,
                                                            len(self.owners)),
                                  len(self.owners), self.rule_of)
        text = batch.text
        hits: list[tuple[int, int, int, str, str]] = []
        for rule_index, ats, owners, lows, highs in groups:
            rule = self.rules[rule_index]
            accept, kind, window = rule.accept, rule.kind, rule.window
            pattern = rule.pattern
            seen: set[int] = set()
            # Deny spellings overlap (`Zoë Müller`, `Müller`): like finditer, a name match
            # never starts inside the previous one in the same text.
            names = kind == "NAME" and rule_index == len(self.rules) - 1 and not window
            name_end = (-1, -1)
            for at, k, lo, hi in zip(ats, owners, lows, highs, strict=True):
                if at < lo:
                    continue
                if names and name_end[0] == k and at < name_end[1]:
                    continue
                if window:
                    matches = _window_matches(rule, text, at, lo, hi)
                else:
                    m = pattern.match(text, at, hi)
                    if m is None:
                        continue
                    matches = (m,)
                for m in matches:
                    start = m.start()
                    if start in seen:
                        continue
                    seen.add(start)
                    if (accept is None or accept(text, m)) and not _in_token(text, start, lo, hi):
                        hits.append((k, start, rule_index, kind, m.group(0)))
                        if names:
                            name_end = (k, m.end())
        hits.sort()
        return _one_per_place(hits)

    def _scan_python(self, text: str) -> list[tuple[str, str]]:
        found = []
        for index, rule in enumerate(self.rules):
            for m in rule.pattern.finditer(text):
                if (rule.accept is None or rule.accept(text, m)) \
                        and not _in_token(text, m.start(), 0, len(text)):
                    found.append((0, m.start(), index, rule.kind, m.group(0)))
        found.sort()
        return [(kind, matched) for _k, _s, _r, kind, matched in _one_per_place(found)]


def _one_per_place(hits: list[tuple[int, int, int, str, str]]
                   ) -> list[tuple[int, int, int, str, str]]:
    """Sorted hits less those that overlap an earlier hit of the same kind in the same text:
    two rules that see one leftover secret (a key-word rule and a random-value rule) report it
    once."""
    kept: list[tuple[int, int, int, str, str]] = []
    reach: dict[tuple[int, str], int] = {}
    for hit in hits:
        k, start, _rule, kind, matched = hit
        if start < reach.get((k, kind), -1):
            continue
        reach[(k, kind)] = max(reach.get((k, kind), -1), start + len(matched))
        kept.append(hit)
    return kept


_TOKEN_REACH = 128
def _in_token(text: str, pos: int, lo: int, hi: int) -> bool:
    """Does `pos` fall inside a redaction token (`<KIND_label>`) of text[lo:hi]?"""
    opening = text.rfind("<", max(lo, pos - _TOKEN_REACH), pos + 1)
    if opening < 0:
        return False
    m = _R_TOKEN.match(text, opening, hi)
    return m is not None and m.end() > pos


@lru_cache(maxsize=16)
def _residue_scanner(terms: tuple[str, ...], engine: str = "auto",
                     batch_bytes: int = _BATCH_BYTES) -> _ResidueScanner:
    return _ResidueScanner(terms, engine, batch_bytes)


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def find_residue_many(texts: Sequence[str | None], deny_terms: Sequence[str] = (), *,
                      engine: str = "auto", batch_bytes: int = _BATCH_BYTES
                      ) -> list[list[tuple[str, str]]]:
    """find_residue for many texts at once (one Hyperscan pass per batch): what a check over a
    table calls."""
    scanner = _residue_scanner(tuple(_clean_terms(deny_terms)), engine, batch_bytes)
    return scanner.scan([_nfc(t) if isinstance(t, str) and t else "" for t in texts])


def residue_flags(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray,
                  deny_terms: Sequence[str] = (), *, engine: str = "auto",
                  batch_bytes: int = _BATCH_BYTES) -> tuple[np.ndarray, dict[str, int]]:
    """The residue scan of find_residue_many as one bool per text (anything raw found) and the
    number of matches of each kind, for checks that need no more.

    It builds no list per text and takes an Arrow string column as it is: Arrow joins,
    normalises and encodes it, and no Python string is made per text.
    """
    scanner = _residue_scanner(tuple(_clean_terms(deny_terms)), engine, batch_bytes)
    arrow = isinstance(texts, pa.Array | pa.ChunkedArray)
    flags = np.zeros(len(texts), dtype=bool)
    kinds: dict[str, int] = {}
    if arrow and scanner.db is not None and (pa.types.is_string(texts.type)
                                             or pa.types.is_large_string(texts.type)):
        batches: Iterable[tuple[int, _Joined]] = _arrow_batches(texts, batch_bytes)
    else:
        values = texts.to_pylist() if arrow else texts
        present = [_nfc(t) if isinstance(t, str) and t else "" for t in values]
        if scanner.db is None:
            for i, found in enumerate(scanner.scan(present)):
                flags[i] = bool(found)
                for kind, _ in found:
                    kinds[kind] = kinds.get(kind, 0) + 1
            return flags, kinds
        batches = ((lo, _Joined(present[lo:hi])) for lo, hi in _batches(present, batch_bytes))
    for first, batch in batches:
        for k, _start, _rule, kind, _matched in scanner._scan_batch(batch):
            flags[first + k] = True
            kinds[kind] = kinds.get(kind, 0) + 1
    return flags, kinds


def find_residue(text: str, deny_terms: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(kind, matched text) for anything in already-redacted text that still looks raw.

    Deliberately independent of the detectors above: its own simpler, broader patterns and its
    own Hyperscan database, so a bug in one is unlikely to be repeated in the other. Redaction
    tokens never count. Without Hyperscan the same patterns run over the whole text.
    """
    if not text or not isinstance(text, str):
        return []
    return find_residue_many([text], deny_terms)[0]


