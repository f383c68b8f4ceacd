"""The detector catalogue: each family found in context, benign look-alikes left alone."""

import pytest

from feedback_pipeline.core.redaction import (
    DETECTOR_VERSIONS,
    DETECTORS,
    card_ok,
    find_residue,
)
from feedback_pipeline.core.redaction.detectors import reads_as_name
from feedback_pipeline.synth.secrets_corpus import (
    FAMILIES,
    family_kind,
)
from feedback_pipeline_tests.core.redaction.conftest import (
    ARTIFACTORY_POSITIVE,
    ARTIFACTORY_VALUES,
    ISSUE17_NEGATIVE,
    ISSUE17_POSITIVE,
    NEGATIVE,
    POSITIVE,
    VENDOR_NEGATIVE,
    VENDOR_POSITIVE,
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


@pytest.mark.parametrize(("template", "value"), VENDOR_POSITIVE)
def test_vendor_keyed_values_are_found_whole(redactor, template, value):
    """gitleaks' keyword rules: a vendor's name in the key, an assignment, a value of the
    vendor's shape, in prose, env lines, JSON, YAML and XML."""
    text = template.format(value)
    start = text.index(value)
    spans = [(s, e, k) for s, e, k, _, _ in redactor.detect(text)]
    assert any(s <= start and e >= start + len(value) for s, e, _ in spans), spans
    assert value not in redact(redactor, text)


@pytest.mark.parametrize("value", ARTIFACTORY_VALUES)
@pytest.mark.parametrize("template", ARTIFACTORY_POSITIVE)
def test_artifactory_password_bare_and_in_context(redactor, template, value):
    text = template.format(value)
    start = text.index(value)
    spans = [(s, e, k) for s, e, k, _, _ in redactor.detect(text)]
    assert (start, start + len(value), "ARTIFACTORY_KEY") in spans, spans


@pytest.mark.parametrize("text", VENDOR_NEGATIVE)
def test_vendor_look_alikes_are_left_alone(redactor, text):
    assert redact(redactor, text) == text, redactor.detect(text)
    assert find_residue(text) == [], find_residue(text)


def test_short_mixed_values_read_as_names_or_not():
    for name in ("APEntryV2", "AP2Config", "APBase64Encoder", "APDataV10Handler", "AP3DModel",
                 "APCategoryList"):
        assert reads_as_name(name), name
    for value in ("AP64ZHPMP0Kgj", "AP6Xq2Lm8Zt1Wv", "APBr7Kd2Nq9Zx4Tp", "APE80ePfyVi"):
        assert not reads_as_name(value), value


def test_base64_key_material_is_not_cut_by_a_bare_token_inside_it(redactor):
    """`/00` and forty characters inside base64 key material are not an Okta token (it used to
    win the overlap and leave the rest of the key raw), nor `+AP6...` an Artifactory
    password: the whole block stays one private key."""
    body = ("MIIqMtVoy+08YOc+oKmz6WHhKknDgnpdZbzEaecYNQWAVmieT6Uv8YPDAxySPbWQ\n"
            "KCRubmbqXXLFw3p/K+WE5Hwsesr3HXPhYMinRs9SneSOvrqWwxn1DvLrMxcoXLuH\n"
            "wFeSJI1gm8qob/HL4i8YwhtNEiqvnNkyaqa1WCMcDUpjQ1cXCE1BNDnBv2pDULBP\n"
            "q9ks2FRKilbpIjLCFIoja277zpifSudLSz7HN7e1U+AP6Xq2Lm8Zt1WvQUOrxGAUW\n"
            "7Iugtv+zOU/00YyXiyA5tgO9xvmSxhxNK1icvjLuctzMYM4YmsZqaxtxIn2rC56S\n"
            "hWr9VyZQ3kHDI8AJ==")
    text = "key material pasted without the header:\n" + body + "\n"
    spans = [(s, e, k) for s, e, k, _, _ in redactor.detect(text)]
    assert spans == [(text.index(body), len(text) - 1, "PRIVATE_KEY")], spans
