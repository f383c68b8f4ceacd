"""The promotion decision on its own: measured figures in, gates and manifest out."""

import dataclasses

import pandas as pd
import pytest

from feedback_pipeline.core.manifest import REQUIRED_FIELDS, Gate, QuarantineCount
from feedback_pipeline.core.release import ReleaseEvidence, decide_release
from feedback_pipeline.settings import Policy

POLICY = Policy()
LEAK_COLUMNS = ["training_id", "lane", "frozen_id", "rule"]


def passing(name: str) -> Gate:
    return Gate(name, True, 0, f"{name} rule")


def clean_evidence() -> ReleaseEvidence:
    lanes = {"sft": 3, "preference": 5, "unpaired": 2}
    return ReleaseEvidence(
        version="code-review-feedback-v2", parent="code-review-feedback-v1",
        days=["2026-05-01", "2026-05-03"], parent_gate=passing("parent_release_verified"),
        agreement_gate=Gate("agreement_gate", True, 0.81, "conger_kappa (point) >= 0.65"),
        agreement_record={"value": 0.81, "flagged_reviewers": []},
        slice_gate=passing("slice_agreement"), slices_routed={}, standing={}, suspended=[],
        rows=lanes, new_rows=dict(lanes), retracted_rows={k: 0 for k in lanes},
        has_changes=True, left_out_by_suspension={k: 0 for k in lanes},
        inherited_left_out={k: 0 for k in lanes}, held_for_slices={k: 0 for k in lanes},
        rubric_conflicts=1, incident_reasons=["BOTH_BAD: both unsafe", "unsafe_effect"],
        adjudication_reasons=["tie on every level", "safety flag"],
        review_cost={"seconds_per_accepted_label": 40.0}, frozen_set_id="eval-v1",
        frozen_set_size=12, leaks=pd.DataFrame(columns=LEAK_COLUMNS),
        near_duplicate_threshold=0.8, unsafe_pairs=[], residue_found=[[], []],
        quarantine={"traces": QuarantineCount(1, 99, {"bad json": 1})},
        run_id="run-1", code_version="0.1.0", created_at="2026-05-04T00:00:00+00:00")


def test_a_clean_candidate_promotes_with_every_seed_field_and_its_counts():
    decision = decide_release(clean_evidence(), POLICY)
    assert decision.promoted and decision.manifest["promotion_reasons"] == []
    assert set(REQUIRED_FIELDS) <= set(decision.manifest)
    counts = decision.manifest["row_counts"]
    assert (counts["both_bad"], counts["ties"], counts["rejected"]) == (1, 1, 1)
    assert decision.manifest["source_window"] == "2026-05-01/2026-05-03"
    assert [g.name for g in decision.gates] == [
        "redaction_residue", "evaluation_leakage", "agreement_gate", "slice_agreement",
        "unsafe_pairs_accepted", "manifest_complete", "quarantine_share",
        "parent_release_verified"]


@pytest.mark.parametrize(("change", "gate", "offending"), [
    ({"residue_found": [["t2", "t1"], ["t1"]]}, "redaction_residue", ["t1", "t2"]),
    ({"leaks": pd.DataFrame([["t9", "preference", "f3", "prompt_fingerprint"]],
                            columns=LEAK_COLUMNS)}, "evaluation_leakage", None),
    ({"unsafe_pairs": ["t4"]}, "unsafe_pairs_accepted", ["t4"]),
    ({"quarantine": {"traces": QuarantineCount(50, 50, {"bad json": 50})}},
     "quarantine_share", None),
    ({"agreement_gate": Gate("agreement_gate", False, 0.4, "conger_kappa >= 0.65",
                             reason="conger_kappa 0.400 < gate 0.65")}, "agreement_gate", None),
    ({"parent_gate": Gate("parent_release_verified", False, 1, "verifies",
                          reason="hash mismatch")}, "parent_release_verified", None),
])
def test_each_gate_fails_for_its_own_reason_and_only_it(change, gate, offending):
    decision = decide_release(dataclasses.replace(clean_evidence(), **change), POLICY)
    failed = [g for g in decision.gates if not g.passed]
    assert [g.name for g in failed] == [gate]
    assert not decision.promoted and len(decision.manifest["promotion_reasons"]) == 1
    assert decision.manifest["gates"][gate]["passed"] is False
    if offending is not None:
        assert failed[0].offending == offending


def test_a_manifest_missing_a_seed_field_fails_its_completeness_gate():
    evidence = dataclasses.replace(clean_evidence(), frozen_set_id=None)
    decision = decide_release(evidence, POLICY)
    complete = next(g for g in decision.gates if g.name == "manifest_complete")
    assert not complete.passed and "frozen_evaluation_set" in complete.offending


def test_rows_the_suspension_took_from_the_parent_count_as_a_change():
    evidence = dataclasses.replace(clean_evidence(), has_changes=False,
                                   inherited_left_out={"sft": 0, "preference": 2,
                                                       "unpaired": 0})
    assert decide_release(evidence, POLICY).manifest["has_changes"] is True
