"""The quarantine gate and the reason categories a summary groups by."""

from feedback_pipeline.core.contract import reason_category
from feedback_pipeline.core.manifest import QuarantineCount, quarantine_gate


def test_a_quarantine_surge_fails_the_gate_with_its_table_share_and_main_reason():
    counts = {"traces": QuarantineCount(2, 98, {"not valid JSON": 2}),
              "reviews": QuarantineCount(146, 48, {"trace_id is not a known trace": 140,
                                                   "score must be a number": 6})}
    gate = quarantine_gate(counts, 0.05)
    assert not gate.passed and gate.offending == ["reviews"]
    assert gate.value == {"traces": 0.02, "reviews": 0.7526}
    assert gate.reason == ("reviews quarantined 146 of 194 lines (75.3%), mostly "
                           "'trace_id is not a known trace'")
    assert quarantine_gate(counts, 0.8).passed


def test_an_empty_window_passes_and_reasons_lose_their_particulars():
    assert quarantine_gate({"traces": QuarantineCount(0, 0, {})}, 0.0).passed
    assert reason_category("rubric_version 'v9-secret@example.com' is not a known rubric") == \
        "rubric_version … is not a known rubric"
    assert reason_category("not valid JSON (Expecting ',' delimiter: line 1 column 40)") == \
        "not valid JSON"
