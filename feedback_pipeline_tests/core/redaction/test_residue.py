"""The residue scanner: raw values flagged, tokens and benign shapes not, both engines agree."""

import unicodedata

import numpy as np
import pyarrow as pa
import pytest

from feedback_pipeline.core.redaction import (
    HYPERSCAN_AVAILABLE,
    Redactor,
    TokenTable,
    find_residue,
    find_residue_many,
    residue_flags,
)
from feedback_pipeline.synth.secrets_corpus import (
    DENY_TERMS,
    decoy_samples,
    make_labelled_corpus,
    score_spans,
)
from feedback_pipeline_tests.core.redaction.conftest import (
    ARTIFACTORY_VALUES,
    AUDIT_POSITIVE,
    NEGATIVE,
    VENDOR_POSITIVE,
    redact,
)


def test_find_residue_flags_raw_ignores_tokens_and_decoys():
    assert find_residue("<EMAIL_1> <ENGINEER_3f9a2c1b04de> password: <SECRET_2>") == []
    assert find_residue(NEGATIVE[3] + NEGATIVE[5] + NEGATIVE[0]) == []
    leak = "Redacted <EMAIL_1>, but ops@example.com leaked"
    assert find_residue(leak) == [("EMAIL", "ops@example.com")]
    assert find_residue("by Zoë Müller", ["Zoë Müller"]) == [("NAME", "Zoë Müller")]
    kinds = {k for k, _ in find_residue(
        "AKIAIOSFODNN7EXAMPLE ghp_" + "aB3" * 12 + " ENG-12 4111111111111111 10.1.2.3 "
        "postgres://u:Pw9x!abc@h/db password=Hunter2x")}
    assert kinds >= {"AWS_KEY", "API_KEY", "ENGINEER", "CARD", "IPV4", "URL_CREDENTIALS",
                     "SECRET"}


def test_labelled_corpus_targets_and_independent_residue(redactor):
    texts, gold = make_labelled_corpus(150, seed=11)
    spans = redactor.detect_many(texts)
    scores = score_spans(gold, [[(s, e, k) for s, e, k, _, _ in x] for x in spans])
    assert (scores["recall"] >= 0.99).all(), scores
    assert (scores["precision"] >= 0.98).all(), scores
    raw_flagged = sum(bool(find_residue(t, DENY_TERMS)) for t in texts)
    assert raw_flagged == len(texts)
    redacted = redactor.redact_texts(texts)
    assert [t for t in redacted if find_residue(t, DENY_TERMS)] == []


@pytest.mark.skipif(not HYPERSCAN_AVAILABLE, reason="hyperscan not installed")
def test_residue_without_hyperscan_agrees():
    texts, _ = make_labelled_corpus(40, seed=9)
    redacted = Redactor(DENY_TERMS).redact_texts(texts[:20])
    sample = texts[20:] + redacted + ["Zoë Müller and <EMAIL_1> and ops@example.com"]
    fast = find_residue_many(sample, DENY_TERMS, engine="hyperscan")
    slow = find_residue_many(sample, DENY_TERMS, engine="python")
    assert [sorted(f) for f in fast] == [sorted(s) for s in slow]
    assert all(fast[:20]) and not any(fast[20:40]) and fast[-1]


def test_residue_catches_compound_secret_keys_and_values_beside_tokens():
    assert find_residue("secret_token: Abc123XyzQ") == [("SECRET", "token: Abc123XyzQ")]
    assert find_residue("<EMAIL_1>ops@example.com") == [("EMAIL", "ops@example.com")]
    assert find_residue("a@b.cc@example.com") == [("EMAIL", "a@b.cc")]
    assert find_residue("<COMMIT_3f9a2c1b04de> <ENGINEER_12> <IPV6_1>::1") == []


def test_residue_flags_agree_with_find_residue_many_for_lists_and_arrow():
    texts, _ = make_labelled_corpus(30, seed=8)
    redacted = Redactor(DENY_TERMS).redact_texts(texts)
    nfd_name = unicodedata.normalize("NFD", "reviewed by Zoë Müller")
    sample = texts[:10] + redacted + [None, "", nfd_name, "clean <EMAIL_1> text"]
    expected = find_residue_many(sample, DENY_TERMS)
    kinds: dict[str, int] = {}
    for found in expected:
        for kind, _ in found:
            kinds[kind] = kinds.get(kind, 0) + 1
    flags = np.array([bool(f) for f in expected])
    assert flags[:10].all() and not flags[10:40].any() and flags[-2] and not flags[-1]
    as_arrow = pa.array(sample)
    chunked = pa.chunked_array([as_arrow.slice(0, 17), as_arrow.slice(17)])
    for given in (sample, as_arrow, chunked, as_arrow.cast(pa.large_string())):
        got_flags, got_kinds = residue_flags(given, DENY_TERMS)
        assert got_flags.dtype == bool
        assert got_flags.tolist() == flags.tolist()
        assert got_kinds == kinds


def test_residue_flags_without_hyperscan():
    sample = ["ops@example.com leaked", "<EMAIL_1> only", None]
    flags, kinds = residue_flags(pa.array(sample), engine="python")
    assert flags.tolist() == [True, False, False] and kinds == {"EMAIL": 1}


@pytest.mark.parametrize("text", ["secret_key = Zq8Lw2Pn7Rx4Tb9K", "SECRET_KEY: Zq8Lw2Pn7Rx4Tb9K",
                                  "private-key: 'Zq8Lw2Pn7Rx4Tb9K'", "signing_key=Zq8Lw2Pn7Rx4Tb9K"])
def test_residue_scan_flags_secret_key_assignments_and_passes_their_tokens(text):
    assert [kind for kind, _ in find_residue(text)] == ["SECRET"]
    redacted = Redactor().redact_text(text, TokenTable())
    assert "Zq8Lw2Pn7Rx4Tb9K" not in redacted
    assert find_residue(redacted) == []


def test_issue17_decoys_are_left_alone_and_pass_the_residue_scan(redactor):
    for text in decoy_samples(300, seed=17):
        assert redact(redactor, text) == text, (text, redactor.detect(text))
        assert find_residue(text, DENY_TERMS) == [], text


def test_residue_ignores_placeholders_and_fully_redacted_text():
    for text in ("password: <PASSWORD_1>, token <SECRET_2>, X-Amz-Credential=<AWS_ACCESS_KEY_1>",
                 "[REDACTED] ***** <EMAIL_3f9a2c1b04de> <IPV4_2>.internal",
                 "AccountKey=<AZURE_KEY_1>;sig=<SAS_SIGNATURE_1>"):
        assert find_residue(text, DENY_TERMS) == [], text


def test_residue_flags_new_families_raw():
    raw = ("glpat-xK9mN2pQ4rS6tU8vW0yZ and AccountKey=" + "Zx9+/" * 10 + " and 123-45-6789 "
           "and git@github.com:org/x.git and ops@example.com")
    kinds = [k for k, _ in find_residue(raw)]
    assert sorted(kinds) == ["API_KEY", "CLOUD_CREDENTIAL", "EMAIL", "SSN"]


@pytest.mark.parametrize(("template", "value", "kind"), AUDIT_POSITIVE)
def test_residue_flags_audit_shapes_raw_and_passes_them_redacted(template, value, kind):
    text = template.format(value)
    assert find_residue(text), text
    redacted = Redactor(DENY_TERMS).redact_text(text, TokenTable())
    assert value not in redacted
    assert find_residue(redacted, DENY_TERMS) == [], redacted


@pytest.mark.parametrize(("template", "value"), VENDOR_POSITIVE + [
    ("I pasted {} into the ticket", v) for v in ARTIFACTORY_VALUES])
def test_residue_flags_vendor_keyed_values_raw_and_passes_them_redacted(template, value):
    text = template.format(value)
    assert find_residue(text), text
    redacted = Redactor(DENY_TERMS).redact_text(text, TokenTable())
    assert value not in redacted
    assert find_residue(redacted, DENY_TERMS) == [], redacted
