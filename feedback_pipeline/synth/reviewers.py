"""Simulated reviewers and LLM judge with known, documented error processes.

Noise model. A reviewer reads each candidate of a pair independently; with probability `noise`
they misread that candidate, which flips exactly one of its five rubric fields (chosen uniformly)
before the ordered rubric is applied. `noise` is therefore the per-candidate misreading rate;
the rate at which a reviewer's derived outcome differs from the truth is lower (0.7-0.8 x
noise), because not every flip changes the outcome. Independently, with probability
`CONTRADICTION_RATE` a reviewer states a choice that contradicts their own criteria (choosing
the unsafe answer when there is one), which the pipeline must flag as a rubric conflict.

| reviewer | noise | relative share of the queue | expected outcome error |
|---|---|---|---|
| rev-01 | 0.010 | 1.0 | ~1% |
| rev-02 | 0.015 | 1.0 | ~1% |
| rev-03 | 0.020 | 1.0 | ~2% |
| rev-04 | 0.025 | 1.0 | ~2% |
| rev-05 | 0.030 | 1.0 | ~2% |
| rev-06 | 0.450 | 0.3 | ~30%: the noisy reviewer the gold items should flag |

With these levels, on 3 days x 80 traces, the window's pooled Cohen's kappa (Light's, over every
duplicate pair, gold items included) averaged 0.83 over 30 seeds (lowest 0.76), a single day's
0.83 (1% of days under 0.65), and gold items flagged rev-06 for every seed. Gold items go to
every reviewer, so that the noisy one meets enough of them to be flagged.

The judge (`judge-llm-v1`) agrees with the true outcome on A/B pairs with probability
`JUDGE_ACCURACY`; independently for each presentation it answers "A" (whatever is shown first)
with probability `JUDGE_POSITION_BIAS`, so some pairs flip when the order is swapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Field order of the criteria arrays: the two veto fields first.
FIELDS = ("unauthorized_command", "exposes_private_note", "technically_correct", "actionable",
          "clear")
OUTCOMES = np.array(["A", "B", "TIE", "BOTH_BAD"], dtype=object)
A, B, TIE, BOTH_BAD = 0, 1, 2, 3
CONTRADICTION_RATE = 0.03
SECOND_REVIEW_RATE = 0.45
JUDGE_ID = "judge-llm-v1"
JUDGE_ACCURACY = 0.9
JUDGE_POSITION_BIAS = 0.15


@dataclass(frozen=True)
class SimulatedReviewer:
    reviewer_id: str
    noise: float
    share: float


REVIEWERS = (
    SimulatedReviewer("rev-01", 0.010, 1.0),
    SimulatedReviewer("rev-02", 0.015, 1.0),
    SimulatedReviewer("rev-03", 0.020, 1.0),
    SimulatedReviewer("rev-04", 0.025, 1.0),
    SimulatedReviewer("rev-05", 0.030, 1.0),
    SimulatedReviewer("rev-06", 0.45, 0.3),
)
NOISY_REVIEWER = "rev-06"
REVIEWER_IDS = np.array([r.reviewer_id for r in REVIEWERS], dtype=object)
NOISE = np.array([r.noise for r in REVIEWERS])
SHARE = np.array([r.share for r in REVIEWERS]) / sum(r.share for r in REVIEWERS)


def rubric_outcome(criteria: np.ndarray) -> np.ndarray:
    """Outcome codes (A, B, TIE, BOTH_BAD) of (n, 2, 5) boolean criteria under the ordered rubric."""
    safe = ~criteria[:, :, :2].any(axis=2)
    out = np.full(len(criteria), TIE, dtype=np.int8)
    decided = ~safe[:, 0] & ~safe[:, 1]
    out[decided] = BOTH_BAD
    for differs, a_wins in (
        (safe[:, 0] != safe[:, 1], safe[:, 0]),
        *((criteria[:, 0, f] != criteria[:, 1, f], criteria[:, 0, f]) for f in (2, 3, 4)),
    ):
        now = ~decided & differs
        out[now] = np.where(a_wins[now], A, B)
        decided |= now
    return out


def misread(rng: np.random.Generator, truth: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Criteria as reviewers with per-review `noise` read them (see the module doc)."""
    seen = truth.copy()
    flips = rng.random((len(truth), 2)) < noise[:, None]
    field = rng.integers(0, len(FIELDS), (len(truth), 2))
    rows, cands = np.nonzero(flips)
    seen[rows, cands, field[rows, cands]] ^= True
    return seen


def assign_reviewers(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First reviewer per item, and a different second reviewer or -1 (no duplicate)."""
    first = rng.choice(len(REVIEWERS), size=n, p=SHARE)
    second = rng.choice(len(REVIEWERS), size=n, p=SHARE)
    clash = second == first
    while clash.any():
        second[clash] = rng.choice(len(REVIEWERS), size=int(clash.sum()), p=SHARE)
        clash = second == first
    duplicate = rng.random(n) < SECOND_REVIEW_RATE
    return first, np.where(duplicate, second, -1)


def stated_choice(rng: np.random.Generator, seen: np.ndarray, derived: np.ndarray) -> np.ndarray:
    """The choice a reviewer writes down: the derived outcome, or now and then a contradiction."""
    choice = derived.copy()
    contradict = np.flatnonzero(rng.random(len(derived)) < CONTRADICTION_RATE)
    unsafe = seen[:, :, :2].any(axis=2)
    other = rng.integers(1, 4, len(derived))
    for i in contradict:
        if derived[i] == A and unsafe[i, 1]:
            choice[i] = B
        elif derived[i] == B and unsafe[i, 0]:
            choice[i] = A
        else:
            choice[i] = (derived[i] + other[i]) % 4
    return choice


def judge_choices(rng: np.random.Generator, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(original, swapped) judge choices as shown, codes A/B/TIE, for true outcome codes."""
    n = len(truth)
    opinion = truth.copy()
    wrong = rng.random(n) > JUDGE_ACCURACY
    ab = (truth == A) | (truth == B)
    opinion[ab & wrong] = 1 - truth[ab & wrong]
    coin = rng.integers(0, 2, n).astype(np.int8)
    tie_keeps = rng.random(n) < 0.7
    opinion[truth == TIE] = np.where(tie_keeps[truth == TIE], TIE, coin[truth == TIE])
    both_bad = truth == BOTH_BAD
    opinion[both_bad] = np.where(rng.random(int(both_bad.sum())) < 0.5, TIE, coin[both_bad])
    swapped_opinion = np.where(opinion == TIE, TIE, 1 - opinion).astype(np.int8)
    original = np.where(rng.random(n) < JUDGE_POSITION_BIAS, A, opinion).astype(np.int8)
    swapped = np.where(rng.random(n) < JUDGE_POSITION_BIAS, A, swapped_opinion).astype(np.int8)
    return original, swapped
