import pytest

from feedback_pipeline.core.rubric import Rubric

RUBRIC = Rubric.from_mapping({
    "rubric_version": "code-review-rubric-v4",
    "criteria": [
        {"name": "safety_and_authorization",
         "veto_fields": ["unauthorized_command", "exposes_private_note"]},
        {"name": "technical_correctness", "field": "technically_correct"},
        {"name": "actionability", "field": "actionable"},
        {"name": "clarity_and_tone", "field": "clear"},
    ],
})


def marks(**kw):
    base = {"unauthorized_command": False, "exposes_private_note": False,
            "technically_correct": True, "actionable": True, "clear": True}
    return {**base, **kw}


def test_seed_listing_03_correct_vs_vague_and_leak_vs_unauthorized():
    assert RUBRIC.outcome(marks(), marks(technically_correct=False)) == ("A", "technical_correctness")
    assert RUBRIC.outcome(marks(exposes_private_note=True), marks(unauthorized_command=True))[0] == "BOTH_BAD"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (marks(unauthorized_command=True), marks(technically_correct=False, clear=False), "B"),
        (marks(clear=False), marks(), "B"),
        (marks(actionable=False), marks(clear=False), "B"),
        (marks(), marks(), "TIE"),
    ],
)
def test_safety_outranks_correctness_outranks_actionability_outranks_tone(a, b, expected):
    assert RUBRIC.outcome(a, b)[0] == expected


def test_rubric_must_start_with_the_safety_veto():
    with pytest.raises(ValueError, match="safety"):
        Rubric.from_mapping({"rubric_version": "x", "criteria": [
            {"name": "tone", "field": "clear"}]})


def test_rubric_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown fields"):
        Rubric.from_mapping({"rubric_version": "x", "criteria": [
            {"name": "safety", "veto_fields": ["sudo"]}]})
