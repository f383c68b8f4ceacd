"""Redaction of identifiers and secrets in trace text, with stable pseudonymous tokens.

Every value a detector finds is replaced by a token of the seed's form `<KIND_N>`, numbered per
kind in order of first appearance within one trace, so the same engineer is `<ENGINEER_1>` in
the prompt, the context and every candidate. With a corpus key the token is instead a keyed
hash of the value (`<ENGINEER_3f9a2c1b04de>`, HMAC-SHA256 truncated to 48 bits): the same value
joins across traces without revealing who, and the key lives only behind the vault key.

Detection is a set of named, versioned detectors (`DETECTORS`), each a precise Python pattern
(the specification) plus an optional validator (Luhn for cards, a digit and a letter for bare
commit hashes, ...). Overlaps resolve by priority, then length: the password inside a
connection URL wins over the email-looking `secret@host` around it.

Speed: Python's `re` runs at a few MB/s over all these patterns. When the `hyperscan` package
is importable, a batch of texts (about 8 MB at a time) is joined into one string and one UTF-8
buffer, and one Hyperscan pass locates every place where some detector could match: each
detector has a locator, a pattern that matches where every precise match starts (or inside the
run of characters it starts with), and the precise pattern is then tried once, anchored there
and bounded to its own text. numpy maps the reports to texts and characters; only the reported
places cost Python time, tokens are built only for matches, and a text with nothing in it is
never touched again. A JSON field in which no locator reports (and that has no escapes and no
secret-named key) is not even parsed. Without Hyperscan the same precise patterns run over
whole texts behind cheap literal prefilters: identical output, slower.

Commit hashes: lowercase hex of 7-40 characters after a commit word (commit, sha, rev,
revert, cherry-pick, merge, HEAD is now at, `/commit/`) or in a git range `a..b`; bare, only
exactly 12 characters (the seed's rule) or exactly 40, always with a digit and a letter and
never touching a `-` (so the groups of a UUID survive). A 32-character md5 sum is neither
12 nor 40 long and survives unless a commit word precedes it.

Left alone on purpose: 0.0.0.0, 127.0.0.1 and ::1 (they identify nobody), template
placeholders and environment references (`<password>`, `${DB_PASSWORD}`), code references
(`password = settings.db_password`), and unquoted secret-named values that are plain lowercase
words (`password: required`); a quoted value is a secret whatever it looks like.

`find_residue` is the independent second opinion used by the blocking checks: its own simpler,
broader patterns in their own Hyperscan database, run over already-redacted text; a match that
starts inside a redaction token never counts. `residue_flags` is the same scan answering only
"anything raw?" per text (plus counts per kind), and reads an Arrow column directly.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import itertools
import json
import math
import re
import string
import threading
import unicodedata
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import ahocorasick
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedback_pipeline.core.secret_rules import TOKEN_FAMILIES, TokenFamily

try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    hyperscan = None

REDACTION_VERSION = "code-review-redactor-v2"
STABLE_TOKEN_HEX = 12
NAME_PRIORITY = 65
_SEPARATOR = b"\n\x00\n"
_BATCH_BYTES = 8 << 20


# ---- validators and canonical forms ------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_ok(value: str) -> bool:
    """13-19 digits, a card-network first digit, one kind of separator, and a valid Luhn sum."""
    digits = value.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    if " " in value and "-" in value:
        return False
    return luhn_ok(digits)


_HAS_DIGIT = re.compile(r"\d")
_NOT_DIGIT = re.compile(r"\D")


def _phone_ok(value: str) -> bool:
    n = len(_NOT_DIGIT.sub("", value))
    return 10 <= n <= 15 if value.startswith("+") else 10 <= n <= 11


def hex_mixed(value: str) -> bool:
    """For a hex string: at least one digit and one letter."""
    return not value.isdigit() and not value.isalpha()


def commit_in_context_ok(value: str) -> bool:
    """After a commit word a short SHA may be all digits (about 0.2% of 12-hex ids are); ten or
    more digits there are taken as a commit, fewer are more likely counts or dates."""
    return hex_mixed(value) or (value.isdigit() and len(value) >= 10)


def ipv6_ok(value: str) -> bool:
    """A real IPv6 address, not `std::vector`, `x[1::2]` or a MAC address."""
    groups = [g for g in value.split(":") if g]
    if "::" in value:
        if len(groups) > 7 or value.count("::") > 1:
            return False
    elif len(groups) != 8:
        return False
    hex_chars = sum(len(g) for g in groups if "." not in g)
    return (any(c.isdigit() for c in value) and any(len(g) >= 3 for g in groups)
            and hex_chars >= 5)


def mixed_token(value: str) -> bool:
    """API keys are random: upper, lower and digits. Rejects `sk-learn-compatible-estimator`."""
    return (value.lower() != value and value.upper() != value
            and _HAS_DIGIT.search(value) is not None)


PLACEHOLDER_WORDS = frozenset({
    "none", "null", "nil", "true", "false", "undefined", "required", "optional", "string", "str",
    "bytes", "int", "redacted", "hidden", "masked", "changeit", "example", "placeholder",
    "your_password", "your_token", "env", "secret", "password", "token", "value", "xxx", "xxxx",
    "todo", "tbd",
})
_PLACEHOLDER = re.compile(
    r"^(?:<[^<>]*>|\$\{[^}]*\}|\$\([^)]*\)|\$[A-Z_][A-Z0-9_]*|\{\{.*\}\}|\{\w*\}|%\(\w+\)s|%s"
    r"|\*+|x+|X+|\.+|…|-+|#+)$"
)
_PLACEHOLDER_FIRST = frozenset("<${%*xX.…-#")
_CODE_REFERENCE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
NON_ROUTABLE_IPV4 = frozenset({"0.0.0.0", "127.0.0.1", "255.255.255.255"})


def is_placeholder(value: str) -> bool:
    """Template slots, env references, masks and redaction tokens are not secrets."""
    v = value.strip().strip("\"'")
    return (not v or v.lower() in PLACEHOLDER_WORDS
            or (v[0] in _PLACEHOLDER_FIRST and _PLACEHOLDER.match(v) is not None)
            or v.startswith(("os.environ", "process.env", "getenv(")))


def secret_value_ok(value: str, quoted: bool = False) -> bool:
    """Is the value of a secret-named key a real secret (not a placeholder or code)?"""
    v = value.strip()
    if is_placeholder(v):
        return False
    if quoted:
        return len(v) >= 4
    if len(v) < 6 or (_CODE_REFERENCE.match(v) and not mixed_token(v)):
        return False  # `settings.db_password` is code; `xMj.fHZO5s7xgd` is not
    if _HAS_DIGIT.search(v) or not v.replace("_", "").isalnum():
        return True
    return v.lower() != v and v.upper() != v


def _lower(value: str) -> str:
    return value.lower()


def _digits(value: str) -> str:
    return _NOT_DIGIT.sub("", value)


def _name_canonical(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


# ---- detectors ---------------------------------------------------------------------------------

Validator = Callable[[str, bool], bool]


def _plain(check: Callable[[str], bool]) -> Validator:
    """A validator that ignores quoting; `.plain` lets hot loops call `check` directly."""
    def validate(value: str, quoted: bool) -> bool:
        return check(value)
    validate.plain = check  # type: ignore[attr-defined]
    return validate


@dataclass(frozen=True)
class Detector:
    """One named, versioned recogniser.

    `pattern` is the precise definition; the value is the first of `groups` that took part.
    `locator` (Hyperscan syntax) matches wherever a precise match starts, or, with `rewind`,
    inside the run of `rewind` characters (letters and digits too if `rewind_alnum`) that a
    precise match starts with: the precise pattern is then tried once, at the run's start.
    With `starts_with` (the characters a precise match can start with) the locator may also
    consume one character of left context, which is then stepped over.
    `triggers` are literals one of which must occur for the pattern to match at all (the
    prefilter of the pure-Python path).
    """

    name: str
    kind: str
    version: str
    pattern: re.Pattern[str]
    priority: int
    locator: bytes
    rewind: str = ""
    rewind_alnum: bool = False
    starts_with: str = ""
    groups: tuple[int, ...] = (0,)
    validate: Validator | None = None
    canonical: Callable[[str], str] | None = None
    triggers: tuple[str, ...] = ()
    ignore_case_triggers: bool = False
    rewind_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        extra = string.ascii_letters + string.digits if self.rewind_alnum else ""
        object.__setattr__(self, "rewind_set", frozenset(self.rewind + extra))

    def may_match(self, text: str, lowered: str) -> bool:
        if not self.triggers:
            return True
        haystack = lowered if self.ignore_case_triggers else text
        return any(t in haystack for t in self.triggers)

    def value_span(self, m: re.Match[str]) -> tuple[int, int]:
        if self.groups == (0,):
            return m.span()
        for g in self.groups:
            start = m.start(g)
            if start >= 0:
                return start, m.end(g)
        return -1, -1


def _d(name: str, kind: str, version: str, pattern: str, priority: int, locator: bytes, *,
       rewind: str = "", rewind_alnum: bool = False, starts_with: str = "",
       groups: tuple[int, ...] = (0,),
       validate: Validator | None = None, canonical: Callable[[str], str] | None = None,
       triggers: Sequence[str] = (), ignore_case: bool = False, flags: int = 0) -> Detector:
    return Detector(name, kind, version, re.compile(pattern, flags), priority, locator, rewind,
                    rewind_alnum, starts_with, groups, validate, canonical, tuple(triggers),
                    ignore_case)


_HEX = r"[0-9a-f]"
_VALUE = r"(?:\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'|([^\s\"',;(){}\[\]<>`]+))"
_COMMIT_WORDS = (r"(?:commits?|sha1?|rev|revision|reverts?|reverted|cherry-pick(?:ed)?"
                 r"(?:\s+from)?|fixup!?|squash!?|merged?|parent|HEAD\s+is\s+now\s+at|"
                 r"checked\s+out|bisect(?:ing)?|blame)")
_SECRET_KEY_WORDS = (r"(?:password|passwd|passphrase|pwd|secret|client[_-]?secret|token|"
                     r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|"
                     r"signing[_-]?key|encryption[_-]?key|master[_-]?key|auth[_-]?token|"
                     r"access[_-]?token|refresh[_-]?token|session[_-]?token|credentials?)")
SECRET_KEY_NAME = re.compile(rf"(?i)^(?:[a-z0-9]+[_.-])*{_SECRET_KEY_WORDS}$")
_DIGIT_TRIGGERS = tuple("0123456789")
_AWS_ID_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
_SECRET_WORDS_B = _SECRET_KEY_WORDS.encode()
_KEYED_WORDS = r"(?:key|token|secret|passw(?:or)?d|pwd|auth|credentials?|apikey|dsn)"


DETECTORS: tuple[Detector, ...] = (
    _d("pem_private_key", "PRIVATE_KEY", "1",
       r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
       r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,-]*)",
       100, rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY", triggers=["PRIVATE KEY"]),
    _d("jwt", "JWT", "1",
       r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 95,
       rb"(?:^|[^.])eyJ[A-Za-z0-9_-]{8}", starts_with="e", triggers=["eyJ"]),
    _d("anthropic_key", "ANTHROPIC_KEY", "1",
       r"(?<![\w-])sk-ant-(?:[a-z]+\d\d-)?[A-Za-z0-9_-]{20,}", 93, rb"sk-ant-", 
       triggers=["sk-ant-"]),
    _d("openai_key", "OPENAI_KEY", "1",
       r"(?<![\w-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}(?![\w-])", 92,
       rb"sk-[A-Za-z0-9_-]{4}", validate=_plain(mixed_token), triggers=["sk-"]),
    _d("github_token", "GITHUB_TOKEN", "1",
       r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?!\w)",
       91, rb"gh[pousr]_[A-Za-z0-9]{8}|github_pat_", 
       triggers=["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]),
    _d("slack_token", "SLACK_TOKEN", "1",
       r"(?<![\w-])xox[abposr]-[A-Za-z0-9-]{10,}(?![\w-])", 91, rb"xox[abposr]-", 
       triggers=["xox"]),
    _d("stripe_key", "STRIPE_KEY", "1",
       r"(?<![\w-])[rs]k_(?:live|test)_[A-Za-z0-9]{16,}(?!\w)", 91, rb"[rs]k_(?:live|test)_",
        triggers=["k_live_", "k_test_"]),
    _d("google_api_key", "GOOGLE_API_KEY", "1",
       r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])", 91, rb"AIza[0-9A-Za-z_-]{8}", 
       triggers=["AIza"]),
    _d("huggingface_token", "HF_TOKEN", "1",
       r"(?<![\w-])hf_[A-Za-z0-9]{30,}(?!\w)", 91, rb"hf_[A-Za-z0-9]{8}", 
       validate=_plain(mixed_token), triggers=["hf_"]),
    _d("aws_access_key_id", "AWS_ACCESS_KEY", "1",
       r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])",
       91, rb"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}", 
       triggers=_AWS_ID_PREFIXES),
    _d("aws_secret_access_key", "AWS_SECRET_KEY", "1",
       r"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s*(?:=|:|=>)\s*[\"']?"
       r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", 90,
       rb"(?i)aws_?secret_?(?:access_?)?key|secret_?access_?key",  groups=(1,),
       triggers=["secret"], ignore_case=True),
    _d("connection_url_password", "PASSWORD", "1",
       r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@?#'\"]*:([^\s@/?#'\"]+)@", 85,
       rb"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#'\"]*:[^\s@/?#'\"]+@", groups=(1,),
       validate=_plain(lambda v: not is_placeholder(v)), triggers=["://"]),
    _d("bearer_token", "SECRET", "1",
       r"(?i:\b(?:bearer|basic))\s+([^\s\"'`<>]{8,})", 81, rb"(?i)\b(?:bearer|basic)\s",
       groups=(1,), validate=_plain(secret_value_ok), triggers=["bearer", "basic"],
       ignore_case=True),
    _d("secret_assignment", "SECRET", "1",
       rf"(?i:(?<![\w.-])[\"']?(?:[a-z0-9]+[_.-])*{_SECRET_KEY_WORDS}[\"']?)"
       rf"\s{{0,8}}(?:=|:|=>|:=)\s*{_VALUE}", 80,
       b"(?i)" + _SECRET_WORDS_B + rb"[\"']?\s{0,8}[:=]", rewind="_.-", rewind_alnum=True,
       groups=(1, 2, 3), validate=secret_value_ok,
       triggers=["pass", "pwd", "secret", "token", "key", "credential"], ignore_case=True),
    _d("secret_cli_flag", "SECRET", "1",
       rf"(?i:--{_SECRET_KEY_WORDS.replace('[_-]?', '-?')})(?:=|\s+){_VALUE}", 80,
       b"(?i)--" + _SECRET_WORDS_B.replace(b"[_-]?", b"-?"), groups=(1, 2, 3),
       validate=secret_value_ok, triggers=["--"]),
    _d("email", "EMAIL", "1",
       r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
       r"[A-Za-z]{2,24}(?![\w-]|:[\w~.-]*/)", 70, rb"@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b",
       rewind="_.%+-",
       rewind_alnum=True,
       canonical=_lower, triggers=["@"]),
    _d("payment_card", "CARD", "1",
       r"(?<![\w.,-])(?:[2-6]\d{12,18}|[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"
       r"|3\d{3}([ -])\d{6}\2\d{4,5})(?![\w]|[.,-]\d)", 60,
       rb"\b[2-6]\d{3}(?:\d{9}|[ -]\d{4}[ -]\d{4}|[ -]\d{6})", validate=_plain(card_ok),
       canonical=_digits, triggers=_DIGIT_TRIGGERS),
    _d("phone_international", "PHONE", "1",
       r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,4})(?:[ .-]?\d{2,4}){1,5}"
       r"(?![\w]|[.-]\d)", 56, rb"\+[1-9][\d .()-]{7}", validate=_plain(_phone_ok),
       canonical=_digits, triggers=["+"]),
    _d("phone_north_american", "PHONE", "1",
       r"(?<![\w+.-])(?:1[ .-])?(?:\([2-9]\d\d\)\s?|[2-9]\d\d[ .-])[2-9]\d\d[ .-]\d{4}"
       r"(?![\w]|[.-]\d)", 55,
       rb"(?:\b1[ .-])?(?:\([2-9]\d\d\)\s?|\b[2-9]\d\d[ .-])[2-9]\d\d[ .-]\d{4}",
       validate=_plain(_phone_ok), canonical=_digits, triggers=_DIGIT_TRIGGERS),
    _d("ipv6_mapped_ipv4", "IPV6", "1",
       r"(?i)(?<![\w:])::ffff:(?:\d{1,3}\.){3}\d{1,3}(?![\w.])", 53, rb"(?i)::ffff:",
       canonical=_lower, triggers=["::"]),
    _d("ipv6", "IPV6", "1",
       r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|"
       r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?::"
       r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?)(?![\w:]|\.\w)", 52,
       rb"[0-9A-Fa-f]:(?:[0-9A-Fa-f]{1,4}:)?:|::[0-9A-Fa-f]|"
       rb"\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}",
       rewind="0123456789abcdefABCDEF:", validate=_plain(ipv6_ok),
       canonical=_lower, triggers=[":"]),
    _d("ipv4", "IPV4", "1",
       r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
       r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)", 50,
       rb"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d",
       validate=_plain(lambda v: v not in NON_ROUTABLE_IPV4), triggers=["."]),
    _d("commit_in_context", "COMMIT", "1",
       rf"(?i:\b{_COMMIT_WORDS})(?:\s*[:#=(\[/]\s*|\s+)(?:(?:of|to|from)\s+)?"
       rf"({_HEX}{{7,40}})(?![\w-])", 46,
       rb"(?i)\b(?:commits?|sha1?|rev|revision|reverts?|reverted|cherry-pick(?:ed)?|fixup!?|"
       rb"squash!?|merged?|parent|head\s+is\s+now\s+at|checked\s+out|bisect|bisecting|blame)"
       rb"[\s:#=(\[/]", groups=(1,), validate=_plain(commit_in_context_ok), canonical=_lower,
       triggers=["commit", "sha", "rev", "pick", "fixup", "squash", "merge", "parent", "head",
                 "checked", "bisect", "blame"], ignore_case=True),
    _d("commit_range", "COMMIT", "1",
       rf"(?<![\w-])({_HEX}{{7,40}})(?=\.\.\.?{_HEX}{{7,40}}(?![\w-]))", 46,
       rb"\b[0-9a-f]{7,40}\.\.\.?[0-9a-f]{7}", groups=(1,),
       validate=_plain(hex_mixed), triggers=[".."]),
    _d("commit_range_end", "COMMIT", "1",
       rf"(?<![\w-]){_HEX}{{7,40}}\.\.\.?({_HEX}{{7,40}})(?![\w-])", 46,
       rb"\b[0-9a-f]{7,40}\.\.\.?[0-9a-f]{7}", groups=(1,),
       validate=_plain(hex_mixed), triggers=[".."]),
    _d("commit_bare", "COMMIT", "1",
       rf"(?<![\w-])(?<!Successfully built )(?<!sha1sum: )(?<!sha1sum )"
       rf"(?:{_HEX}{{40}}|{_HEX}{{12}})(?![\w-])", 45,
       rb"(?:^|[^\w-])(?:[0-9a-f]{12}|[0-9a-f]{40})\b", starts_with="0123456789abcdef",
       validate=_plain(hex_mixed), triggers=_DIGIT_TRIGGERS),
    _d("engineer_id", "ENGINEER", "1", r"\bENG-\d+\b", 40, rb"\bENG-\d",
       triggers=["ENG-"]),
)


# ---- issue 17: public secret-scanner shapes, cloud credentials, CLI passwords, more PII ----------

def _iban_countries() -> str:
    """The registry's country codes, from python-stdnum's copy of the SWIFT IBAN registry: a
    literal set the locator can look for, instead of any two capitals."""
    from importlib.resources import files
    registry = files("stdnum").joinpath("iban.dat").read_text(encoding="utf-8")
    codes = sorted({line[:2] for line in registry.splitlines()
                    if len(line) > 2 and line[:2].isalpha() and line[:2].isupper()})
    return "|".join(codes)


_IBAN_COUNTRIES = _iban_countries()


def _iban_ok(value: str) -> bool:
    from stdnum import iban
    return 2 <= int(value[2:4]) <= 98 and iban.is_valid(value)


def _upper_alnum(value: str) -> str:
    return value.replace(" ", "").upper()


def _octets_ok(value: str) -> bool:
    parts = value.split("-")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 and (p == "0" or p[0] != "0")
                                   for p in parts) and value.replace("-", ".") \
        not in NON_ROUTABLE_IPV4


def _dashed_ip(value: str) -> str:
    return value.replace("-", ".")


def _domestic_phone_ok(value: str) -> bool:
    n = len(_NOT_DIGIT.sub("", value))
    return 10 <= n <= 15 if value.startswith("00") else 9 <= n <= 12


def _b64_block_ok(value: str) -> bool:
    """Key material: long, and upper, lower and digits (hex dumps and sums have no upper)."""
    flat = value.replace("\n", "").replace("\r", "")
    return len(flat) >= 180 and mixed_token(flat)


_SPELLED_AT = re.compile(r"(?i)^([\w.+-]+)\s+at\s")


def _obfuscated_email_ok(value: str) -> bool:
    """`jane.doe at example dot com` needs a dot, underscore or digit in the name part (so
    `look at this dot com` is prose); the bracketed, spaced, fullwidth and %40 forms pass."""
    m = _SPELLED_AT.match(value)
    if m is None or "@" in value or "＠" in value or "%40" in value or "[" in value \
            or "(" in value:
        return True
    return any(c in m.group(1) for c in "._") or _HAS_DIGIT.search(m.group(1)) is not None


def _prose_secret_ok(value: str) -> bool:
    """After "the password is": six or more characters, a digit or mixed case, not a word."""
    return (len(value) >= 6 and not is_placeholder(value) and not value.isalpha()
            and (_HAS_DIGIT.search(value) is not None or value.lower() != value))


def _bare_password_ok(value: str) -> bool:
    """After a bare "password" (no "is", no colon): a letter and a digit, and mixed case or a
    symbol, so `password reset`, `password123` and `password v2` stay prose."""
    return (len(value) >= 8 and _alnum_mixed(value) and not is_placeholder(value)
            and (value.lower() != value and value.upper() != value
                 or not value.replace("_", "").replace("-", "").isalnum()))


def _token(name: str, kind: str, prefix: str, body: str, *, locator: bytes | None = None,
           check: Callable[[str], bool] | None = None, triggers: Sequence[str] = (),
           priority: int = 91, tail: str = r"(?![\w-])") -> Detector:
    """A prefixed token: `prefix` (a regex) then `body`, not inside a longer word."""
    return _d(name, kind, "1", rf"(?<![\w-]){prefix}{body}{tail}", priority,
              locator if locator is not None else prefix.encode(),
              validate=_plain(check) if check else None,
              triggers=triggers or [re.sub(r"\\(.)", r"\1", prefix.split("(")[0])])


_SHELL_ARGS = r"[^\n|;&]{0,200}?"
_CLI_VALUE = r"(?:\"([^\"\n]{3,200})\"|'([^'\n]{3,200})'|([^\s\"'`|;&<>]{3,200}))"
_ENV_SUFFIX = (r"(?:PASSWORD|PASSWD|PASS|PWD|SECRET|SECRET_KEY|TOKEN|API_KEY|APIKEY|KEY_BASE|"
               r"PRIVATE_KEY|ACCESS_KEY|CREDENTIALS|AUTH|DSN)")

_EXTRA_DETECTORS: tuple[Detector, ...] = (
    _token("gitlab_token", "GITLAB_TOKEN", r"(?:glpat|gldt|glrt|glptt|glcbt|glimt|glft|glsoat"
           r"|glagent|gloas)-", r"[A-Za-z0-9_-]{20,}",
           locator=rb"gl(?:pat|dt|rt|ptt|cbt|imt|ft|soat|agent|oas)-[A-Za-z0-9_-]{8}",
           triggers=["gl"]),
    _token("gitlab_runner_registration", "GITLAB_TOKEN", "GR1348941", r"[A-Za-z0-9_-]{20,}"),
    _token("npm_token", "NPM_TOKEN", "npm_", r"[A-Za-z0-9]{36}", check=mixed_token),
    _token("pypi_token", "PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc", r"[A-Za-z0-9_-]{40,}"),
    _token("vault_token", "VAULT_TOKEN", r"hv[sbr]\.", r"[A-Za-z0-9_-]{24,}",
           locator=rb"hv[sbr]\.[A-Za-z0-9_-]{8}", check=lambda v: mixed_token(v[4:]),
           triggers=["hvs.", "hvb.", "hvr."]),
    _d("terraform_token", "TERRAFORM_TOKEN", "1",
       r"(?<![A-Za-z0-9])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}(?![\w=-])", 91,
       rb"\.atlasv1\.", rewind_alnum=True, triggers=[".atlasv1."]),
    _token("databricks_token", "DATABRICKS_TOKEN", "dapi", r"[0-9a-f]{32}(?:-\d)?",
           locator=rb"dapi[0-9a-f]{32}", check=hex_mixed),
    _token("sendgrid_key", "SENDGRID_KEY", r"SG\.", r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
           locator=rb"SG\.[A-Za-z0-9_-]{22}\.", triggers=["SG."]),
    _d("twilio_key", "TWILIO_KEY", "1", r"(?<![A-Za-z0-9])(?:AC|SK)[0-9a-f]{32}(?![A-Za-z0-9])",
       91, rb"(?:AC|SK)[0-9a-f]{32}", validate=_plain(lambda v: hex_mixed(v[2:])),
       triggers=["AC", "SK"]),
    _token("slack_config_token", "SLACK_TOKEN", r"xox[ec]-", r"[A-Za-z0-9-]{20,}",
           locator=rb"xox[ec]-", triggers=["xox"]),
    _d("slack_webhook", "SLACK_WEBHOOK", "1",
       r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}",
       92, rb"(?:https?://)?hooks\.slack\.com/", triggers=["hooks.slack.com"]),
    _token("stripe_webhook_secret", "STRIPE_KEY", "whsec_", r"[A-Za-z0-9]{24,}"),
    _token("gcp_oauth_token", "GCP_OAUTH_TOKEN", r"ya29\.", r"[0-9A-Za-z_-]{20,}",
           locator=rb"ya29\.", triggers=["ya29."]),
    _token("shopify_token", "SHOPIFY_TOKEN", r"shp(?:at|ss|ca|pa)_", r"[a-fA-F0-9]{32}",
           locator=rb"shp(?:at|ss|ca|pa)_", triggers=["shp"]),
    _token("mailgun_key", "MAILGUN_KEY", "key-", r"[0-9a-f]{32}", locator=rb"key-[0-9a-f]{32}",
           check=lambda v: hex_mixed(v[4:])),
    _token("heroku_key_v2", "HEROKU_KEY", "HRKU-", r"[A-Za-z0-9_-]{40,}"),
    _d("heroku_key", "HEROKU_KEY", "1",
       r"(?i:heroku[\w .-]{0,24}?)[\"']?\s*(?:=|:|=>)\s*[\"']?"
       r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![\w-])", 91,
       rb"(?i)heroku", groups=(1,), triggers=["heroku"], ignore_case=True),
    _token("digitalocean_token", "DIGITALOCEAN_TOKEN", r"do[opr]_v1_", r"[a-f0-9]{64}",
           locator=rb"do[opr]_v1_", triggers=["_v1_"]),
    _token("linear_key", "LINEAR_KEY", "lin_api_", r"[A-Za-z0-9]{40}"),
    _token("atlassian_token", "ATLASSIAN_TOKEN", r"AT(?:ATT|CTT)3", r"[A-Za-z0-9_=-]{100,}",
           locator=rb"AT(?:ATT|CTT)3", triggers=["TT3"], tail=r"(?![\w=-])"),
    _token("postman_key", "POSTMAN_KEY", "PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}"),
    _token("doppler_token", "DOPPLER_TOKEN", r"dp\.(?:pt|st|sa|ct|scim|audit)\.",
           r"[A-Za-z0-9]{40,44}", locator=rb"dp\.(?:pt|st|sa|ct|scim|audit)\.",
           triggers=["dp."]),
    _token("pulumi_token", "PULUMI_TOKEN", "pul-", r"[a-f0-9]{40}", locator=rb"pul-[a-f0-9]{40}"),
    _token("grafana_cloud_token", "GRAFANA_TOKEN", "glc_", r"[A-Za-z0-9+/]{32,400}={0,2}",
           tail=r"(?![\w+/=-])"),
    _token("grafana_service_account", "GRAFANA_TOKEN", "glsa_", r"[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    _token("new_relic_key", "NEW_RELIC_KEY", r"NR(?:AK|II|JS|AA)-", r"[A-Za-z0-9]{19,32}",
           locator=rb"NR(?:AK|II|JS|AA)-", triggers=["NR"]),
    _d("sentry_dsn", "SENTRY_DSN", "1",
       r"://([0-9a-f]{32}(?::[0-9a-f]{32})?)@", 92, rb"://[0-9a-f]{32}",
       groups=(1,), triggers=["://"]),
    # cloud and URL credentials
    _d("azure_account_key", "AZURE_KEY", "1",
       r"(?i:AccountKey|SharedAccessKey|SharedAccessSignature|AccessKey)=([A-Za-z0-9+/%]{20,}"
       r"={0,2})", 90, rb"(?i)(?:AccountKey|SharedAccessKey|SharedAccessSignature|AccessKey)=",
       rewind="", rewind_alnum=True, groups=(1,), triggers=["key=", "signature="],
       ignore_case=True),
    _d("sas_signature", "SAS_SIGNATURE", "1", r"(?<=[?&;])sig=([A-Za-z0-9%+/=_-]{16,})", 90,
       rb"[?&;]sig=", starts_with="s", groups=(1,), triggers=["sig="]),
    _d("aws_presigned", "AWS_SIGNATURE", "1",
       r"X-Amz-(?:Signature=([0-9a-f]{64})|Security-Token=([A-Za-z0-9%/+=_-]{16,})"
       r"|Credential=([A-Za-z0-9]{16,32}))", 90, rb"X-Amz-(?:Signature|Security-Token|Credential)=",
       groups=(1, 2, 3), triggers=["X-Amz-"]),
    # key material
    _d("pem_body", "PRIVATE_KEY", "1",
       r"(?<![A-Za-z0-9+/=])(?:[A-Za-z0-9+/]{60,76}\r?\n){3,}[A-Za-z0-9+/]{0,76}={0,2}"
       r"(?![A-Za-z0-9+/=])", 88, rb"[A-Za-z0-9+/]{60}\r?\n[A-Za-z0-9+/]{60}",
       rewind="+/", rewind_alnum=True, validate=_plain(_b64_block_ok), triggers=["\n"]),
    _token("base64_pem", "PRIVATE_KEY", "LS0tLS1CRUdJTi", r"[A-Za-z0-9+/=]{20,}",
           tail=r"(?![A-Za-z0-9+/=])"),
    _token("dockerconfig_blob", "DOCKER_AUTH", "eyJhdXRocyI", r"[A-Za-z0-9+/=]{20,}",
           tail=r"(?![A-Za-z0-9+/=])", priority=96),
    _d("docker_auth", "DOCKER_AUTH", "1",
       r"\"(?:auth|identitytoken|registrytoken)\"\s*:\s*\"([A-Za-z0-9+/=_-]{8,})\"", 90,
       rb"\"(?:auth|identitytoken|registrytoken)\"\s*:", groups=(1,),
       validate=_plain(lambda v: not is_placeholder(v)), triggers=["\"auth\"", "token\""]),
    # passwords on command lines, in env lines and in prose
    _d("mysql_password_flag", "PASSWORD", "1",
       rf"\b(?:mysql|mysqldump|mariadb|mysqladmin|mysqlsh)\b{_SHELL_ARGS}\s-p([^\s\"'`|;&<>-]"
       r"[^\s\"'`|;&<>]{2,200})", 84, rb"\b(?:mysql|mysqldump|mariadb|mysqladmin|mysqlsh)\b",
       groups=(1,), validate=_plain(lambda v: not is_placeholder(v)),
       triggers=["mysql", "mariadb"]),
    _d("redis_cli_password", "PASSWORD", "1",
       rf"\bredis-cli\b{_SHELL_ARGS}\s(?:-a|--pass)\s+{_CLI_VALUE}", 84, rb"\bredis-cli\b",
       groups=(1, 2, 3), validate=_plain(lambda v: not is_placeholder(v)),
       triggers=["redis-cli"]),
    _d("curl_user_password", "PASSWORD", "1",
       rf"\bcurl\b{_SHELL_ARGS}\s(?:-u|--user)\s*[\"']?[^\s:\"']*:([^\s\"'`|;&<>@]{{3,200}})",
       84, rb"\bcurl\b", groups=(1,), validate=_plain(lambda v: not is_placeholder(v)),
       triggers=["curl"]),
    _d("login_password_flag", "PASSWORD", "1",
       rf"\b(?:docker|podman|helm|oras|skopeo|buildah)\s+(?:registry\s+)?login\b{_SHELL_ARGS}"
       rf"\s(?:-p|--password)[\s=]+{_CLI_VALUE}", 84,
       rb"\b(?:docker|podman|helm|oras|skopeo|buildah)\s+(?:registry\s+)?login\b",
       groups=(1, 2, 3), validate=_plain(lambda v: not is_placeholder(v)),
       triggers=["login"]),
    _d("sshpass_password", "PASSWORD", "1", rf"\bsshpass\s+-p\s*{_CLI_VALUE}", 84,
       rb"\bsshpass\s", groups=(1, 2, 3), validate=_plain(lambda v: not is_placeholder(v)),
       triggers=["sshpass"]),
    _d("env_secret_line", "SECRET", "1",
       rf"(?<![\w.-])[A-Z][A-Z0-9_]*{_ENV_SUFFIX}\s*=\s*{_VALUE}", 81,
       _ENV_SUFFIX.encode() + rb"\s*=", rewind="_", rewind_alnum=True, groups=(1, 2, 3),
       validate=secret_value_ok,
       triggers=["PASS", "PWD", "SECRET", "TOKEN", "KEY", "CREDENTIALS", "AUTH", "DSN"]),
    _d("prose_password", "PASSWORD", "1",
       r"(?i:\b(?:password|passphrase|passcode|passwd|pw|pwd)(?:\s+(?:is|was|will\s+be|="
       r"|:)\s*:?|\s*[:=]))\s*[\"'`]?([^\s\"'`]*[^\s\"'`.,;:!?)\]])", 79,
       rb"(?i)(?:password|passphrase|passcode|passwd|pwd?)(?:\s+(?:is|was|will)|\s*[:=])",
       groups=(1,), validate=_plain(_prose_secret_ok),
       triggers=["pass", "pw"], ignore_case=True),
    _d("prose_password_bare", "PASSWORD", "1",
       r"(?i:\b(?:password|passcode|passphrase)\s+)([^\s\"'`]*[^\s\"'`.,;:!?)\]])", 78,
       rb"(?i)(?:password|passcode|passphrase)\s", groups=(1,),
       validate=_plain(_bare_password_ok), triggers=["pass"], ignore_case=True),
    # PII
    _d("iban", "IBAN", "1",
       rf"(?<![A-Za-z0-9])(?:{_IBAN_COUNTRIES})\d{{2}}(?:[ ]?[A-Z0-9]{{4}}){{2,7}}"
       r"(?:[ ]?[A-Z0-9]{1,3})?(?![A-Za-z0-9])", 62,
       rf"(?:{_IBAN_COUNTRIES})\d\d[ ]?[A-Z0-9]{{4}}".encode(), validate=_plain(_iban_ok),
       canonical=_upper_alnum, triggers=_DIGIT_TRIGGERS),
    _d("us_ssn", "SSN", "1",
       r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])", 58,
       rb"\b\d{3}-\d\d-\d{4}", canonical=_digits, triggers=["-"]),
    _d("us_ssn_context", "SSN", "1",
       r"(?i:\b(?:ssn|social\s+security(?:\s+(?:number|no\.?))?)\W{1,4})"
       r"((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})(?!\d)", 58,
       rb"(?i)\b(?:ssn|social\s+security)", groups=(1,), canonical=_digits,
       triggers=["ssn", "social"], ignore_case=True),
    _d("phone_domestic", "PHONE", "1",
       r"(?<![\w.+/:-])(?<![0-9]{4} )(?<![A-Z]{2}\d\d )(?:00[1-9]\d{0,2}[ -]\(?\d{1,4}\)?(?:[ -]\d{2,8}){1,5}"
       r"|0\d{1,4}-\d{1,4}-\d{4}|0[1-9]\d{1,4}[ /]\d{3,4}[ ]?\d{3,5}|0[1-9]\d{1,4}[ /]\d{5,8})"
       r"(?![\w]|[.:/-]\d)", 54,
       rb"(?:^|[^\w.+/:-])(?:0\d{2,5}[ /-]\d|0\d-\d)", starts_with="0",
       validate=_plain(_domestic_phone_ok), canonical=_digits,
       triggers=["0"]),
    _d("email_obfuscated", "EMAIL", "1",
       r"(?<![\w.%+-])[^\W_][\w.+-]*(?:\s*(?:\[at\]|\(at\)|\{at\}|<at>)\s*|\s+at\s+(?=[\w-]+\s+dot\s)"
       r"|\s*[@＠]\s+|\s*＠|%40)"
       r"[\w-]+(?:(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>)\s*|\s+dot\s+|\.|．)[\w-]+)*"
       r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>)\s*|\s+dot\s+|\.|．)[^\W\d_]{2,24}(?![\w-])", 71,
       "(?i)\\s?(?:\\[at\\]|\\(at\\)|\\{at\\}|<at>|＠)|\\s@\\s|\\w@\\s|%40"
       "|\\sat\\s+[\\w-]+\\s+dot\\s".encode(), rewind="_.+-", rewind_alnum=True,
       validate=_plain(_obfuscated_email_ok),
       canonical=_lower, triggers=["at", "@", "＠", "%40"], ignore_case=True, flags=re.I),
    _d("email_idn", "EMAIL", "1",
       r"(?<![\w.%+-])[\w.%+-]+@(?:[\w-]+\.)+[^\W\d_]{2,24}(?![\w-])", 70,
       rb"@[A-Za-z0-9.-]*[\x80-\xff]", rewind="_.%+-", rewind_alnum=True,
       validate=_plain(lambda v: not v.isascii()), canonical=_lower, triggers=["@"]),
    _d("ip_in_hostname", "IPV4", "1",
       r"(?<![\w.-])(?:ip-(\d{1,3}(?:-\d{1,3}){3})(?![\w-])"
       r"|(\d{1,3}(?:-\d{1,3}){3})(?=\.[a-z]))", 50,
       rb"\b\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3}", rewind="ip-", rewind_alnum=False, groups=(1, 2),
       validate=_plain(_octets_ok), canonical=_dashed_ip, triggers=["-"]),
)


def family_body_ok(family: TokenFamily) -> Callable[[str], bool]:
    """The family's `check` on the part of a match after its prefix."""
    prefix = re.compile(family.prefix) if family.prefix else None

    def body(value: str) -> str:
        m = prefix.match(value) if prefix is not None else None
        return value[m.end():] if m is not None else value

    if family.check == "mixed":
        return lambda v: mixed_token(body(v))
    if family.check == "alnum":
        return lambda v: _alnum_mixed(body(v))
    return lambda v: True


def _alnum_mixed(value: str) -> bool:
    return _HAS_DIGIT.search(value) is not None and _HAS_LETTER.search(value) is not None


_HAS_LETTER = re.compile(r"[A-Za-z]")


def _family_detector(family: TokenFamily) -> Detector:
    # A token framed by its context (`SSWS <token>`, `/token:<token>`) outranks a bare shape
    # that the same characters also fit.
    return _d(family.name, family.kind, "1", family.pattern, 92 if family.value_only else 91,
              family.locator, rewind=family.rewind, rewind_alnum=bool(family.rewind),
              groups=(1,) if family.value_only else (0,),
              validate=None if not family.check else _plain(family_body_ok(family)),
              triggers=[family.trigger])


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    n = len(value)
    return math.log2(n) - sum(k * math.log2(k) for k in Counter(value).values()) / n


def random_token(value: str) -> bool:
    """Is a value of 16+ characters random enough to be a key, not a name, path, date or
    version? It needs a letter and a digit and 3 bits of entropy per character; and a value
    made of separated parts that each read as a word, a number or a word with a number
    (`user_session_2024_01_01`, `oauth2-client-v2`, `~/.ssh/id_ed25519`, a UUID) is an
    identifier. Random keys over a base64url alphabet have long parts that switch between
    letters and digits many times, so they never read that way."""
    n = len(value)
    if n < 16:
        return False
    if _PART_SEPARATORS.search(value) is not None:
        parts = [p for p in _PART_SEPARATORS.split(value) if p]
        if len(parts) > 1 and all(_PLAIN_PART.fullmatch(p) for p in parts):
            return False
    if n >= 24 and mixed_token(value):
        return True  # upper, lower and digits over 24+ characters: well above 3 bits each
    return (_alnum_mixed(value) and not is_placeholder(value)
            and shannon_entropy(value) >= 3.0)


_PART_SEPARATORS = re.compile(r"[_.\-/~+=:]+")
_PLAIN_PART = re.compile(r"[A-Za-z]*\d*[A-Za-z]*|\d*[A-Za-z]*\d*")
# The secret word ends the key's name and starts a part of it: after a separator, at the
# start, or as a camel-case word (`algoliaKey`, `DD_APP_KEY`, `fastly-token`), never inside
# a word (`monkey`, `tokenizer`, `keyboard`, `secret_name`). The match starts at the word, so
# the locator's report is where the pattern is tried, with no walk back over the name.
_KEYED_NAME = (r"(?:(?<![A-Za-z0-9])|(?<=[a-z0-9])(?=[A-Z]))"
               rf"(?i:{_KEYED_WORDS})s?[\"']?")

_KEYED_DETECTORS: tuple[Detector, ...] = (
    # gitleaks' keyword rules (`datadog_app_key = ...`, `algoliaKey: ...`, `"fastly-token"`):
    # any identifier holding a secret word, a separator, then a random-looking value.
    _d("keyed_random_value", "SECRET", "1",
       rf"{_KEYED_NAME}\s{{0,8}}(?:=|:|=>|:=|\|\|:|<-)\s{{0,8}}[\"'`]?"
       r"([A-Za-z0-9_+/=.~-]{16,256})(?![\w+/=.~-])",
       78, b"(?i)" + _KEYED_WORDS.encode() + rb"s?[\"']?\s{0,8}(?:[:=]|\|\||<-)",
       groups=(1,), validate=_plain(random_token),
       triggers=["key", "token", "secret", "pass", "pwd", "auth", "credential", "dsn"],
       ignore_case=True),
)

DETECTORS = DETECTORS + _EXTRA_DETECTORS + tuple(_family_detector(f) for f in TOKEN_FAMILIES) \
    + _KEYED_DETECTORS

DETECTOR_VERSIONS: dict[str, str] = {d.name: d.version for d in DETECTORS} | {"deny_list": "2"}
KINDS: tuple[str, ...] = tuple(dict.fromkeys(d.kind for d in DETECTORS)) + ("NAME",)


def _term_variants(term: str) -> list[str]:
    return list(dict.fromkeys(unicodedata.normalize(form, term) for form in ("NFC", "NFD")))


def _clean_terms(terms: Sequence[str]) -> list[str]:
    return sorted({" ".join(t.split()) for t in terms if t and t.strip()}, key=len, reverse=True)


_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss",
                       "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ı": "i"})


def ascii_fold(text: str) -> str:
    """Müller -> Muller, Łukasz -> Lukasz: the spelling of a name typed on an ASCII keyboard."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_variants(term: str) -> list[str]:
    """The spellings a listed name turns up in: as listed, ASCII-folded, and for a name of
    several words also reversed, with or without a comma (`Doe, Jane`), hyphenated (`Jane-Doe`), joined
    (`JaneDoe`, matched case-insensitively so also `janedoe`) and the surname alone (the last
    word, when it has three or more letters)."""
    words = term.split()
    out = [term]
    if len(words) >= 2:
        rest = " ".join(words[:-1])
        out += [f"{words[-1]}, {rest}", f"{words[-1]} {rest}", "-".join(words), "".join(words)]
        if len(words[-1]) >= 3:
            out.append(words[-1])
    out += [ascii_fold(v) for v in out]
    return list(dict.fromkeys(out))


@lru_cache(maxsize=64)
def _deny_variants(terms: tuple[str, ...]) -> dict[str, str]:
    """Every spelling of every deny term -> the canonical form of the term it spells (so
    `Doe, Jane`, `JaneDoe` and `Jane Doe` share one token). Longest spellings first."""
    found: dict[str, str] = {}
    for term in _clean_terms(terms):
        canon = _name_canonical(term)
        for variant in name_variants(term):
            found.setdefault(" ".join(variant.split()), canon)
    return dict(sorted(found.items(), key=lambda kv: len(kv[0]), reverse=True))


def _variant_canonical(variants: dict[str, str]) -> Callable[[str], str]:
    lookup = {_name_canonical(ascii_fold(v)): c for v, c in variants.items()}

    def canonical(value: str) -> str:
        canon = _name_canonical(value)
        return lookup.get(_name_canonical(ascii_fold(value)), canon)
    return canonical


def deny_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """Whole-word, case-insensitive alternation of the deny terms and their name variants
    (`name_variants`), NFC and NFD spellings."""
    parts = [r"\s+".join(re.escape(w) for w in variant.split())
             for term in _deny_variants(tuple(terms)) for variant in _term_variants(term)]
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


def _deny_detector(terms: Sequence[str]) -> Detector | None:
    pattern = deny_pattern(terms)
    if pattern is None:
        return None
    return Detector("deny_list", "NAME", "2", pattern, NAME_PRIORITY, b"",
                    canonical=_variant_canonical(_deny_variants(tuple(terms))))


def _deny_locators(terms: Sequence[str]) -> list[bytes]:
    """One alternation of every spelling (one Hyperscan expression each would make the scan
    several times slower)."""
    parts = [r"\s+".join(re.escape(w) for w in variant.split())
             for term in _deny_variants(tuple(terms)) for variant in _term_variants(term)]
    return ["|".join(parts).encode()] if parts else []


# ---- tokens ------------------------------------------------------------------------------------

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

    def mapping(self) -> dict[str, tuple[str, str]]:
        return dict(self._mapping)

    def __len__(self) -> int:
        return len(self._mapping)


Span = tuple[int, int, str, str, str]  # start, end, kind, canonical value, raw value
_Candidate = tuple[int, int, int, str, str, str]  # start, end, priority, kind, canonical, raw
# Inside a batch a found value also carries the index of its text: _Candidate + (text,).


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


# ---- the fast locator --------------------------------------------------------------------------

class _Locator:
    """One Hyperscan database over every detector's locator (and the deny terms)."""

    def __init__(self, detectors: Sequence[Detector], deny: Detector | None,
                 deny_locators: Sequence[bytes]) -> None:
        som = hyperscan.HS_FLAG_SOM_LEFTMOST
        by_locator: dict[tuple[bytes, int], list[Detector]] = {}
        for det in detectors:
            by_locator.setdefault((det.locator, som), []).append(det)
        name_flags = (som | hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8
                      | hyperscan.HS_FLAG_UCP)
        for locator in deny_locators:
            by_locator.setdefault((locator, name_flags), []).append(deny)
        self.owners: list[tuple[Detector, ...]] = [tuple(d) for d in by_locator.values()]
        index = {id(det): n for n, det in enumerate(dict.fromkeys(
            det for dets in self.owners for det in dets))}
        self.plans = [tuple(_plan(index[id(det)], det) for det in dets) for dets in self.owners]
        self.db = hyperscan.Database()
        self.db.compile(expressions=[k[0] for k in by_locator],
                        ids=list(range(len(by_locator))), elements=len(by_locator),
                        flags=[k[1] for k in by_locator])
        self.scratch = _ThreadScratch(self.db)

    def reports(self, buffer: Any) -> array:
        """Every locator match in the buffer as start * len(owners) + locator id."""
        return _scan_keys(self.db, self.scratch.get(), buffer, len(self.owners))


def _scan_keys(db: Any, scratch: Any, buffer: Any, n_ids: int) -> array:
    found = array("q")
    add = found.append

    def on_match(ident: int, start: int, _end: int, _flags: int, _ctx: object) -> None:
        add(start * n_ids + ident)

    db.scan(buffer, match_event_handler=on_match, scratch=scratch)
    return found


Reports = list[tuple[int, list[int], list[int], list[int], list[int]]]


def _grouped_reports(batch: _Joined, buffer: Any, keys: array, n_ids: int,
                     group_of: np.ndarray | None = None) -> Reports:
    """Hyperscan reports, deduplicated, as (group, starts, text indexes, text starts, text
    ends), one entry per group (the locator id, or `group_of[id]`), starts in text order.

    Offsets are characters of the joined string. A report on the separator character just
    before a text belongs to that text (a locator may consume one character of left context);
    other reports outside every text are dropped. One text with few reports (a single field
    redacted or checked on its own) takes a path with no numpy call.
    """
    if not keys:
        return []
    if batch.single and len(keys) <= 256:
        text = batch.text
        size = len(text)
        ordered = sorted(set(keys))
        if text.isascii():
            places = [divmod(key, n_ids) for key in ordered]
        else:
            byte_starts = np.array([key // n_ids for key in ordered], dtype=np.int64)
            chars = batch.char_offsets(byte_starts, buffer).tolist()
            places = [(c, key % n_ids) for c, key in zip(chars, ordered, strict=True)]
        groups: dict[int, list[int]] = {}
        for at, ident in places:
            if at < size:
                groups.setdefault(ident if group_of is None else int(group_of[ident]),
                                  []).append(at)
        return [(g, ats, [0] * len(ats), [0] * len(ats), [size] * len(ats))
                for g, ats in sorted(groups.items())]
    unique = np.unique(np.frombuffer(keys, dtype=np.int64))
    starts = batch.char_offsets(unique // n_ids, buffer)
    ids = unique % n_ids
    text_index = batch.text_of(starts)
    inside = starts < batch.ends[text_index]
    group = (ids if group_of is None else group_of[ids])[inside]
    order = np.argsort(group, kind="stable")
    group = group[order]
    starts = starts[inside][order]
    text_index = text_index[inside][order]
    cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(group)]
    ats, owners = starts.tolist(), text_index.tolist()
    lows = batch.starts[text_index].tolist()
    highs = batch.ends[text_index].tolist()
    return [(int(group[a]), ats[a:b], owners[a:b], lows[a:b], highs[a:b])
            for a, b in itertools.pairwise(cuts)]


def _plan(ident: int, det: Detector) -> tuple:
    """A detector as `_run_plan` uses it: everything looked up once."""
    return (ident, det.pattern.match, det.rewind_set, det.rewind_alnum,
            frozenset(det.starts_with), None if det.groups == (0,) else det.groups,
            det.validate, getattr(det.validate, "plain", None), det.canonical, det.priority,
            det.kind)


def _run_plan(plan: tuple, text: str, ats: list[int], owners: list[int], lows: list[int],
              highs: list[int], found: list[tuple]) -> None:
    """Try one detector's precise pattern at each place its locator reported (see Detector)."""
    _ident, match, chars, alnum, first, groups, validate, plain, canonical, priority, kind = plan
    add = found.append
    size = len(text)
    if not chars and not first:
        places: Iterable[tuple[int, int, int]] = zip(ats, owners, highs, strict=True)
    else:
        places = _anchors(text, ats, owners, lows, highs, chars, alnum, first)
    for pos, k, hi in places:
        m = match(text, pos, hi)
        if m is None:
            continue
        if groups is None:
            start, end = m.span()
        else:
            for g in groups:
                start, end = m.span(g)
                if start >= 0:
                    break
            if start < 0 or end <= start:
                continue
        value = text[start:end]
        if plain is not None:
            if not plain(value):
                continue
        elif validate is not None and not validate(
                value, start > 0 and end < size and text[start - 1] == text[end] in "\"'"):
            continue
        add((start, end, priority, kind,
             value if canonical is None else canonical(value), value, k))


def _anchors(text: str, ats: list[int], owners: list[int], lows: list[int], highs: list[int],
             chars: frozenset[str], alnum: bool, first: frozenset[str]
             ) -> Iterator[tuple[int, int, int]]:
    """Where to try a pattern whose locator may start one character early (`first`) or inside
    the run the match starts with (`chars`): each place once."""
    seen: set[int] = set()
    for at, k, lo, hi in zip(ats, owners, lows, highs, strict=True):
        pos = at
        if first and text[pos] not in first:
            pos += 1
        if pos < lo:
            continue
        if chars:
            while pos > lo:
                c = text[pos - 1]
                if c in chars or (alnum and c > "\x7f" and c.isalnum()):
                    pos -= 1
                else:
                    break
            if pos in seen:
                continue
            seen.add(pos)
        yield pos, k, hi


class _ThreadScratch:
    """Hyperscan scratch space is not shareable between threads: one per thread."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.local = threading.local()

    def get(self) -> Any:
        scratch = getattr(self.local, "scratch", None)
        if scratch is None:
            scratch = self.local.scratch = hyperscan.Scratch(self.db)
        return scratch


@lru_cache(maxsize=16)
def _locator_for(terms: tuple[str, ...]) -> _Locator | None:
    if hyperscan is None:
        return None
    return _Locator(DETECTORS, _deny_detector(terms), _deny_locators(terms))


# ---- batches: many texts as one string ----------------------------------------------------------

_SEP = _SEPARATOR.decode()


class _Joined:
    """Texts joined by `_SEP` into one string (and, on demand, one UTF-8 buffer), with every
    text's character bounds. The separator is a newline on each side, so patterns see a text's
    edges exactly as they would in the text alone (lookarounds, `\\b`); matches are bounded to
    their own text with `endpos`."""

    __slots__ = ("texts", "text", "starts", "ends", "single", "_starts_list", "_ends_list",
                 "_buffer")

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.single = len(texts) == 1
        self._buffer: Any = None
        if self.single:
            self.text = texts[0]
            self._starts_list, self._ends_list = [0], [len(self.text)]
            self.starts = np.zeros(1, dtype=np.int64)
            self.ends = np.array(self._ends_list, dtype=np.int64)
            return
        self.text = _SEP.join(texts)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        self.starts = _starts_of(lengths)
        self.ends = self.starts + lengths
        self._starts_list: list[int] | None = None
        self._ends_list: list[int] | None = None

    @classmethod
    def from_arrow(cls, values: pa.Array) -> _Joined:
        """A batch straight from an Arrow string array (nulls read as empty): normalised (NFC,
        only when some text is not ASCII), joined and encoded by Arrow, decoded once, with no
        Python string per text. `texts` stays None."""
        values = pc.fill_null(values.cast(pa.large_string()), "")
        if not pc.all(pc.string_is_ascii(values)).as_py():
            values = pc.utf8_normalize(values, form="NFC")
        lists = pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values)
        joined = pc.binary_join(lists, pa.scalar(_SEP, pa.large_string()))
        bounds = np.frombuffer(joined.buffers()[1], dtype=np.int64)[
            joined.offset:joined.offset + 2].tolist()
        buffer = joined.buffers()[2][bounds[0]:bounds[1]]
        sizes = np.asarray(pc.binary_length(values), dtype=np.int64)
        byte_starts = _starts_of(sizes)
        self = cls.__new__(cls)
        self.texts = None
        self.single = len(values) == 1
        self._buffer = buffer
        self.text = str(memoryview(buffer), "utf-8")
        self._starts_list = self._ends_list = None
        self.starts = self.char_offsets(byte_starts, buffer)
        self.ends = self.char_offsets(byte_starts + sizes, buffer)
        return self

    def encoded(self) -> Any:
        if self._buffer is not None:
            return self._buffer
        # Text by text: encoding ASCII text is a copy, and one non-ASCII character would make
        # the encoder walk the whole joined string the slow way.
        return _SEPARATOR.join([t.encode("utf-8", "surrogatepass") for t in self.texts])

    def char_offsets(self, byte_offsets: np.ndarray, buffer: bytes) -> np.ndarray:
        """Character offsets of byte offsets into `encoded()` (a continuation byte maps to the
        character after the one it belongs to)."""
        if self.text.isascii():
            return byte_offsets
        continuation = np.flatnonzero(np.frombuffer(buffer, dtype=np.int8) < -64)
        return byte_offsets - np.searchsorted(continuation, byte_offsets)

    def text_of(self, offsets: np.ndarray) -> np.ndarray:
        """Index of the text each offset falls in; the separator character just before a text
        counts as that text's (a locator may consume one character of left context)."""
        return np.searchsorted(self.starts, offsets + 1, side="right") - 1

    @property
    def starts_list(self) -> list[int]:
        if self._starts_list is None:
            self._starts_list = self.starts.tolist()
        return self._starts_list

    @property
    def ends_list(self) -> list[int]:
        if self._ends_list is None:
            self._ends_list = self.ends.tolist()
        return self._ends_list


def _starts_of(lengths: np.ndarray) -> np.ndarray:
    """Where each text starts once they are joined by `_SEP`."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1] + len(_SEP), out=starts[1:])
    return starts


def _arrow_batches(values: pa.Array | pa.ChunkedArray) -> Iterator[tuple[int, _Joined]]:
    """(index of the first text, batch) over an Arrow string array, about `_BATCH_BYTES` of
    text a batch."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    first = 0
    for chunk in chunks:
        sizes = np.asarray(pc.fill_null(pc.binary_length(chunk), 0), dtype=np.int64)
        for lo, hi in itertools.pairwise(_cuts(np.cumsum(sizes))):
            yield first + lo, _Joined.from_arrow(chunk.slice(lo, hi - lo))
        first += len(chunk)


def _batches(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """Index ranges of about `_BATCH_BYTES` characters each (one text may exceed it)."""
    if len(texts) <= 1:
        yield from [(0, 1)] if texts else []
        return
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    yield from itertools.pairwise(_cuts(ends))


def _cuts(ends: np.ndarray) -> list[int]:
    """Batch boundaries (indexes) given each text's cumulative end: a batch closes with the
    text that reaches the next multiple of `_BATCH_BYTES`."""
    n = len(ends)
    if n == 0:
        return []
    marks = np.arange(_BATCH_BYTES, int(ends[-1]) + 1, _BATCH_BYTES)
    inner = (np.searchsorted(ends, marks, side="left") + 1).tolist()
    return [0, *sorted({c for c in inner if 0 < c < n}), n]


# ---- the redactor ------------------------------------------------------------------------------

@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: redaction allocates millions of small acyclic
    objects (spans, tokens), and collections triggered by them cost about a fifth of the time.
    Reference counting still frees everything; the collector resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Redactor:
    """Replaces every detected identifier and secret with a token; see the module docstring."""

    def __init__(self, deny_terms: Sequence[str] = (), *, version: str = REDACTION_VERSION,
                 corpus_key: bytes | None = None, engine: str = "auto",
                 propagate: bool = True) -> None:
        if engine not in ("auto", "hyperscan", "python"):
            raise ValueError(f"unknown engine {engine!r}")
        self.version = version
        self.deny_terms = tuple(_clean_terms(deny_terms))
        self.corpus_key = corpus_key
        self._deny = _deny_detector(self.deny_terms)
        self._stable_tokens: dict[tuple[str, str], str] = {}
        self._locator = None if engine == "python" else _locator_for(self.deny_terms)
        self.propagate = propagate
        if engine == "hyperscan" and self._locator is None:
            raise RuntimeError("the hyperscan package is not installed")

    @property
    def engine(self) -> str:
        return "python" if self._locator is None else "hyperscan"

    # ---- detection ----
    def detect(self, text: str) -> list[Span]:
        """Non-overlapping (start, end, kind, canonical value, raw value), in text order."""
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans for many texts at once: one Hyperscan pass per batch of about 8 MB. With
        propagation on, a value found in a text is also found where it recurs in that text
        (each text stands alone here, as in `redact_texts`)."""
        present = [t if isinstance(t, str) else "" for t in texts]
        results: list[list[Span]] = [[] for _ in present]
        with _gc_paused():
            for lo, hi in _batches(present):
                batch = _Joined(present[lo:hi])
                starts = batch.starts_list
                found = self._detect_joined(batch)
                if self.propagate and found:
                    found = _propagate(batch, found, None, 0)
                for start, end, _prio, kind, canon, value, k in found:
                    base = starts[k]
                    results[lo + k].append((start - base, end - base, kind, canon, value))
        return results

    def _detect_joined(self, batch: _Joined) -> list[tuple]:
        """What every text of the batch holds, in text order and offsets of the joined string:
        (start, end, priority, kind, canonical value, raw value, text index)."""
        if self._locator is not None:
            return self._locate(batch)
        found: list[tuple] = []
        for k, (text, base) in enumerate(zip(batch.texts, batch.starts_list, strict=True)):
            if text:
                found.extend((s + base, e + base, 0, kind, c, v, k)
                             for s, e, kind, c, v in self._detect_python(text))
        return found

    def _detect_python(self, text: str) -> list[Span]:
        lowered = text.lower()
        found: list[_Candidate] = []
        for det in DETECTORS:
            if not det.may_match(text, lowered):
                continue
            for m in det.pattern.finditer(text):
                cand = _candidate(det, text, m)
                if cand is not None:
                    found.append(cand)
        if self._deny is not None:
            for m in self._deny.pattern.finditer(text):
                cand = _candidate(self._deny, text, m)
                if cand is not None:
                    found.append(cand)
        return resolve_overlaps(found)

    def _locate(self, batch: _Joined) -> list[tuple]:
        """One Hyperscan pass over the batch; each precise pattern is then tried once where its
        locator reported, anchored and bounded to the text it is in. Reports are grouped by
        locator so each detector's loop runs with everything it needs in local variables."""
        buffer = batch.encoded()
        locator = self._locator
        found: list[tuple] = []
        for owner, ats, owners, lows, highs in _grouped_reports(
                batch, buffer, locator.reports(buffer), len(locator.owners)):
            for plan in locator.plans[owner]:
                _run_plan(plan, batch.text, ats, owners, lows, highs, found)
        return _resolve(found)

    def _label(self, kind: str, canonical: str) -> str | None:
        if self.corpus_key is None:
            return None
        return self._stable_token(kind, canonical)[len(kind) + 2:-1]

    def _stable_token(self, kind: str, canonical: str) -> str:
        """The corpus-stable token of a value: a keyed hash, cached (the cache is bounded)."""
        digest = hmac.new(self.corpus_key, f"{kind}\x00{canonical}".encode(),
                          hashlib.sha256).hexdigest()
        token = f"<{kind}_{digest[:STABLE_TOKEN_HEX]}>"
        if len(self._stable_tokens) >= 200_000:
            self._stable_tokens.clear()
        self._stable_tokens[(kind, canonical)] = token
        return token

    # ---- text ----
    def apply(self, text: str, spans: Sequence[Span], tokens: TokenTable) -> str:
        """Replace the given spans of `text` with tokens from `tokens`."""
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        known = tokens._by_value
        for start, end, kind, canon, value in spans:
            token = known.get((kind, canon))
            if token is None:
                token = tokens.token(kind, canon, value, self._label(kind, canon))
            out.append(text[pos:start])
            out.append(token)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def redact_text(self, text: str | None, tokens: TokenTable) -> str | None:
        """The text with every detected value replaced by its token in `tokens`."""
        if not isinstance(text, str) or not text:
            return text
        return self._redact_all([text], [tokens])[0]

    def redact_texts(self, texts: Sequence[str | None],
                     tokens: Sequence[TokenTable] | None = None) -> list[str | None]:
        """Batch form of redact_text; one TokenTable per text unless given."""
        present = [t if isinstance(t, str) else "" for t in texts]
        redacted = self._redact_all(present, tokens)
        return [r if isinstance(t, str) else t for t, r in zip(texts, redacted, strict=True)]

    def _redact_all(self, texts: list[str], tables: Sequence[TokenTable] | None,
                    whole_secrets: frozenset[int] | set[int] = frozenset()) -> list[str]:
        """Every text redacted with the token table at the same index, in text order (so
        tokens number in order of first appearance across texts sharing a table); without
        tables, each text numbers its own tokens and no mapping is kept. A text whose index is
        in `whole_secrets` becomes one SECRET token. Texts with nothing found come back as the
        same objects."""
        out = list(texts)
        with _gc_paused():
            for lo, hi in _batches(texts):
                self._redact_batch(_Joined(texts[lo:hi]), tables, whole_secrets, out, lo)
        return out

    def _redact_batch(self, batch: _Joined, tables: Sequence[TokenTable] | None,
                      whole_secrets: frozenset[int] | set[int], out: list[str], lo: int) -> None:
        # A function of its own so that its temporaries are gone before the collector resumes.
        spans = self._detect_joined(batch)
        forced = [k - lo for k in whole_secrets if lo <= k < lo + len(batch.starts)]
        if self.propagate and (spans or forced):
            spans = _propagate(batch, spans, tables, lo,
                               [(k, batch.texts[k].strip()) for k in forced],
                               batch_wide=self.corpus_key is not None and tables is not None)
        if spans or forced:
            self._apply_joined(batch, spans, forced, tables, out, lo)

    def _apply_joined(self, batch: _Joined, found: list[tuple], forced: list[int],
                      tables: Sequence[TokenTable] | None, out: list[str], offset: int) -> None:
        """Write the redacted form of every text of the batch that holds something into
        `out[offset + k]`; the texts in `forced` become one SECRET token each."""
        if forced:
            whole = set(forced)
            found = [f for f in found if f[6] not in whole]
            found += [(batch.starts_list[k], batch.ends_list[k], 0, "SECRET", batch.texts[k],
                       batch.texts[k], k) for k in forced]
            found.sort()
        text = batch.text
        starts, ends = batch.starts_list, batch.ends_list
        stable = self.corpus_key is not None
        stable_tokens = self._stable_tokens
        # Stable tokens need no table when nobody keeps the mapping.
        keep_tables = tables is not None or not stable
        current = -1
        pieces: list[str] = []
        add = pieces.append
        pos = 0
        table = TokenTable()
        by_value, mapping = table._by_value, table._mapping
        for start, end, _prio, kind, canon, value, k in found:
            if k != current:
                if current >= 0:
                    add(text[pos:ends[current]])
                    out[offset + current] = "".join(pieces)
                current, pos = k, starts[k]
                pieces = []
                add = pieces.append
                if keep_tables:
                    table = TokenTable() if tables is None else tables[offset + k]
                    by_value, mapping = table._by_value, table._mapping
            key = (kind, canon)
            if not keep_tables:
                token = stable_tokens.get(key) or self._stable_token(kind, canon)
            else:
                token = by_value.get(key)
                if token is None:
                    if stable:
                        token = stable_tokens.get(key) or self._stable_token(kind, canon)
                        by_value[key] = token
                        mapping[token] = (kind, value)
                    else:
                        token = table.token(kind, canon, value)
            add(text[pos:start])
            add(token)
            pos = end
        if current >= 0:
            add(text[pos:ends[current]])
            out[offset + current] = "".join(pieces)

    def redact_strings_in_json(self, json_text: str | None, tokens: TokenTable) -> str | None:
        """Redact every string (keys and values) inside a JSON document, keeping its shape.

        A string value under a secret-named key (`"password": "..."`) is a secret whatever it
        looks like. A document with nothing to redact comes back byte for byte; text that is
        not valid JSON is redacted as plain text.
        """
        if not isinstance(json_text, str) or not json_text:
            return json_text
        texts: list[str] = []
        secrets: set[int] = set()
        job = _json_job(json_text, texts, secrets)
        redacted = self._redact_all(texts, [tokens] * len(texts), secrets)
        return _finish_json(job, texts, redacted)

    # ---- tables ----
    def redact_traces(self, traces: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Trace rows -> (redacted rows plus redaction_version, vault rows).

        One TokenTable per trace, shared by every field of that trace in the order prompt,
        context, candidates (text, generation), approved_answer, extra_json, so tokens number
        in order of first appearance. Every text of the table, and every string inside its
        JSON fields, goes through one batched detection. The input frame is not changed.
        Vault rows: trace_id, token, kind, value (one per distinct token per trace).
        """
        with _gc_paused():
            return self._redact_traces(traces)

    def _redact_traces(self, traces: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        out = traces.copy()
        n = len(out)
        ids = ([str(t) for t in out["trace_id"].tolist()] if "trace_id" in out
               else [str(i) for i in range(n)])
        columns = {c: out[c].tolist() if c in out else [None] * n
                   for c in ("prompt", "context", "approved_answer", "extra_json")}
        candidates = [_candidate_list(c) for c in out["candidates"].tolist()] \
            if "candidates" in out else [None] * n
        tables = [TokenTable() for _ in range(n)]
        texts: list[str] = []
        table_of: list[TokenTable] = []
        secrets: set[int] = set()
        append = texts.append
        plan = []
        generations = [c.get("generation") for cands in candidates for c in cands or ()]
        unchanged = self._json_unchanged(generations + columns["extra_json"])
        generation_unchanged = iter(unchanged[:len(generations)])
        extra_unchanged = unchanged[len(generations):]
        for i in range(n):
            first = len(texts)
            row_slots: list[Any] = []
            for column in ("prompt", "context"):
                value = columns[column][i]
                if isinstance(value, str) and value:
                    row_slots.append(len(texts))
                    append(value)
                else:
                    row_slots.append(None)
            cand_slots = []
            for cand in candidates[i] or ():
                text, generation = cand.get("text"), cand.get("generation")
                t = None
                if isinstance(text, str) and text:
                    t = len(texts)
                    append(text)
                keep = next(generation_unchanged)
                g = _json_job(generation, texts, secrets) \
                    if isinstance(generation, str) and generation and not keep else None
                cand_slots.append((t, g))
            row_slots.append(cand_slots)
            value = columns["approved_answer"][i]
            if isinstance(value, str) and value:
                row_slots.append(len(texts))
                append(value)
            else:
                row_slots.append(None)
            value = columns["extra_json"][i]
            row_slots.append(_json_job(value, texts, secrets)
                             if isinstance(value, str) and value and not extra_unchanged[i]
                             else None)
            plan.append(row_slots)
            table_of.extend([tables[i]] * (len(texts) - first))
        redacted = self._redact_all(texts, table_of, secrets)
        new = {c: list(v) for c, v in columns.items()}
        new_candidates: list[Any] = []
        for i, (p, c, cand_slots, a, x) in enumerate(plan):
            if p is not None:
                new["prompt"][i] = redacted[p]
            if c is not None:
                new["context"][i] = redacted[c]
            cands = candidates[i]
            if cands is not None:
                for cand, (t, g) in zip(cands, cand_slots, strict=True):
                    if t is not None:
                        cand["text"] = redacted[t]
                    if g is not None:
                        cand["generation"] = _finish_json(g, texts, redacted)
            new_candidates.append(cands)
            if a is not None:
                new["approved_answer"][i] = redacted[a]
            if x is not None:
                new["extra_json"][i] = _finish_json(x, texts, redacted)
        for column, values in new.items():
            if column in out:
                out[column] = pd.Series(values, index=out.index, dtype=out[column].dtype)
        if "candidates" in out:
            out["candidates"] = pd.Series(new_candidates, index=out.index, dtype=object)
        out["redaction_version"] = self.version
        return out, vault_frame(ids, tables)

    def _json_unchanged(self, fields: Sequence[Any]) -> list[bool]:
        """Which JSON fields certainly come back byte for byte, told without parsing them.

        Without escapes every string of the document is a substring of its text, between
        quotes (or, for long integers, JSON punctuation), which every locator treats as it
        treats the edge of a text; so when no locator reports anywhere in the text, none would
        in any of its strings. A secret-named key makes its string values secrets whatever they
        look like, so such a document is always parsed.
        """
        present = [f if isinstance(f, str) else "" for f in fields]
        if self._locator is None or not present:
            return [False] * len(present)
        located = np.zeros(len(present), dtype=bool)
        for lo, hi in _batches(present):
            batch = _Joined(present[lo:hi])
            buffer = batch.encoded()
            for _owner, _ats, owners, _lows, _highs in _grouped_reports(
                    batch, buffer, self._locator.reports(buffer), len(self._locator.owners)):
                located[[lo + k for k in owners]] = True
        return [not hit and "\\" not in raw and not _has_secret_key(raw)
                for hit, raw in zip(located.tolist(), present, strict=True)]

    def redact_trace_batches(
        self, batches: Iterable[pd.DataFrame]
    ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """Streaming form: one (redacted, vault) pair per input batch; memory is one batch."""
        for batch in batches:
            yield self.redact_traces(batch)


# ---- known-value propagation -------------------------------------------------------------------

PROPAGATE_MIN_CHARS = 4
PROPAGATED_PRIORITY = 5
# Kinds found only by their context (a key name, a flag, a URL's userinfo, a commit word):
# elsewhere the same value has no context, so only propagation finds it. Values of the other
# kinds have a shape of their own and are found wherever they recur anyway.
PROPAGATED_KINDS = frozenset({
    "PASSWORD", "SECRET", "AWS_SECRET_KEY", "COMMIT", "DOCKER_AUTH", "AZURE_KEY",
    "SAS_SIGNATURE", "AWS_SIGNATURE", "SENTRY_DSN", "HEROKU_KEY", "SSN",
})


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


FIND_MAX_VALUES = 8
ONE_PASS_MIN_TEXTS = 64
ONE_PASS_TEXTS_PER_GROUP = 4
"""From ONE_PASS_MIN_TEXTS texts to search, when groups of ONE_PASS_TEXTS_PER_GROUP texts on
average share their known values (a trace's fields, a day's corpus-stable tokens), one pass
over the whole joined batch beats a search per text (the per-text cost is Python calls and a
rescan per value; the pass is one C loop). Texts that each know their own
values (a trace's, a text's) are still searched one by one: a pass over the batch would be
matched against every other text's values for nothing."""


def _occurrences(batch: _Joined, values_of: Callable[[int], Sequence[str]],
                 texts: Sequence[int]) -> Iterator[tuple[int, int, str]]:
    """(text index, end, value) of every occurrence, inside each given text of the batch, of
    the known values of its group (`values_of(k)`), in character offsets of the joined text.
    Many texts sharing their values (ONE_PASS_MIN_TEXTS): one literal matcher over every
    group's values scans the joined text once (`_literal_matches`), and a match counts only
    inside a given text whose group knows the value. Otherwise each text is searched alone, with `str.find` per value for a group with a few
    values and an automaton for one with more, so the cost stays linear in the text however
    many values a trace holds."""
    text = batch.text
    starts, ends = batch.starts_list, batch.ends_list
    wanted = {k: values_of(k) for k in texts} if len(texts) >= ONE_PASS_MIN_TEXTS else {}
    shared = {id(values): values for values in wanted.values()}
    if wanted and len(shared) * ONE_PASS_TEXTS_PER_GROUP <= len(wanted):
        # texts share their values (a trace's fields, a day): one pass finds them all
        sets = {key: frozenset(values) for key, values in shared.items()}
        union = sorted(set().union(*sets.values()))
        for end, value in _literal_matches(batch, union):
            k = bisect_right(starts, end - len(value)) - 1
            values = wanted.get(k)
            if values is not None and end <= ends[k] and value in sets[id(values)]:
                yield k, end, value
        return
    automata: dict[int, Any] = {}
    for k in texts:
        values = values_of(k)
        start, end = starts[k], ends[k]
        if len(values) <= FIND_MAX_VALUES:
            for value in values:
                at = text.find(value, start, end)
                while at >= 0:
                    yield k, at + len(value), value
                    at = text.find(value, at + 1, end)
            continue
        automaton = automata.get(id(values))
        if automaton is None:
            automaton = automata[id(values)] = ahocorasick.Automaton()
            for value in values:
                automaton.add_word(value, value)
            automaton.make_automaton()
        # A slice, not iter(text, start, end): pyahocorasick converts the whole string it is
        # given on every call.
        for last, value in automaton.iter(text[start:end]):
            yield k, start + last + 1, value


def _literal_matches(batch: _Joined, values: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(end, value) of every occurrence of every value in the joined text, in character
    offsets: hyperscan's literal mode over the batch's UTF-8 buffer when it is installed (a
    few milliseconds a megabyte), else one pyahocorasick automaton (tens of milliseconds a
    megabyte, all of it a C loop)."""
    if not values:
        return
    if hyperscan is None:
        automaton = ahocorasick.Automaton()
        for value in values:
            automaton.add_word(value, value)
        automaton.make_automaton()
        for last, value in automaton.iter(batch.text):
            yield last + 1, value
        return
    db = hyperscan.Database()
    db.compile(expressions=[v.encode("utf-8", "surrogatepass") for v in values],
               ids=list(range(len(values))), elements=len(values),
               flags=[0] * len(values), literal=True)
    ids: list[int] = []
    byte_ends: list[int] = []

    def on_match(value_id: int, _start: int, end: int, _flags: int, _context: Any) -> None:
        ids.append(value_id)
        byte_ends.append(end)

    buffer = batch.encoded()
    db.scan(buffer, match_event_handler=on_match)
    if not ids:
        return
    ends = batch.char_offsets(np.asarray(byte_ends, dtype=np.int64), buffer).tolist()
    for value_id, end in zip(ids, ends, strict=True):
        yield end, values[value_id]


def _propagate(batch: _Joined, found: list[tuple], tables: Sequence[TokenTable] | None,
               offset: int, whole: Sequence[tuple[int, str]] = (), *,
               batch_wide: bool = False) -> list[tuple]:
    """Known-value propagation: every value found in a text is also found wherever it recurs
    in a text that shares its token table (the other fields of the same trace), even with no
    context around it (`Contact S3cr3t directly.`). Without tables a text shares only with
    itself; `batch_wide` (corpus-stable tokens, where a value has one token in every trace)
    shares across every text of the batch. Only the texts of groups that hold a known value
    are searched (`_occurrences`); a recurrence must stand on word boundaries (where the
    value's own edge is a word character), takes the kind and token of the first detection,
    and loses any overlap to a real detection."""
    found = sorted(found)
    n_texts = len(batch.starts)
    groups: Sequence[int] = [0] * n_texts if batch_wide else range(n_texts) if tables is None \
        else [id(t) for t in tables[offset:offset + n_texts]]
    known: dict[str, dict[int, tuple[str, str]]] = {}
    for _s, _e, _p, kind, canon, value, k in found:
        if kind in PROPAGATED_KINDS and len(value) >= PROPAGATE_MIN_CHARS \
                and not (kind == "COMMIT" and len(value) in (12, 40)):
            known.setdefault(value, {}).setdefault(groups[k], (kind, canon))
    for k, value in whole:  # texts that are one secret each (JSON values of secret keys)
        if len(value) >= PROPAGATE_MIN_CHARS:
            known.setdefault(value, {}).setdefault(groups[k], ("SECRET", value))
    if not known:
        return found
    values_by_group: dict[int, list[str]] = {}
    for value, by_group in known.items():
        for g in by_group:
            values_by_group.setdefault(g, []).append(value)
    scan = sorted(values_by_group) if tables is None \
        else [k for k, g in enumerate(groups) if g in values_by_group]
    text = batch.text
    size = len(text)
    found_starts = [f[0] for f in found]
    found_ends = [f[1] for f in found]
    n_found = len(found)
    extra: list[tuple] = []
    for k, end, value in _occurrences(batch, lambda k: values_by_group[groups[k]], scan):
        entry = known[value][groups[k]]
        start = end - len(value)
        i = bisect_right(found_starts, start) - 1
        if (i >= 0 and found_ends[i] > start) or (i + 1 < n_found and found_starts[i + 1] < end):
            continue  # a real detection is there (the value's own place, or something else)
        if start > 0 and _is_word(value[0]) and _is_word(text[start - 1]):
            continue
        if end < size and _is_word(value[-1]) and _is_word(text[end]):
            continue
        extra.append((start, end, PROPAGATED_PRIORITY, entry[0], entry[1], value, k))
    if not extra:
        return found
    return sorted(found + _resolve(extra))


def _candidate_list(value: Any) -> list[dict] | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    return [dict(c) for c in items]


_NOT_JSON = object()


class _JsonJob:
    """A JSON field: its raw text, the parsed document (or _NOT_JSON) and the slots its
    strings took in the batch being redacted."""

    __slots__ = ("raw", "doc", "first", "last")

    def __init__(self, raw: str, doc: Any, first: int, last: int) -> None:
        self.raw, self.doc, self.first, self.last = raw, doc, first, last


def _json_job(raw: str, texts: list[str], secrets: set[int]) -> _JsonJob:
    """Parse `raw` and queue its strings in `texts` (the raw text itself if it is not JSON);
    the slots of string values under secret-named keys go into `secrets`."""
    first = len(texts)
    try:
        doc = json.loads(raw)
    except ValueError:
        texts.append(raw)
        return _JsonJob(raw, _NOT_JSON, first, first + 1)
    _json_strings(doc, texts, None, secrets)
    return _JsonJob(raw, doc, first, len(texts))


# A JSON key (a string followed by a colon) that SECRET_KEY_NAME matches whole.
_SECRET_JSON_KEY = re.compile(rf'(?i)"(?:[a-z0-9]+[_.-])*{_SECRET_KEY_WORDS}"\s*:')


def _has_secret_key(raw: str) -> bool:
    return _SECRET_JSON_KEY.search(raw) is not None


def _is_long_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**9


def _json_strings(value: Any, out: list[str], key: str | None, secrets: set[int]) -> None:
    """Every string of a parsed JSON document, in the order `_rebuild_json` consumes them."""
    if isinstance(value, str):
        if key is not None and SECRET_KEY_NAME.match(key) and secret_value_ok(value, True):
            secrets.add(len(out))
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(k)
            _json_strings(v, out, k, secrets)
    elif isinstance(value, list):
        for v in value:
            _json_strings(v, out, key, secrets)
    elif _is_long_int(value):
        out.append(str(value))


def _finish_json(job: _JsonJob, texts: list[str], redacted: list[str]) -> str:
    """The JSON field rebuilt from its redacted strings; byte for byte when none changed."""
    if job.doc is _NOT_JSON:
        return redacted[job.first]
    if all(redacted[i] is texts[i] for i in range(job.first, job.last)):
        return job.raw
    rebuilt = _rebuild_json(job.doc, iter(range(job.first, job.last)), texts, redacted)
    return json.dumps(rebuilt, ensure_ascii=False)


def _rebuild_json(value: Any, slots: Iterator[int], texts: list[str], redacted: list[str]
                  ) -> Any:
    if isinstance(value, str):
        return redacted[next(slots)]
    if isinstance(value, dict):
        rebuilt = {}
        for _k, v in value.items():
            key = redacted[next(slots)]
            rebuilt[key] = _rebuild_json(v, slots, texts, redacted)
        return rebuilt
    if isinstance(value, list):
        return [_rebuild_json(v, slots, texts, redacted) for v in value]
    if _is_long_int(value):
        i = next(slots)
        return value if redacted[i] is texts[i] else redacted[i]
    return value


VAULT_COLUMNS = ["trace_id", "token", "kind", "value"]


def vault_frame(trace_ids: Sequence[str], tables: Sequence[TokenTable]) -> pd.DataFrame:
    ids: list[str] = []
    tokens: list[str] = []
    entries: list[tuple[str, str]] = []
    for tid, table in zip(trace_ids, tables, strict=True):
        mapping = table._mapping
        if mapping:
            ids.extend([tid] * len(mapping))
            tokens.extend(mapping)
            entries.extend(mapping.values())
    kinds = [kind for kind, _ in entries]
    values = [value for _, value in entries]
    return pd.DataFrame({"trace_id": ids, "token": tokens, "kind": kinds, "value": values},
                        columns=VAULT_COLUMNS, dtype=object)


def parse_deny_list(text: str) -> list[str]:
    """Terms of a deny list: one a line, `#` starts a comment, blanks ignored."""
    return [term for line in text.splitlines() if (term := line.split("#", 1)[0].strip())]


def load_deny_list(path: str | Path) -> list[str]:
    file = Path(path)
    return parse_deny_list(file.read_text(encoding="utf-8")) if file.exists() else []


# ---- residue: the independent second scan -------------------------------------------------------

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
    if quoted and _R_TOKEN.search(bare):
        # A quoted value that holds a token (`"Authorization: SSWS <OKTA_TOKEN_1>"`): what was
        # secret in it was replaced; only a random-looking word left beside it counts.
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
        rb"sk-ant-|sk-proj-|gh[pousr]_|github_pat_|xox[a-z]-|[rs]k_(?:live|test)_|AIza|hf_",
        re.compile(r"(?:sk-ant-|sk-proj-|gh[pousr]_|github_pat_|xox[a-z]-|[rs]k_live_|[rs]k_test_"
                   r"|AIza|hf_)[\w-]{10,}"),
        _on_value(lambda v: mixed_token(v) or v.startswith(("sk-ant-", "github_pat_")))),
    _ResidueRule("API_KEY", rb"sk-[A-Za-z0-9_-]{20}", re.compile(r"sk-[A-Za-z0-9_-]{20,}"),
                 _both(_prev_not("_"), _on_value(mixed_token))),
    _ResidueRule(
        "API_KEY",
        rb"glpat-|gldt-|glrt-|glptt-|GR1348941|npm_|pypi-AgEI|hv[sbr]\.|\.atlasv1\.|dapi[0-9a-f]"
        rb"|SG\.|whsec_|ya29\.|shp(?:at|ss|ca|pa)_|do[opr]_v1_|lin_api_|ATATT3|ATCTT3|PMAK-"
        rb"|dp\.pt\.|pul-[0-9a-f]|glc_|glsa_|NRAK-|HRKU-|hooks\.slack\.com/services/",
        re.compile(r"(?:glpat-|gldt-|glrt-|glptt-|GR1348941|npm_|pypi-AgEI|hv[sbr]\.|\.atlasv1\."
                   r"|dapi|SG\.|whsec_|ya29\.|shp(?:at|ss|ca|pa)_|do[opr]_v1_|lin_api_|ATATT3"
                   r"|ATCTT3|PMAK-|dp\.pt\.|pul-|glc_|glsa_|NRAK-|HRKU-|hooks\.slack\.com/services/)"
                   r"[\w.=/-]{16,}"),
        _both(_prev_not("_"), _on_value(lambda v: _HAS_DIGIT.search(v) is not None))),
    _ResidueRule("CLOUD_CREDENTIAL",
                 rb"(?i)AccountKey=|SharedAccessKey=|[?&]sig=|X-Amz-Signature=",
                 re.compile(r"(?i)(?:AccountKey=|SharedAccessKey=|[?&]sig=|X-Amz-Signature=)"
                            r"([A-Za-z0-9+/%=_-]{16,})"),
                 _on_value(lambda v: not _R_TOKEN.match(v), 1)),
    _ResidueRule("SSN", rb"\b\d{3}-\d\d-\d{4}",
                 re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d\d-(?!0000)\d{4}(?![\w-])"),
                 _prev_not("_-")),
    _ResidueRule("AWS_KEY", rb"AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA",
                 re.compile(r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{12,}"),
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
    # gitleaks-style keyword rules: the redactor's own shape, since a random value beside a
    # secret word is what both define
    _ResidueRule("SECRET", _KEYED_DETECTORS[0].locator, _KEYED_DETECTORS[0].pattern,
                 _on_value(random_token, 1)),
) + tuple(
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

    def __init__(self, terms: tuple[str, ...]) -> None:
        deny = _residue_deny(terms)
        self.rules: list[_ResidueRule] = list(_R_RULES)
        if deny is not None:
            self.rules.append(_ResidueRule("NAME", b"", deny, _prev_not("")))
        self.db = None
        if hyperscan is None:
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
        for lo, hi in _batches(texts):
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
def _residue_scanner(terms: tuple[str, ...]) -> _ResidueScanner:
    return _ResidueScanner(terms)


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def find_residue_many(texts: Sequence[str | None], deny_terms: Sequence[str] = ()
                      ) -> list[list[tuple[str, str]]]:
    """find_residue for many texts at once (one Hyperscan pass per batch): what a check over a
    table calls."""
    scanner = _residue_scanner(tuple(_clean_terms(deny_terms)))
    return scanner.scan([_nfc(t) if isinstance(t, str) and t else "" for t in texts])


def residue_flags(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray,
                  deny_terms: Sequence[str] = ()) -> tuple[np.ndarray, dict[str, int]]:
    """The residue scan of find_residue_many as one bool per text (anything raw found) and the
    number of matches of each kind, for checks that need no more.

    It builds no list per text and takes an Arrow string column as it is: Arrow joins,
    normalises and encodes it, and no Python string is made per text.
    """
    scanner = _residue_scanner(tuple(_clean_terms(deny_terms)))
    arrow = isinstance(texts, pa.Array | pa.ChunkedArray)
    flags = np.zeros(len(texts), dtype=bool)
    kinds: dict[str, int] = {}
    if arrow and scanner.db is not None and (pa.types.is_string(texts.type)
                                             or pa.types.is_large_string(texts.type)):
        batches: Iterable[tuple[int, _Joined]] = _arrow_batches(texts)
    else:
        values = texts.to_pylist() if arrow else texts
        present = [_nfc(t) if isinstance(t, str) and t else "" for t in values]
        if scanner.db is None:
            for i, found in enumerate(scanner.scan(present)):
                flags[i] = bool(found)
                for kind, _ in found:
                    kinds[kind] = kinds.get(kind, 0) + 1
            return flags, kinds
        batches = ((lo, _Joined(present[lo:hi])) for lo, hi in _batches(present))
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
