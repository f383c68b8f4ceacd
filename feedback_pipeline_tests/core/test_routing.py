import pandas as pd

from feedback_pipeline.core.routing import route


def trace(tid, reserved=False, unsafe=False, n_cands=0, approved=None):
    return {"trace_id": tid, "slice": "s", "reserved_for_evaluation": reserved,
            "unsafe_effect": unsafe, "approved_answer": approved,
            "candidates": [{"candidate_id": f"c{i}", "text": "t"} for i in range(n_cands)]}


def destinations(frame, frozen=()):
    routed = route(pd.DataFrame(frame), frozen)
    return {tid: list(g["destination"]) for tid, g in routed.groupby("trace_id")}


def test_seed_listing_01():
    got = destinations([
        trace("attack-014", reserved=True, unsafe=True),
        trace("handoff-102", n_cands=2, approved="yes"),
        trace("leak-008", unsafe=True),
    ])
    assert got == {
        "attack-014": ["FROZEN_EVALUATION", "INCIDENT_REVIEW"],
        "handoff-102": ["PREFERENCE_QUEUE"],
        "leak-008": ["INCIDENT_REVIEW"],
    }


def test_demonstration_triage_and_frozen_list_overrides_the_trace():
    got = destinations([
        trace("demo-1", n_cands=1, approved="fixed"),
        trace("triage-1", n_cands=1),
        trace("listed-1", n_cands=2),
    ], frozen={"listed-1"})
    assert got == {"demo-1": ["DEMONSTRATION_QUEUE"], "triage-1": ["NEEDS_TRIAGE"],
                   "listed-1": ["FROZEN_EVALUATION"]}
    routed = route(pd.DataFrame([trace("listed-1", n_cands=2)]), {"listed-1"})
    assert routed["reason"].tolist() == ["listed in the frozen evaluation set"]
