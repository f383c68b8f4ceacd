"""Reviewer standing (gold-flagged reviewers suspended until they requalify) and slice gates
in the release: the rules of core.manifest and their wiring in stages.release."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedback_pipeline.core.candidate import LANE_INPUT, empty_input, write_candidate
from feedback_pipeline.core.manifest import (
    REINSTATED,
    SUSPENDED,
    GoldAnswer,
    promotion_reasons,
    reviewer_standing,
    suspended,
)
from feedback_pipeline.settings import ConfigError, Policy
from feedback_pipeline.stages import release
from feedback_pipeline_tests.core.agreement.conftest import gold_scenario, simulate

RULE = {"on": "gold_flag", "requalify_items": 10, "requalify_max_misses": 1}
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def policy(**kwargs):
    return Policy(bootstrap_samples=0, min_duplicate_items=5, **kwargs)


# ----------------------------------------------------------------------------- slices


def noisy_slice_reviews():
    reviews, _ = simulate(np.random.default_rng(2026), noisy_slice="accessible-language")
    return reviews


def test_a_slice_under_its_gate_blocks_promotion_and_the_reason_names_it():
    reviews = noisy_slice_reviews()
    declared = {"accessible-language": {"min_statistic": 0.6, "min_items": 10,
                                        "action": "block"},
                "prompt-injection": {"min_statistic": 0.6, "min_items": 10, "action": "block"}}
    p = policy(slice_gates=declared, kappa_gate=0.0)
    _, _, report = release.agreement_gate(reviews, [], p)
    gate, routed, _ = release.slice_agreement_gate(report, reviews, p)
    assert not gate.passed
    assert gate.offending == ["accessible-language"]
    assert gate.reason.startswith("slice accessible-language: kappa 0.")
    assert "< 0.60 (" in gate.reason and "items)" in gate.reason
    assert "prompt-injection" not in gate.reason
    assert gate.value["prompt-injection"]["passed"]
    assert routed == {}
    assert promotion_reasons([gate]) == ["slice agreement below declared gate"]


def test_a_slice_with_too_few_items_fails_and_says_so():
    reviews = noisy_slice_reviews()
    p = policy(slice_gates={"prompt-injection": {"min_statistic": 0.1, "min_items": 10_000},
                            "no-such-slice": {"min_statistic": 0.1, "min_items": 1}})
    _, _, report = release.agreement_gate(reviews, [], p)
    gate, _, _ = release.slice_agreement_gate(report, reviews, p)
    assert not gate.passed
    assert "slice prompt-injection: only" in gate.reason and "10000 needed" in gate.reason
    assert "slice no-such-slice: only 0 duplicate-reviewed items, 1 needed" in gate.reason


def test_an_adjudicate_slice_does_not_block_and_is_routed_with_its_traces():
    reviews = noisy_slice_reviews()
    p = policy(slice_gates={"accessible-language": {"min_statistic": 0.6, "min_items": 10,
                                                    "action": "adjudicate"}},
               agreement_statistic="krippendorff_alpha_nominal")
    _, _, report = release.agreement_gate(reviews, [], p)
    gate, routed, ids = release.slice_agreement_gate(report, reviews, p)
    assert gate.passed and gate.reason is None
    expected = sorted(set(reviews.loc[reviews["slice"] == "accessible-language", "trace_id"]))
    assert routed["accessible-language"]["n_traces"] == len(expected)
    assert routed["accessible-language"]["reason"].startswith("slice accessible-language: "
                                                              "alpha ")
    assert ids == {"accessible-language": expected}


def test_no_slice_gates_declared_passes():
    reviews = noisy_slice_reviews()
    _, _, report = release.agreement_gate(reviews, [], policy())
    gate, routed, ids = release.slice_agreement_gate(report, reviews, policy())
    assert gate.passed and gate.value == {} and routed == {} and ids == {}


# --------------------------------------------------------------------- standing rule


def answers(reviewer, misses, start, n=None):
    """`misses` a list of bools, one answer an hour from `start`."""
    return [GoldAnswer(reviewer, start + timedelta(hours=i), bool(m))
            for i, m in enumerate(misses[:n] if n else misses)]


def test_a_flagged_reviewer_is_suspended_from_the_end_of_the_evidence():
    window = answers("rev-x", [True] * 5 + [False], T0) + answers("rev-y", [False] * 20, T0)
    standing = reviewer_standing(["rev-x"], window, None, RULE)
    assert set(standing) == {"rev-x"}
    assert standing["rev-x"]["status"] == SUSPENDED
    assert standing["rev-x"]["suspended_since"] == (T0 + timedelta(hours=5)).isoformat()
    assert suspended(standing) == ["rev-x"]


def test_a_suspended_reviewer_is_reinstated_by_a_passing_requalification_set():
    before = answers("rev-x", [True] * 5 + [False], T0)
    since = T0 + timedelta(hours=5)
    first = reviewer_standing(["rev-x"], before, None, RULE)
    later = since + timedelta(days=1)
    # nine answers after the suspension: not yet a full set, still suspended
    nine = before + answers("rev-x", [False] * 9, later)
    assert reviewer_standing([], nine, first, RULE)["rev-x"]["status"] == SUSPENDED
    # two misses in the latest ten: still suspended, even if no longer flagged
    two = before + answers("rev-x", [True, True] + [False] * 8, later)
    kept = reviewer_standing([], two, first, RULE)["rev-x"]
    assert kept["status"] == SUSPENDED and kept["requalify_misses"] == 2
    # one miss in the latest ten (older misses after the suspension slide out): reinstated,
    # even while the window's old misses still flag them
    passing = before + answers("rev-x", [True, True] + [False] * 9 + [True], later)
    back = reviewer_standing(["rev-x"], passing, first, RULE)["rev-x"]
    assert back["status"] == REINSTATED
    assert (back["requalify_answers"], back["requalify_misses"]) == (10, 1)
    assert back["suspended_since"] == since.isoformat()
    # a reinstated reviewer stays reinstated until the gold check flags them again
    assert reviewer_standing([], [], {"rev-x": back}, RULE)["rev-x"]["status"] == REINSTATED
    assert reviewer_standing([], passing, {"rev-x": back}, {**RULE, "on": "never"}) == {}


def test_answers_without_time_cannot_requalify():
    timeless = [GoldAnswer("rev-x", None, True)] * 6
    standing = reviewer_standing(["rev-x"], timeless, None, RULE)
    assert standing["rev-x"]["status"] == SUSPENDED
    assert "no reviewed_at" in standing["rev-x"]["reason"]


def test_policy_declares_and_checks_the_new_rules():
    p = Policy()
    assert p.gold_prior == (1.0, 19.0)
    assert p.suspension == RULE
    assert p.slice_gates == {}
    assert Policy(reviewer_suspension={"requalify_items": 5}).suspension["requalify_items"] == 5
    bad = [{"gold_miss_prior": {"alpha": 0, "beta": 19}},
           {"gold_miss_prior": {"alpha": 1}},
           {"reviewer_suspension": {"on": "sometimes"}},
           {"reviewer_suspension": {"requalify_items": 3, "requalify_max_misses": 3}},
           {"reviewer_suspension": {"requalify_items": 0}},
           {"reviewer_suspension": {"typo": 1}},
           {"slice_gates": {"s": {"min_statistic": 0.6}}},
           {"slice_gates": {"s": {"min_statistic": 1.5, "min_items": 10}}},
           {"slice_gates": {"s": {"min_statistic": 0.6, "min_items": 0}}},
           {"slice_gates": {"s": {"min_statistic": 0.6, "min_items": 10, "action": "warn"}}},
           {"slice_gates": ["s"]}]
    for kwargs in bad:
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            Policy(**kwargs)


# ------------------------------------------------- suspension applied to release rows


def lane_files(folder, rows_by_lane):
    """Parquet lane inputs holding each lane's rows (other columns null)."""
    folder.mkdir()
    clauses = {}
    for lane, rows in rows_by_lane.items():
        schema = empty_input(lane).schema
        table = pa.table({c: pa.array([r.get(c) for r in rows], schema.field(c).type)
                          for c in LANE_INPUT[lane]})
        pq.write_table(table, folder / f"{lane}.parquet")
        clauses[lane] = f"read_parquet('{folder / f'{lane}.parquet'}')"
    return clauses


def lane_rows(reviewers_of):
    """Rows per lane: reviewer_ids -> trace ids (prompt etc. filled in)."""
    def row(tid, ids, **extra):
        return {"trace_id": tid, "prompt": "p", "prompt_fingerprint": tid,
                "reviewer_ids": ids, "review_ids": f"rv-{tid}", **extra}
    return {
        "preference": [row(t, ids, chosen="c", rejected="r") for t, ids in reviewers_of],
        "sft": [row(t, ids, answer="a") for t, ids in reviewers_of],
        "unpaired": [row(t, ids, completion="c", label=True) for t, ids in reviewers_of],
    }


def test_a_release_leaves_out_every_row_resting_on_a_gold_flagged_reviewer(tmp_path):
    reviews, gold = gold_scenario(5, 1)
    stamps = pd.Series([T0 + timedelta(minutes=i) for i in range(len(reviews))])
    gate, record, _ = release.agreement_gate(reviews, gold.to_dict("records"), policy())
    assert record["flagged_reviewers"] == ["target"]
    window_answers = [GoldAnswer(r.reviewer_id, stamps[i].to_pydatetime(), r.label != "A")
                      for i, r in enumerate(reviews.itertuples())]
    standing = reviewer_standing(record["flagged_reviewers"], window_answers, None,
                                 policy().suspension)
    barred = suspended(standing)
    assert barred == ["target"]

    window = lane_files(tmp_path / "window", lane_rows([
        ("t1", "other0,target"), ("t2", "target"), ("t3", "other1"), ("t4", None),
        ("t5", "other2,targeted")]))  # a pseudonym containing the name is not the reviewer
    parent_in = lane_files(tmp_path / "parent-in", lane_rows([("t0", "target"),
                                                             ("t9", "other0")]))
    with duckdb.connect() as con:
        (tmp_path / "v1").mkdir()
        v1 = write_candidate(con, parent_in, {}, "ds-v1", set(), tmp_path / "v1")
        parent = {lane: f"read_parquet('{path}')" for lane, path in v1.files.items()}
        left_out = release.rows_resting_on(con, window, parent, barred, {"t9"})
        (tmp_path / "v2").mkdir()
        v2 = write_candidate(con, release.without_reviewers(window, barred),
                             release.without_reviewers(parent, barred), "ds-v2", set(),
                             tmp_path / "v2")
    assert left_out == {"preference": 3, "sft": 3, "unpaired": 3}  # t0 (inherited), t1, t2
    for lane, path in v2.files.items():
        rows = pq.read_table(path).to_pylist()
        assert sorted(r["trace_id"] for r in rows) == ["t3", "t4", "t5", "t9"], lane
        assert not any("target" in (r["reviewer_ids"] or "").split(",") for r in rows)
    assert release.without_reviewers(window, []) == window


def test_the_release_manifest_lists_suspended_reviewers_and_the_rows_left_out(
        pipeline_run, tmp_path, monkeypatch):
    import dagster as dg

    from feedback_pipeline.definitions import build_definitions
    from feedback_pipeline_tests.conftest import copy_root

    root = copy_root(pipeline_run[0], tmp_path / "data")
    pairs = pq.read_table(root / "warehouse" / "preference_pairs").to_pylist()
    counts = pd.Series([r for p in pairs for r in (p["reviewer_ids"] or "").split(",") if r])
    target = counts.value_counts().index[0]
    original = release.agreement_gate

    def flagging(reviews, gold, p):  # the gold check flags `target`
        gate, record, report = original(reviews, gold, p)
        return gate, {**record, "flagged_reviewers": [target]}, report

    monkeypatch.setattr(release, "agreement_gate", flagging)
    for version in (root / "releases").iterdir():  # a fresh v1, no parent to inherit
        version.rename(tmp_path / version.name)
    defs = build_definitions(str(root))
    result = defs.resolve_job_def("release").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {"dataset_manifest": {"config": {"start": None, "end": None}}}})
    folder = root / "warehouse" / "release_candidate"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["suspended_reviewers"] == [target]
    assert manifest["reviewer_standing"][target]["status"] == SUSPENDED
    left_out = manifest["rows_left_out_by_suspension"]
    assert left_out["preference"] == sum(target in (p["reviewer_ids"] or "").split(",")
                                         for p in pairs) > 0
    for name in ("preference_pairs.parquet", "sft_demonstrations.parquet",
                 "pointwise_labels.parquet"):
        rows = pq.read_table(folder / name).to_pylist()
        assert not any(target in (r["reviewer_ids"] or "").split(",") for r in rows), name
    assert manifest["gates"]["slice_agreement"]["passed"]
    assert manifest["slices_routed_to_adjudication"] == {}
    checks = {e.check_name for e in result.get_asset_check_evaluations()}
    assert "slice_agreement" in checks


def _release_with_slice_gate(pipeline_run, tmp_path, action):
    """The release job on a copy of the pipeline's data root, `fixture-failure` under an
    unreachable gate (more duplicate-reviewed items than the sample has)."""
    import dagster as dg
    import yaml

    from feedback_pipeline.definitions import build_definitions
    from feedback_pipeline_tests.conftest import copy_root

    root = copy_root(pipeline_run[0], tmp_path / "data")
    policy_path = root / "config" / "policy.yaml"
    declared = yaml.safe_load(policy_path.read_text())
    declared["slice_gates"] = {"fixture-failure": {"min_statistic": 0.5, "min_items": 100_000,
                                                   "action": action}}
    policy_path.write_text(yaml.safe_dump(declared))
    for version in (root / "releases").iterdir():  # a fresh v1, no parent to inherit
        version.rename(tmp_path / version.name)
    result = build_definitions(str(root)).resolve_job_def("release").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {"dataset_manifest": {"config": {"start": None, "end": None}}}})
    folder = root / "warehouse" / "release_candidate"
    return root, result, json.loads((folder / "manifest.json").read_text()), folder


def test_a_blocking_slice_gate_refuses_promotion_naming_the_slice(pipeline_run, tmp_path):
    root, result, manifest, _ = _release_with_slice_gate(pipeline_run, tmp_path, "block")
    gate = manifest["gates"]["slice_agreement"]
    assert not gate["passed"] and gate["reason"].startswith("slice fixture-failure: only ")
    assert "slice agreement below declared gate" in manifest["promotion_reasons"]
    assert not result.success and not (root / "releases").exists() or \
        not any((root / "releases").iterdir())


def test_an_adjudicate_slice_gate_holds_the_slice_rows_back_and_counts_them(pipeline_run,
                                                                            tmp_path):
    root, result, manifest, folder = _release_with_slice_gate(pipeline_run, tmp_path,
                                                              "adjudicate")
    assert manifest["gates"]["slice_agreement"]["passed"]
    routed = json.loads((folder / release.ROUTED_SLICES).read_text())["fixture-failure"]
    assert manifest["slices_routed_to_adjudication"]["fixture-failure"]["n_traces"] == \
        len(routed) > 0
    held = manifest["rows_held_for_slice_adjudication"]
    window = {"preference": "preference_pairs", "sft": "demonstrations",
              "unpaired": "pointwise_assessments"}
    barred = set(manifest["suspended_reviewers"])  # their rows are left out before this
    for lane, table in window.items():
        rows = [r for r in pq.read_table(root / "warehouse" / table).to_pylist()
                if not barred & set((r["reviewer_ids"] or "").split(","))]
        assert held[lane] == sum(r["trace_id"] in set(routed) for r in rows), lane
    assert held["preference"] > 0
    for name in ("preference_pairs.parquet", "sft_demonstrations.parquet",
                 "pointwise_labels.parquet"):
        released = {r["trace_id"] for r in pq.read_table(folder / name).to_pylist()}
        assert not released & set(routed), name
    assert result.success
