"""Redaction of identifiers and secrets in trace text, with stable pseudonymous tokens.

The package, on its seams: `detectors` (the catalogue, as data), `engine` (where a detector
could match: Hyperscan or pure Python behind one interface), `tokens` (the per-trace token
table), `redactor` (spans -> tokens over texts, JSON and traces, known-value propagation) and
`residue` (the independent scan the gates run). Everything public is importable from here.

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


from feedback_pipeline.core.redaction.detectors import (
    DETECTOR_VERSIONS,
    DETECTORS,
    KINDS,
    NAME_PRIORITY,
    NON_ROUTABLE_IPV4,
    PLACEHOLDER_WORDS,
    REDACTION_VERSION,
    SECRET_KEY_NAME,
    STABLE_TOKEN_HEX,
    Detector,
    Validator,
    ascii_fold,
    card_ok,
    commit_in_context_ok,
    deny_pattern,
    family_body_ok,
    hex_mixed,
    ipv6_ok,
    is_placeholder,
    luhn_ok,
    mixed_token,
    name_variants,
    random_token,
    secret_value_ok,
    shannon_entropy,
)
from feedback_pipeline.core.redaction.engine import (
    ENGINES,
    HYPERSCAN_AVAILABLE,
    Reports,
    use_hyperscan,
)
from feedback_pipeline.core.redaction.redactor import (
    FIND_MAX_VALUES,
    ONE_PASS_MIN_TEXTS,
    ONE_PASS_TEXTS_PER_GROUP,
    PROPAGATE_MIN_CHARS,
    PROPAGATED_KINDS,
    PROPAGATED_PRIORITY,
    VAULT_COLUMNS,
    Redactor,
    parse_deny_list,
    vault_frame,
)
from feedback_pipeline.core.redaction.residue import (
    Accept,
    find_residue,
    find_residue_many,
    residue_flags,
)
from feedback_pipeline.core.redaction.tokens import (
    Span,
    TokenTable,
    resolve_overlaps,
)

__all__ = [
    "ENGINES",
    "HYPERSCAN_AVAILABLE",
    "use_hyperscan",
    "Accept",
    "DETECTORS",
    "DETECTOR_VERSIONS",
    "Detector",
    "FIND_MAX_VALUES",
    "KINDS",
    "NAME_PRIORITY",
    "NON_ROUTABLE_IPV4",
    "ONE_PASS_MIN_TEXTS",
    "ONE_PASS_TEXTS_PER_GROUP",
    "PLACEHOLDER_WORDS",
    "PROPAGATED_KINDS",
    "PROPAGATED_PRIORITY",
    "PROPAGATE_MIN_CHARS",
    "REDACTION_VERSION",
    "Redactor",
    "Reports",
    "SECRET_KEY_NAME",
    "STABLE_TOKEN_HEX",
    "Span",
    "TokenTable",
    "VAULT_COLUMNS",
    "Validator",
    "ascii_fold",
    "card_ok",
    "commit_in_context_ok",
    "deny_pattern",
    "family_body_ok",
    "find_residue",
    "find_residue_many",
    "hex_mixed",
    "ipv6_ok",
    "is_placeholder",
    "luhn_ok",
    "mixed_token",
    "name_variants",
    "parse_deny_list",
    "random_token",
    "residue_flags",
    "resolve_overlaps",
    "secret_value_ok",
    "shannon_entropy",
    "vault_frame",
]
