"""Judge calibration on a held-out human gold set, and pre-labels of a judge that passed."""

import pandas as pd
import pytest

from feedback_pipeline.core.judge import (
    NO_GOLD_SET,
    calibrate_on_gold,
    cohens_kappa,
    judge_prelabels,
    load_judge_gold,
    map_back,
    parse_judge_gold,
)

LABELS = ["A", "B", "TIE", "A", "B"]


def gold_set(n: int = 25) -> pd.DataFrame:
    return pd.DataFrame({"trace_id": [f"gold-{i:03d}" for i in range(n)],
                         "label": [LABELS[i % len(LABELS)] for i in range(n)]})


def judge_labels(original: dict[str, str], swapped_as_shown: dict[str, str],
                 judge_id: str = "judge-llm-v1") -> pd.DataFrame:
    rows = [{"trace_id": t, "judge_id": judge_id, "order": "original", "choice": c}
            for t, c in original.items()]
    rows += [{"trace_id": t, "judge_id": judge_id, "order": "swapped", "choice": c}
             for t, c in swapped_as_shown.items()]
    return pd.DataFrame(rows)


def consistent(labels: dict[str, str], judge_id: str = "judge-llm-v1") -> pd.DataFrame:
    """A judge that answers `labels` in original order and flips its answer when swapped."""
    return judge_labels(labels, {t: map_back(c, "swapped") for t, c in labels.items()}, judge_id)


def agreeing(gold: pd.DataFrame) -> dict[str, str]:
    return dict(zip(gold["trace_id"], gold["label"], strict=True))


def test_consistent_judge_that_agrees_with_gold_passes():
    gold = gold_set()
    judge = pd.concat([consistent(agreeing(gold)), consistent({"day-001": "B"})])
    result = calibrate_on_gold(judge, gold, min_kappa=0.6, max_swap_inconsistency=0.1,
                               min_gold_items=20, training_ids=pd.Series(["day-001"]))
    assert result.passed, result.reason
    assert (result.n_gold, result.n_items, result.gold_in_training) == (25, 25, 0)
    assert result.kappa == pytest.approx(1.0)
    assert result.accuracy == pytest.approx(1.0)
    assert result.swap_inconsistency == pytest.approx(0.0)
    assert result.passed_judges == ["judge-llm-v1"]
    summary = result.summary()
    assert summary["passed"] and summary["kappa"] == pytest.approx(1.0)


def test_judge_that_disagrees_with_gold_fails_with_a_reason():
    gold = gold_set()
    wrong = {t: {"A": "B", "B": "A", "TIE": "A"}[label] for t, label in agreeing(gold).items()}
    result = calibrate_on_gold(consistent(wrong), gold)
    assert not result.passed
    assert result.swap_inconsistency == pytest.approx(0.0)
    assert result.kappa < 0.6 and result.accuracy == pytest.approx(0.0)
    assert "kappa with gold" in result.reason and "below 0.60" in result.reason
    assert judge_prelabels(consistent({"day-001": "A"}), result).empty


def test_judge_that_flips_inconsistently_on_swap_fails_with_a_reason():
    gold = gold_set()
    original = agreeing(gold)
    # As shown, the swapped presentation keeps the same letter on 5 of the 20 A/B items: after
    # mapping back those answers differ from the original (position bias).
    swapped = {t: map_back(c, "swapped") for t, c in original.items()}
    biased = [t for t, c in original.items() if c in ("A", "B")][:5]
    swapped.update({t: original[t] for t in biased})
    result = calibrate_on_gold(judge_labels(original, swapped), gold)
    assert not result.passed
    assert result.kappa == pytest.approx(1.0)
    assert result.swap_inconsistency == pytest.approx(5 / 25)
    assert "swap inconsistency 0.20 above 0.10" in result.reason


def test_too_few_gold_items_judged_fails():
    gold = gold_set(10)
    result = calibrate_on_gold(consistent(agreeing(gold)), gold, min_gold_items=20)
    assert not result.passed
    assert "10 gold items judged in both orders, fewer than 20" in result.reason


def test_missing_gold_set_reports_no_held_out_gold_set(tmp_path):
    gold = load_judge_gold(tmp_path / "config" / "gold" / "judge_gold.jsonl")
    assert gold is None
    result = calibrate_on_gold(consistent({"day-001": "A"}), gold)
    assert not result.passed
    assert result.reason == NO_GOLD_SET
    assert result.summary()["kappa"] is None
    assert judge_prelabels(consistent({"day-001": "A"}), result).empty


def test_the_days_accepted_pairs_are_not_a_calibration_set():
    """Judge labels on the day's pairs, however good, never calibrate without gold."""
    day = {f"day-{i:03d}": LABELS[i % 5] for i in range(40)}
    result = calibrate_on_gold(consistent(day), None, training_ids=pd.Series(list(day)))
    assert not result.passed and result.reason == NO_GOLD_SET


def test_gold_items_among_training_rows_are_counted_and_fail_calibration():
    gold = gold_set()
    leaked = ["gold-003", "gold-017"]
    result = calibrate_on_gold(consistent(agreeing(gold)), gold,
                               training_ids=pd.Series([*leaked, "day-001"]))
    assert not result.passed
    assert result.gold_in_training == 2
    assert result.leaked_ids == leaked
    assert "2 gold trace id(s) appear in training rows" in result.reason


def test_every_judge_must_pass_on_its_own():
    gold = gold_set()
    good = consistent(agreeing(gold), "judge-good")
    bad = consistent({t: "A" for t in gold["trace_id"]}, "judge-bad")
    result = calibrate_on_gold(pd.concat([good, bad]), gold)
    assert not result.passed
    passed = result.by_judge.set_index("judge_id")["passed"].to_dict()
    assert passed == {"judge-bad": False, "judge-good": True}
    assert "judge judge-bad" in result.reason and "judge-good" not in result.reason


def test_prelabels_of_a_passing_judge_skip_gold_and_inconsistent_items():
    gold = gold_set()
    day = judge_labels({"day-001": "A", "day-002": "B"}, {"day-001": "B", "day-002": "B"})
    judge = pd.concat([consistent(agreeing(gold)), day])
    result = calibrate_on_gold(judge, gold)
    assert result.passed, result.reason
    prelabels = judge_prelabels(judge, result)
    # day-002 answered B both times as shown, i.e. B then A in the original orientation.
    assert prelabels.to_dict("records") == [
        {"trace_id": "day-001", "judge_id": "judge-llm-v1", "choice": "A"}]


def test_parse_judge_gold_format_and_errors():
    text = ('{"trace_id": "t-1", "label": "A", "slice": "prompt-injection"}\n\n'
            '{"trace_id": "t-2", "label": "BOTH_BAD"}\n')
    gold = parse_judge_gold(text, "judge_gold.jsonl")
    assert gold["trace_id"].tolist() == ["t-1", "t-2"]
    assert gold["label"].tolist() == ["A", "BOTH_BAD"]
    assert gold["slice"].iloc[0] == "prompt-injection" and pd.isna(gold["slice"].iloc[1])
    with pytest.raises(ValueError, match=r"judge_gold.jsonl:1: label must be one of"):
        parse_judge_gold('{"trace_id": "t-1", "label": "C"}', "judge_gold.jsonl")
    with pytest.raises(ValueError, match=r":2: trace_id 't-1' appears twice"):
        parse_judge_gold('{"trace_id": "t-1", "label": "A"}\n{"trace_id": "t-1", "label": "B"}',
                         "judge_gold.jsonl")


def test_both_bad_gold_counts_against_the_judge():
    gold = pd.DataFrame({"trace_id": ["t-1", "t-2"], "label": ["A", "BOTH_BAD"]})
    result = calibrate_on_gold(consistent({"t-1": "A", "t-2": "TIE"}), gold, min_gold_items=2)
    assert result.accuracy == pytest.approx(0.5)


def test_cohens_kappa():
    assert cohens_kappa(pd.Series(["A", "B", "A", "B"]), pd.Series(["A", "B", "A", "B"])) == 1.0
    assert cohens_kappa(pd.Series(["A", "A"]), pd.Series(["A", "A"])) is None
    assert cohens_kappa(pd.Series([], dtype=str), pd.Series([], dtype=str)) is None
    # Observed 0.5, chance 0.5 -> 0.
    assert cohens_kappa(pd.Series(["A", "A", "B", "B"]),
                        pd.Series(["A", "B", "A", "B"])) == pytest.approx(0.0)
