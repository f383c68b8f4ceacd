"""The detector catalogue: every kind of identifier and secret the redactor knows, as data.

Each `Detector` is a named, versioned entry: a precise Python pattern (the specification), an
optional validator (Luhn for cards, mod-97 for IBANs, a digit and a letter for bare commit
hashes, the entropy test for keyed secrets, ...), a priority and the locator the fast engine
scans for. The public secret-scanner token shapes come from `core.redaction.secret_rules`; the deny-list
names and their variants (reversed, ASCII-folded, surname-only, handles) are built here too.
Adding a kind is adding an entry: nothing else in the package lists kinds.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from feedback_pipeline.core.redaction.secret_rules import (
    TOKEN_FAMILIES,
    VENDOR_KEYS,
    TokenFamily,
    VendorKey,
)

REDACTION_VERSION = "code-review-redactor-v2"
STABLE_TOKEN_HEX = 12
NAME_PRIORITY = 65
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
_PLACEHOLDER_WORD_CHARS = max(map(len, PLACEHOLDER_WORDS))  # lower() never shortens a string
def is_placeholder(value: str) -> bool:
    """Template slots, env references, masks and redaction tokens are not secrets."""
    v = value.strip().strip("\"'")
    return (not v or (len(v) <= _PLACEHOLDER_WORD_CHARS and v.lower() in PLACEHOLDER_WORDS)
            or (v[0] in _PLACEHOLDER_FIRST and _PLACEHOLDER.match(v) is not None)
            or v.startswith(("os.environ", "process.env", "getenv(")))


def secret_value_ok(value: str, quoted: bool = False) -> bool:
    """Is the value of a secret-named key a real secret (not a placeholder or code)?"""
    v = value.strip()
    if is_placeholder(v):
        return False
    if quoted:
        return len(v) >= 4
    if len(v) < 6 or ("." in v and _CODE_REFERENCE.match(v) and not mixed_token(v)):
        return False  # `settings.db_password` is code; `xMj.fHZO5s7xgd` is not
    word = v.replace("_", "")
    if not word.isalnum():
        return True
    if not word.isalpha() and (word.isascii() or _HAS_DIGIT.search(v)):
        return True  # a digit (an ASCII alnum that is not a letter is one; else ask \d)
    return v.lower() != v and v.upper() != v


def _lower(value: str) -> str:
    return value.lower()


def _digits(value: str) -> str:
    return _NOT_DIGIT.sub("", value)


def _name_canonical(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


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
    `byte_places`, where given, reports further places beside the locator's: a numpy pass over
    a batch's UTF-8 bytes (as uint8) returning byte offsets, for a shape with no literal in it
    that costs the shared Hyperscan scan more than a vectorised test of the bytes does.
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
    byte_places: Callable[[np.ndarray], np.ndarray] | None = None
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
       triggers: Sequence[str] = (), ignore_case: bool = False, flags: int = 0,
       byte_places: Callable[[np.ndarray], np.ndarray] | None = None) -> Detector:
    return Detector(name, kind, version, re.compile(pattern, flags), priority, locator, rewind,
                    rewind_alnum, starts_with, groups, validate, canonical, tuple(triggers),
                    ignore_case, byte_places)


_COLON = ord(":")
def _ipv6_full_form_places(codes: np.ndarray) -> np.ndarray:
    """Byte offsets just before every run of seven colons within 31 bytes: where an
    uncompressed IPv6 address (eight groups of at most four hex digits) may be, in its leading
    hex-and-colon run (the ipv6 detector rewinds to the run's start). Colons are common and hex
    digits more so, so this shape as a Hyperscan locator costs the shared scan several times
    what two numpy passes over the bytes do."""
    colons = np.flatnonzero(codes == _COLON)
    if len(colons) < 7:
        return colons[:0]
    first = colons[:-6][colons[6:] - colons[:-6] <= 30]
    return np.maximum(first - 1, 0)


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
SECRET_KEY_TRIGGERS = ("pass", "pwd", "secret", "token", "key", "credential")
"""A word, lower case, that each alternative of the secret key words holds: text without one
(compared case-insensitively) has no secret-named key."""
_DIGIT_TRIGGERS = tuple("0123456789")
_AWS_ID_PREFIXES = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA",
                    "A3T")
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
       r"(?<![\w-])[rs]k_(?:live|test|prod)_[A-Za-z0-9]{10,}(?!\w)", 91,
       rb"[rs]k_(?:live|test|prod)_",
       validate=_plain(lambda v: len(v) >= 24 or _alnum_mixed(v[8:])),
       triggers=["k_live_", "k_test_", "k_prod_"]),
    _d("google_api_key", "GOOGLE_API_KEY", "1",
       r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])", 91, rb"AIza[0-9A-Za-z_-]{8}", 
       triggers=["AIza"]),
    _d("huggingface_token", "HF_TOKEN", "1",
       r"(?<![\w-])hf_[A-Za-z0-9]{30,}(?!\w)", 91, rb"hf_[A-Za-z0-9]{8}", 
       validate=_plain(lambda v: hf_token_ok(v)), triggers=["hf_"]),
    _d("aws_access_key_id", "AWS_ACCESS_KEY", "1",
       r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA|A3T[A-Z0-9])"
       r"[A-Z0-9]{16}(?![A-Za-z0-9])",
       91, rb"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}", 
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
       triggers=SECRET_KEY_TRIGGERS, ignore_case=True),
    _d("secret_cli_flag", "SECRET", "1",
       rf"(?i:--{_SECRET_KEY_WORDS.replace('[_-]?', '-?')})(?:=|\s+){_VALUE}", 80,
       b"(?i)--" + _SECRET_WORDS_B.replace(b"[_-]?", b"-?"), groups=(1, 2, 3),
       validate=secret_value_ok, triggers=["--"]),
    _d("email", "EMAIL", "1",
       r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
       r"[A-Za-z]{2,24}(?![\w-]|(?:\.[\w-]+)*:[\w~.-]*/)", 70,
       rb"@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b",
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
       rb"[0-9A-Fa-f]:(?:[0-9A-Fa-f]{1,4}:)?:|::[0-9A-Fa-f]",
       rewind="0123456789abcdefABCDEF:", validate=_plain(ipv6_ok),
       canonical=_lower, triggers=[":"], byte_places=_ipv6_full_form_places),
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
def _iban_countries() -> str:
    """The registry's country codes, from python-stdnum's copy of the SWIFT IBAN registry: a
    literal set the locator can look for, instead of any two capitals."""
    from importlib.resources import files
    registry = files("stdnum").joinpath("iban.dat").read_text(encoding="utf-8")
    codes = sorted({line[:2] for line in registry.splitlines()
                    if len(line) > 2 and line[:2].isalpha() and line[:2].isupper()})
    return "|".join(codes)


_IBAN_COUNTRIES = _iban_countries()
_IBAN_LETTER_DIGITS = str.maketrans({c: str(ord(c) - 55) for c in string.ascii_uppercase})
def _iban_ok(value: str) -> bool:
    """python-stdnum's IBAN check (mod 97 and the country's registered format), behind the
    ISO 7064 mod-97 sum computed here: most shapes the locator finds fail the sum, and the
    library's full parse costs ten times as much."""
    from stdnum import iban
    compact = value.replace(" ", "")
    rearranged = (compact[4:] + compact[:4]).translate(_IBAN_LETTER_DIGITS)
    return (2 <= int(value[2:4]) <= 98 and rearranged.isdigit() and int(rearranged) % 97 == 1
            and iban.is_valid(value))


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
    # routable tokens end in `.` and a 9-character checksum
    _token("gitlab_token", "GITLAB_TOKEN", r"(?:glpat|gldt|glrt|glptt|glcbt|glimt|glft|glffct"
           r"|glsoat|glagent|gloas)-", r"[A-Za-z0-9_-]{20,}(?:\.[0-9a-z]{9})?",
           locator=rb"gl(?:pat|dt|rt|ptt|cbt|imt|ft|ffct|soat|agent|oas)-[A-Za-z0-9_-]{8}",
           triggers=["gl"]),
    _token("gitlab_runner_registration", "GITLAB_TOKEN", "GR1348941", r"[A-Za-z0-9_-]{20,}"),
    _token("npm_token", "NPM_TOKEN", "npm_", r"[A-Za-z0-9]{36}",
           check=lambda v: _alnum_mixed(v[4:])),
    # upload tokens for pypi.org and for test.pypi.org
    _token("pypi_token", "PYPI_TOKEN", r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)",
           r"[A-Za-z0-9_-]{40,}", locator=rb"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)",
           triggers=["pypi-AgE"]),
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
    _d("twilio_key", "TWILIO_KEY", "1", r"(?<![A-Za-z0-9])(?:AC|SK)[0-9a-z]{32}(?![A-Za-z0-9])",
       91, rb"(?:AC|SK)[0-9a-z]{32}", validate=_plain(lambda v: _alnum_mixed(v[2:])),
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
    # framed by `sig=`, so it outranks a bare shape its value may start with (`00` and forty
    # characters read as an Okta token)
    _d("sas_signature", "SAS_SIGNATURE", "2", r"(?<=[?&;])sig=([A-Za-z0-9%+/=_-]{16,})", 92,
       rb"[?&;]sig=", starts_with="s", groups=(1,), triggers=["sig="]),
    _d("aws_presigned", "AWS_SIGNATURE", "1",
       r"X-Amz-(?:Signature=([0-9a-f]{64})|Security-Token=([A-Za-z0-9%/+=_-]{16,})"
       r"|Credential=([A-Za-z0-9]{16,32}))", 90, rb"X-Amz-(?:Signature|Security-Token|Credential)=",
       groups=(1, 2, 3), triggers=["X-Amz-"]),
    # key material. The locator is one full line and its break: asking for the next line too
    # cost the shared scan more than the few extra places the precise pattern then rejects.
    _d("pem_body", "PRIVATE_KEY", "1",
       r"(?<![A-Za-z0-9+/=])(?:[A-Za-z0-9+/]{60,76}\r?\n){3,}[A-Za-z0-9+/]{0,76}={0,2}"
       r"(?![A-Za-z0-9+/=])", 88, rb"[A-Za-z0-9+/]{60}\r?\n",
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
    # PII. The IBAN locator takes any two capitals: the alternation of every country code
    # cost the shared scan more than the extra places the precise pattern then rejects.
    _d("iban", "IBAN", "1",
       rf"(?<![A-Za-z0-9])(?:{_IBAN_COUNTRIES})\d{{2}}(?:[ ]?[A-Z0-9]{{4}}){{2,7}}"
       r"(?:[ ]?[A-Z0-9]{1,3})?(?![A-Za-z0-9])", 62,
       rb"[A-Z]{2}\d\d[ ]?[A-Z0-9]{4}", validate=_plain(_iban_ok),
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
    if family.check == "random":
        return lambda v: mixed_token(v) and not reads_as_name(v)
    return lambda v: True


def _alnum_mixed(value: str) -> bool:
    return _HAS_DIGIT.search(value) is not None and _HAS_LETTER.search(value) is not None


_NAME_RUN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z][a-z]+|[A-Z]+|[a-z]+|\d+")
_VOWEL = re.compile(r"[aeiouy]")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{3,}")
# consonant runs English words (and so CamelCase names) have: `String`, `Entry`, `Handler`
_WORD_CLUSTERS = frozenset((
    "str", "nst", "ntr", "ngt", "ngth", "chr", "sch", "ght", "mpl", "ndl", "rst", "nds", "nts",
    "rch", "tch", "ckl", "ndr", "scr", "spl", "thr", "rtr", "lst", "ncr", "nch", "rth", "ckg",
    "ckn", "lts", "rts", "rks", "nks", "cks", "ngs", "rds"))


def reads_as_name(value: str) -> bool:
    """Does a short mixed-case value read as a CamelCase name (`APEntryV2`, `AP2Config`,
    `APBase64Encoder`) rather than random characters? A name is capitalised words of three
    letters or more, each with a vowel and only the consonant runs words have; one leading
    acronym of up to four capitals; other capitals alone and only beside a number; at most
    one number, of up to four digits. Random letters and digits break one of these in all but
    about one in a thousand 13-character values (`AP64ZHPMP0Kgj`: two numbers)."""
    runs = _NAME_RUN.findall(value)
    numbers = letters = 0
    for i, run in enumerate(runs):
        if run.isdigit():
            numbers += 1
            if numbers > 1 or len(run) > 4:
                return False
        elif run.islower():
            return False
        elif run.isupper():
            by_number = (i > 0 and runs[i - 1].isdigit()) or (
                i + 1 < len(runs) and runs[i + 1].isdigit())
            if len(run) > 4 or (i > 0 and not (len(run) == 1 and by_number)):
                return False
        else:
            if len(run) < 3 or _VOWEL.search(run, 1) is None or any(
                    c not in _WORD_CLUSTERS for c in _CONSONANT_RUN.findall(run.lower())):
                return False
            letters += len(run)
    return letters >= 4


def hf_token_ok(value: str) -> bool:
    """`hf_` then upper, lower and digits, or (gitleaks' shape) exactly 34 letters of random
    case: six or more of each, which a CamelCase identifier does not have."""
    body = value[3:]
    if mixed_token(body):
        return True
    return (len(body) == 34 and body.isalpha() and sum(c.isupper() for c in body) >= 6
            and sum(c.islower() for c in body) >= 6)


_HAS_LETTER = re.compile(r"[A-Za-z]")
def _family_detector(family: TokenFamily) -> Detector:
    # A token framed by its context (`SSWS <token>`, `/token:<token>`) outranks a bare shape
    # that the same characters also fit.
    return _d(family.name, family.kind, family.version, family.pattern,
              92 if family.value_only else 91,
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
    identifier, and so is one CamelCase name (`UserSessionCacheV2`). Random keys over a
    base64url alphabet have long parts that switch between letters and digits many times, and
    their letters switch case at random (`SfR`, `nOv`), so they never read that way."""
    n = len(value)
    if n < 16:
        return False
    if _PART_SEPARATORS.search(value) is not None:
        parts = [p for p in _PART_SEPARATORS.split(value) if p]
        if len(parts) > 1 and all(_PLAIN_PART.fullmatch(p) for p in parts) \
                and not _case_noisy(value):
            return False
    elif value.lower() != value and value.upper() != value and _PLAIN_PART.fullmatch(value) \
            and not _case_noisy(value):
        return False
    if n >= 24 and mixed_token(value):
        return True  # upper, lower and digits over 24+ characters: well above 3 bits each
    return (_alnum_mixed(value) and not is_placeholder(value)
            and shannon_entropy(value) >= 3.0)


_PART_SEPARATORS = re.compile(r"[_.\-/~+=:]+")
_PLAIN_PART = re.compile(r"[A-Za-z]*\d*[A-Za-z]*|\d*[A-Za-z]*\d*")
_CASE_FLIP = re.compile(r"(?<=[A-Z])[a-z](?=[A-Z0-9])|(?<=[0-9])[a-z](?=[A-Z])")


def _case_noisy(value: str) -> bool:
    """Three or more one-letter lowercase runs beside a capital (`SfR`, `Tb9`), or capitals
    for more than two letters in five: a CamelCase name has neither (its words are two letters
    or more and start with its only capital; `getHTTPResponseCode` is 37% capitals), random
    base64 has a flip about one character in eight and as many capitals as lowercase (a
    repeated pattern, ten distinct characters or fewer, is not noise)."""
    if len(set(value)) < 10:
        return False
    if len(_CASE_FLIP.findall(value)) >= 3:
        return True
    upper = sum(c.isupper() for c in value)
    return upper > 0.4 * (upper + sum(c.islower() for c in value))
# The secret word ends the key's name and starts a part of it: after a separator, at the
# start, or as a camel-case word (`algoliaKey`, `DD_APP_KEY`, `fastly-token`), never inside
# a word (`monkey`, `tokenizer`, `keyboard`, `secret_name`). The match starts at the word, so
# the locator's report is where the pattern is tried, with no walk back over the name.
# `api` before a camel-case word (`rapidapiKey`) is where Hyperscan's leftmost report of the
# `apikey` alternative lands, so the match may start there too.
_KEYED_NAME = (r"(?:(?<![A-Za-z0-9])|(?<=[a-z0-9])(?=[A-Z])|(?i:api)(?=K(?i:ey)))"
               rf"(?i:{_KEYED_WORDS})s?[\"']?")
_PROSE_VERB = r"(?i:is|was|are|were|equals)(?:\s{1,8}(?i:now|still|set\s+to))?:?"
"""How prose states a value in place of an operator (`the key is`, `token was set to`)."""
_KEYED_DETECTORS: tuple[Detector, ...] = (
    # gitleaks' keyword rules (`datadog_app_key = ...`, `algoliaKey: ...`, `"fastly-token"`):
    # any identifier holding a secret word, a separator, then a random-looking value.
    _d("keyed_random_value", "SECRET", "2",
       rf"{_KEYED_NAME}\s{{0,8}}(?:=|:|=>|:=|\|\|:|<-)\s{{0,8}}[\"'`]?"
       r"([A-Za-z0-9_+/=.~-]{16,256})(?![\w+/=.~@-])",  # before `@`: an email's local part
       78, b"(?i)" + _KEYED_WORDS.encode() + rb"s?[\"']?\s{0,8}(?:[:=]|\|\||<-)",
       groups=(1,), validate=_plain(random_token),
       triggers=["key", "token", "secret", "pass", "pwd", "auth", "credential", "dsn"],
       ignore_case=True),
    # the same said in prose (`the api token is <value>`, `our secret key was now <value>`):
    # a verb in place of the operator, and the same test that the value is random
    _d("keyed_random_prose", "SECRET", "1",
       rf"{_KEYED_NAME}\s{{1,8}}{_PROSE_VERB}\s{{1,8}}[\"'`]?"
       r"([A-Za-z0-9_+/=.~-]{16,256})(?![\w+/=.~@-])",
       78, b"(?i)" + _KEYED_WORDS.encode() + rb"s?[\"']?\s{1,8}" + _PROSE_VERB.encode()
       + rb"\s", groups=(1,), validate=_plain(random_token),
       triggers=["key", "token", "secret", "pass", "pwd", "auth", "credential", "dsn"],
       ignore_case=True),
)


def vendor_value_ok(value: str) -> bool:
    """A vendor-shaped value that is not a placeholder or one character repeated."""
    return len(set(value)) >= 4 and not is_placeholder(value)


# The rest of the key after the vendor's name (`_client_id`, ` API key`), quotes, the
# assignment (`=`, `:`, `:=`, `=>`, `?=`, `||`, `>` of an XML element, `,` of a call), quotes.
# Or, in prose, the words after the name end in a space (`heroku api key is <uuid>`): the
# value's exact shape is what tells it from the next word.
_VENDOR_ASSIGN = (r"(?:[ \t\w.-]{0,20}?[\s'\"]{0,3}(?:=>|:{1,3}=|\?=|\|\||[=:>,])"
                  r"[\s'\"`=]{0,5}|[ \t\w.-]{0,20}?\s[\"'`]?)")
_VENDOR_ASSIGN_B = rb"[ \t\w.-]{0,20}(?:[\s'\"]{0,3}(?:[=:>,]|\|\||\?=)|\s)"


def _vendor_detector(vendor: VendorKey) -> Detector:
    """gitleaks' keyword rule for one vendor: the match starts at the vendor's name (each
    vendor its own locator, so the leftmost report Hyperscan gives is where this pattern
    starts); the value is the one group, of exactly a shape the vendor's rule states."""
    values = "|".join(vendor.values)
    return _d(f"vendor_key_{vendor.name}", "SECRET", "2",
              rf"(?i:{vendor.names}){_VENDOR_ASSIGN}({values})(?![\w+/=-]|\.\w)", 79,
              b"(?i)(?:" + vendor.names.encode() + b")" + _VENDOR_ASSIGN_B, groups=(1,),
              validate=_plain(vendor_value_ok),
              triggers=_leading_literals(vendor.names), ignore_case=True)


def _leading_literals(names: str) -> list[str]:
    """The letters each top-level alternative of `names` starts with (`linked[_-]?in` ->
    `linked`): one of them is in every match."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(names + "|"):
        depth += (c == "(") - (c == ")")
        if c == "|" and depth == 0:
            out.append(re.match(r"[a-z_]*", names[start:i]).group(0))
            start = i + 1
    return out


_VENDOR_DETECTORS: tuple[Detector, ...] = tuple(_vendor_detector(v) for v in VENDOR_KEYS)
DETECTORS = DETECTORS + _EXTRA_DETECTORS + tuple(_family_detector(f) for f in TOKEN_FAMILIES) \
    + _KEYED_DETECTORS + _VENDOR_DETECTORS
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


