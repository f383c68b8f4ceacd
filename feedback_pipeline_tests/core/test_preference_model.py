import numpy as np
import pandas as pd
import pytest

from feedback_pipeline.core.preference_model import PreferenceModel, uncertainty_for
from feedback_pipeline.core.selection import NO_MODEL_NOTE

FEATURES = 2**12
# slice -> (probability that an answer carries its quality token, label noise): the simulated
# truth is easy on routine failures and harder on the other regions.
DIFFICULTY = {
    "routine": (1.0, 0.0),
    "fixture": (0.8, 0.05),
    "injection": (0.6, 0.1),
    "accessible": (0.5, 0.15),
}
FILLER = ["please", "review", "this", "change", "and", "explain", "the", "failing", "check"]


def synthetic_pairs(n: int, seed: int, slices=None) -> pd.DataFrame:
    """Preference pairs whose truth depends on slice-specific quality words."""
    rng = np.random.default_rng(seed)
    names = list(slices or DIFFICULTY)
    rows = []
    for i in range(n):
        name = names[rng.integers(len(names))]
        signal, noise = DIFFICULTY[name]

        def answer(kind: str, name=name, signal=signal) -> str:
            words = list(rng.choice(FILLER, size=5))
            words.append(f"{name}topic")
            if rng.uniform() < signal:
                words.append(f"{name}{kind}{rng.integers(4)}")
            rng.shuffle(words)
            return " ".join(words)

        good, bad = answer("good"), answer("bad")
        good_is_a = bool(rng.integers(2))
        label = "A" if good_is_a else "B"
        if rng.uniform() < noise:
            label = "B" if label == "A" else "A"
        rows.append(
            {
                "trace_id": f"t{seed}-{i}",
                "slice": name,
                "prompt": f"{name}topic ci run {i % 7} failed, what should I do",
                "text_a": good if good_is_a else bad,
                "text_b": bad if good_is_a else good,
                "label": label,
            }
        )
    return pd.DataFrame(rows)


def as_training(pairs: pd.DataFrame) -> pd.DataFrame:
    """Accepted preference rows (prompt, chosen, rejected) from labelled pairs."""
    a_wins = pairs["label"] == "A"
    return pd.DataFrame(
        {
            "prompt": pairs["prompt"],
            "chosen": pairs["text_a"].where(a_wins, pairs["text_b"]),
            "rejected": pairs["text_b"].where(a_wins, pairs["text_a"]),
        }
    ).reset_index(drop=True)


def accuracy(model: PreferenceModel, pairs: pd.DataFrame) -> float:
    p_a = model.predict_proba_a(pairs["prompt"], pairs["text_a"], pairs["text_b"])
    return float(np.mean((p_a > 0.5) == (pairs["label"] == "A").to_numpy()))


def test_model_learns_quality_words_and_generalises():
    train = synthetic_pairs(300, seed=1, slices=["routine", "fixture"])
    held_out = synthetic_pairs(200, seed=2, slices=["routine", "fixture"])
    model = PreferenceModel(n_features=FEATURES).fit(
        *(as_training(train)[c] for c in ("prompt", "chosen", "rejected"))
    )
    assert model.trained and model.n_train == 300
    assert accuracy(model, held_out) > 0.85


def test_unseen_region_stays_near_chance():
    model = PreferenceModel(n_features=FEATURES).fit(
        *(
            as_training(synthetic_pairs(200, 3, ["routine"]))[c]
            for c in ("prompt", "chosen", "rejected")
        )
    )
    seen = synthetic_pairs(100, 4, ["routine"])
    unseen = synthetic_pairs(100, 4, ["accessible"])
    seen_unc, _ = uncertainty_for(model, seen["prompt"], seen["text_a"], seen["text_b"])
    unseen_unc, note = uncertainty_for(model, unseen["prompt"], unseen["text_a"], unseen["text_b"])
    assert "200 accepted pairs" in note
    assert unseen_unc.mean() > 0.9 > seen_unc.mean()
    assert np.all((seen_unc >= 0) & (seen_unc <= 1))


def test_answer_order_cannot_change_the_verdict():
    pairs = synthetic_pairs(100, 5)
    model = PreferenceModel(n_features=FEATURES).fit(
        *(as_training(pairs)[c] for c in ("prompt", "chosen", "rejected"))
    )
    forward = model.predict_proba_a(pairs["prompt"], pairs["text_a"], pairs["text_b"])
    backward = model.predict_proba_a(pairs["prompt"], pairs["text_b"], pairs["text_a"])
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-12)
    assert np.ptp(forward) > 0.3


def test_no_pairs_means_no_model_and_random_fallback():
    model = PreferenceModel(n_features=FEATURES).fit([], [], [])
    assert not model.trained and model.n_train == 0
    with pytest.raises(RuntimeError, match="not trained"):
        model.predict_proba_a(["p"], ["a"], ["b"])
    assert uncertainty_for(model, ["p"], ["a"], ["b"]) == (None, NO_MODEL_NOTE)
    assert uncertainty_for(None, ["p"], ["a"], ["b"]) == (None, NO_MODEL_NOTE)


def test_missing_text_is_treated_as_empty():
    model = PreferenceModel(n_features=FEATURES).fit(
        ["p", "q"], ["good fix", "good test"], ["bad", "bad"]
    )
    p_a = model.predict_proba_a(
        pd.Series(["p", None], dtype="string"),
        pd.Series(["good fix", pd.NA], dtype="string"),
        ["bad", "good"],
    )
    assert p_a[0] > 0.5 > p_a[1]


def test_save_and_load_reproduce_predictions(tmp_path):
    pairs = synthetic_pairs(80, 6)
    model = PreferenceModel(n_features=FEATURES, C=0.5, seed=3).fit(
        *(as_training(pairs)[c] for c in ("prompt", "chosen", "rejected"))
    )
    loaded = PreferenceModel.load(model.save(tmp_path / "parent.npz"))
    assert loaded.trained and loaded.n_train == 80 and loaded.C == 0.5
    np.testing.assert_array_equal(
        loaded.predict_proba_a(pairs["prompt"], pairs["text_a"], pairs["text_b"]),
        model.predict_proba_a(pairs["prompt"], pairs["text_a"], pairs["text_b"]),
    )
    untrained = PreferenceModel.load(PreferenceModel().save(tmp_path / "empty.npz"))
    assert not untrained.trained


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, meta=np.array('{"format": "something-else"}'), coef=np.zeros(3))
    with pytest.raises(ValueError, match="not a preference model"):
        PreferenceModel.load(path)


def test_prediction_in_batches_matches_one_pass():
    pairs = synthetic_pairs(50, 7)
    model = PreferenceModel(n_features=FEATURES).fit(
        *(as_training(pairs)[c] for c in ("prompt", "chosen", "rejected"))
    )
    whole = model.predict_proba_a(pairs["prompt"], pairs["text_a"], pairs["text_b"])
    batched = model.predict_proba_a(pairs["prompt"], pairs["text_a"], pairs["text_b"],
                                    batch_rows=7)
    np.testing.assert_allclose(batched, whole, rtol=1e-12)
