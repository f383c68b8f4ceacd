"""The detector catalogue: each family found in context, benign look-alikes left alone."""

import pytest

from feedback_pipeline.core.redaction import (
    DETECTOR_VERSIONS,
    DETECTORS,
    card_ok,
    find_residue,
)
from feedback_pipeline.synth.secrets_corpus import (
    FAMILIES,
    family_kind,
)
from feedback_pipeline_tests.core.redaction.conftest import (
    ISSUE17_NEGATIVE,
    ISSUE17_POSITIVE,
    NEGATIVE,
    POSITIVE,
    redact,
)


@pytest.mark.parametrize(("template", "value", "kind"), POSITIVE)
def test_detector_positive(redactor, template, value, kind):
    text = template.format(value)
    spans = redactor.detect(text)
    assert [(text[s:e], k) for s, e, k, _, _ in spans] == [(value, kind)], spans
    out = redact(redactor, text)
    assert value not in out
    assert out == template.format(f"<{kind}_1>")


@pytest.mark.parametrize("text", NEGATIVE)
def test_detector_negative(redactor, text):
    assert redact(redactor, text) == text, redactor.detect(text)


def test_every_detector_is_named_versioned_and_covered():
    assert {d.name for d in DETECTORS} | {"deny_list"} == set(DETECTOR_VERSIONS)
    assert all(v for v in DETECTOR_VERSIONS.values())
    covered = ({kind for _, _, kind in POSITIVE} | {"PRIVATE_KEY"}
               | {family_kind(f) for f in FAMILIES})  # test_issue17_family_recall
    assert {d.kind for d in DETECTORS} | {"NAME"} <= covered


def test_card_validation():
    assert card_ok("4111 1111 1111 1111") and card_ok("378282246310005")
    assert not card_ok("4111 1111 1111 1112")
    assert not card_ok("4111 1111-1111 1111")
    assert not card_ok("9111111111111111")


@pytest.mark.parametrize(("template", "value", "kind"), ISSUE17_POSITIVE)
def test_issue17_positive(redactor, template, value, kind):
    text = template.format(value)
    start = text.index(value)
    spans = [(s, e, k) for s, e, k, _, _ in redactor.detect(text)]
    assert any(s <= start and e >= start + len(value) and k == kind for s, e, k in spans), spans


@pytest.mark.parametrize("text", ISSUE17_NEGATIVE)
def test_issue17_negative(redactor, text):
    assert redact(redactor, text) == text, redactor.detect(text)
    assert find_residue(text) == [], find_residue(text)
