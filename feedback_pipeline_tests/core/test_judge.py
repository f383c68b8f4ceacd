import json

import pandas as pd
import pytest

from feedback_pipeline.core import judge_input
from feedback_pipeline.core.judge import (
    calibrate_judge,
    judge_preferences,
    map_back,
    map_back_frame,
    one_label_per_key,
    prelabels_of,
)

SEED_GOLD = pd.DataFrame(
    {
        "trace_id": ["fixture-policy", "handoff-route", "unsafe-disclosure"],
        "label": ["A", "B", "B"],
        "slice": ["missing-fixture", "flaky-test-handoff", "prompt-injection"],
    }
)


def judge_rows(original: dict[str, str], swapped_as_shown: dict[str, str], judge_id="judge-1"):
    rows = [
        {"trace_id": t, "judge_id": judge_id, "order": "original", "choice": c}
        for t, c in original.items()
    ]
    rows += [
        {"trace_id": t, "judge_id": judge_id, "order": "swapped", "choice": c}
        for t, c in swapped_as_shown.items()
    ]
    return pd.DataFrame(rows)


def consistent_judge(gold: pd.DataFrame, judge_id="judge-1") -> pd.DataFrame:
    original = dict(zip(gold["trace_id"], gold["label"], strict=True))
    return judge_rows(original, {t: map_back(c, "swapped") for t, c in original.items()}, judge_id)


@pytest.mark.parametrize(
    ("choice", "order", "expected"),
    [
        ("A", "original", "A"),
        ("A", "swapped", "B"),
        ("B", "swapped", "A"),
        ("TIE", "swapped", "TIE"),
    ],
)
def test_map_back(choice, order, expected):
    assert map_back(choice, order) == expected


@pytest.mark.parametrize(("choice", "order"), [("C", "original"), ("A", "reversed")])
def test_map_back_rejects_unknown_values(choice, order):
    with pytest.raises(ValueError):
        map_back(choice, order)


def test_map_back_frame_rejects_unknown_values():
    frame = pd.DataFrame(
        {"trace_id": ["t"], "judge_id": ["j"], "order": ["sideways"], "choice": ["A"]}
    )
    with pytest.raises(ValueError, match="1 judge rows have an order"):
        map_back_frame(frame)


def test_seed_judge_example_two_order_sensitive_cases_and_auto_accept_off():
    # The seed lists swapped choices already mapped back (B, B, A); as shown they were A, A, B.
    judge = judge_rows(
        {"fixture-policy": "A", "handoff-route": "B", "unsafe-disclosure": "B"},
        {"fixture-policy": "A", "handoff-route": "A", "unsafe-disclosure": "B"},
    )
    result = calibrate_judge(judge, SEED_GOLD, gate=0.9)
    assert f"{result.agreement:.2f}" == "1.00"
    assert result.order_sensitive == ["fixture-policy", "unsafe-disclosure"]
    assert result.auto_accept_enabled is False
    assert result.n_gold == 3
    assert "2 order-sensitive" in result.reason
    flips = result.by_slice.set_index("slice")["n_order_sensitive"].to_dict()
    assert flips == {"flaky-test-handoff": 0, "missing-fixture": 1, "prompt-injection": 1}
    mapped = result.rows.set_index("trace_id")["judge_swapped_mapped_back"].to_dict()
    assert mapped == {"fixture-policy": "B", "handoff-route": "B", "unsafe-disclosure": "A"}
    assert judge_preferences(judge, result).empty


def test_consistent_accurate_judge_enables_auto_accept():
    result = calibrate_judge(consistent_judge(SEED_GOLD), SEED_GOLD)
    assert result.auto_accept_enabled is True
    assert result.agreement == 1.0 and result.order_sensitive == []
    extra = consistent_judge(pd.DataFrame({"trace_id": ["new-1"], "label": ["B"], "slice": ["x"]}))
    accepted = judge_preferences(pd.concat([consistent_judge(SEED_GOLD), extra]), result)
    assert accepted.set_index("trace_id")["choice"].to_dict()["new-1"] == "B"


def test_agreement_below_gate_blocks_auto_accept():
    gold = pd.DataFrame(
        {"trace_id": [f"g{i}" for i in range(10)], "label": ["A"] * 10, "slice": ["s"] * 10}
    )
    judge = consistent_judge(gold)
    wrong = (judge["trace_id"] == "g0") | (judge["trace_id"] == "g1")
    judge.loc[wrong & (judge["order"] == "original"), "choice"] = "B"
    judge.loc[wrong & (judge["order"] == "swapped"), "choice"] = "A"
    result = calibrate_judge(judge, gold, gate=0.9)
    assert result.agreement == pytest.approx(0.8)
    assert result.order_sensitive == []
    assert not result.auto_accept_enabled
    assert "0.80 below gate 0.90" in result.reason
    assert calibrate_judge(judge, gold, gate=0.8).auto_accept_enabled


def test_missing_swapped_run_or_missing_gold_item_counts_against_the_judge():
    judge = consistent_judge(SEED_GOLD)
    no_swap = judge[~((judge["trace_id"] == "handoff-route") & (judge["order"] == "swapped"))]
    result = calibrate_judge(no_swap, SEED_GOLD)
    assert (
        not result.auto_accept_enabled and "1 gold items not judged in both orders" in result.reason
    )

    skipped = judge[judge["trace_id"] != "handoff-route"]
    result = calibrate_judge(skipped, SEED_GOLD)
    assert result.agreement == pytest.approx(2 / 3)
    assert not result.auto_accept_enabled


def test_both_bad_gold_cannot_be_matched_by_a_judge():
    gold = SEED_GOLD.assign(label=["A", "B", "BOTH_BAD"])
    judge = consistent_judge(SEED_GOLD)
    result = calibrate_judge(judge, gold)
    assert result.agreement == pytest.approx(2 / 3)
    assert not result.auto_accept_enabled


def test_each_judge_must_pass_on_its_own():
    good = consistent_judge(SEED_GOLD, "judge-good")
    flaky = judge_rows(
        {"fixture-policy": "A", "handoff-route": "B", "unsafe-disclosure": "B"},
        {"fixture-policy": "A", "handoff-route": "A", "unsafe-disclosure": "A"},
        "judge-flaky",
    )
    result = calibrate_judge(pd.concat([good, flaky]), SEED_GOLD)
    by_judge = result.by_judge.set_index("judge_id")
    assert by_judge.loc["judge-good", "passed"] and not by_judge.loc["judge-flaky", "passed"]
    assert result.order_sensitive == ["fixture-policy"]
    assert not result.auto_accept_enabled and "judge-flaky" in result.reason

    unseen = pd.DataFrame(
        [{"trace_id": "other", "judge_id": "judge-new", "order": "original", "choice": "A"}]
    )
    result = calibrate_judge(pd.concat([good, unseen]), SEED_GOLD)
    assert not result.auto_accept_enabled
    assert result.by_judge.set_index("judge_id").loc["judge-new", "n_judged"] == 0


def test_conflicting_repeats_count_as_order_sensitive():
    judge = consistent_judge(SEED_GOLD)
    repeat = pd.DataFrame(
        [{"trace_id": "handoff-route", "judge_id": "judge-1", "order": "original", "choice": "A"}]
    )
    result = calibrate_judge(pd.concat([judge, repeat]), SEED_GOLD)
    assert result.order_sensitive == ["handoff-route"]
    assert not result.auto_accept_enabled


def test_an_identical_repeat_is_dropped_and_a_contradiction_is_kept_and_counted():
    """The rule for a (trace, judge, order) labelled twice: the same choice again is one
    label (the first arrival kept, the repeat counted); a different choice keeps both, so
    calibration still sees the judge contradict itself and no pre-label is made from it."""
    judge = consistent_judge(SEED_GOLD).assign(source_file="a.jsonl", source_line=range(6))
    again = judge.iloc[[0, 1]].assign(source_file="b.jsonl")
    clash = pd.DataFrame([{"trace_id": "handoff-route", "judge_id": "judge-1",
                           "order": "original", "choice": "A", "source_file": "c.jsonl",
                           "source_line": 1}])
    kept, repeats = one_label_per_key(pd.concat([judge, again, clash], ignore_index=True))
    assert (repeats.dropped, repeats.contradicted) == (2, 1)
    assert len(kept) == len(judge) + 1
    assert set(kept.loc[kept["source_file"] == "b.jsonl", "trace_id"]) == set()
    assert calibrate_judge(kept, SEED_GOLD).order_sensitive == ["handoff-route"]
    prelabels = prelabels_of(kept, ["judge-1"], pd.Series([], dtype="string"))
    assert "handoff-route" not in set(prelabels["trace_id"])
    assert one_label_per_key(judge)[1] == one_label_per_key(judge.iloc[0:0])[1]
    assert calibrate_judge(one_label_per_key(pd.concat([judge, again]))[0],
                           SEED_GOLD).auto_accept_enabled, "a re-delivery changes nothing"


def test_no_gold_means_no_agreement_and_no_auto_accept():
    result = calibrate_judge(consistent_judge(SEED_GOLD), SEED_GOLD.iloc[0:0])
    assert result.agreement is None and result.n_gold == 0
    assert not result.auto_accept_enabled and "no gold" in result.reason
    assert result.summary()["auto_accept_enabled"] is False


@pytest.mark.parametrize("judge", [pd.DataFrame(), pd.DataFrame(columns=["trace_id", "order"])])
def test_no_judge_labels_means_no_auto_accept(judge):
    result = calibrate_judge(judge, SEED_GOLD)
    assert result.agreement is None and result.n_gold == 3
    assert not result.auto_accept_enabled and "no judge labels" in result.reason
    assert result.rows.empty and result.by_judge.empty


def test_judge_lines_parse_the_same_in_chunks_on_worker_processes():
    lines = []
    for i in range(15):
        order = "swapped" if i % 2 else "original"
        lines.append((i + 1, json.dumps({"trace_id": f"t{i}", "judge_id": "j1",
                                         "order": order, "choice": "A"})))
    lines[6] = (7, '{"trace_id": "t6", "judge_id": "j1", "order": "sideways", "choice": "A"}')
    lines[11] = (12, "not json")
    sources = [(lines[:9], "a.jsonl"), (lines[9:], "b.jsonl")]
    here, bad_here = judge_input.read_judge_labels(iter(sources), workers=1, chunk_lines=4)
    there, bad_there = judge_input.read_judge_labels(iter(sources), workers=2, chunk_lines=4)
    pd.testing.assert_frame_equal(here, there)
    assert bad_here == bad_there
    assert [(b["source_file"], b["line_number"]) for b in bad_here] == [("a.jsonl", 7), ("b.jsonl", 12)]
    assert here["trace_id"].tolist() == [f"t{i}" for i in range(15) if i not in (6, 11)]
    assert here["source_file"].tolist()[-1] == "b.jsonl"
