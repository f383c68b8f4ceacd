"""The synthetic data root matches the contract and carries the signals the stages must find."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from feedback_pipeline.core.agreement import agreement_report
from feedback_pipeline.core.contract import parse_trace_lines, read_lines
from feedback_pipeline.core.judge import map_back
from feedback_pipeline.core.judge_input import parse_judge_lines
from feedback_pipeline.core.review import parse_review_lines
from feedback_pipeline.core.routing import DESTINATIONS, route
from feedback_pipeline.settings import (
    load_deny_terms,
    load_frozen_set,
    load_gold,
    load_policy,
    load_rubric,
)
from feedback_pipeline.storage import Storage
from feedback_pipeline.synth.generator import generate, planted_values
from feedback_pipeline.synth.reviewers import NOISY_REVIEWER

DAYS = ["2026-05-01", "2026-05-02"]
SEED_IDS = ("attack-014", "handoff-099", "screen-reader-007", "handoff-102", "leak-008")
PLANTED_REASONS = ("not valid JSON", "trace_id is required", "has no UTC offset",
                   "not the landing folder's day")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, days=len(DAYS), traces_per_day=150, seed=5, start=date.fromisoformat(DAYS[0]))
    return out


@pytest.fixture(scope="module")
def parsed(root: Path) -> dict[str, dict]:
    """Per day: valid trace rows, quarantined trace lines, reviews and judge rows."""
    rubric_versions = {"code-review-rubric-v4"}
    out = {}
    for day in DAYS:
        seen: set[str] = set()
        rows, quarantine = [], []
        for path in sorted((root / "landing" / "traces" / day).iterdir()):
            lines = parse_trace_lines(read_lines(path), path.name, day, seen)
            rows += lines.rows
            quarantine += lines.quarantine
        reviews = parse_review_lines(
            read_lines(root / "landing" / "reviews" / day / "reviews-000.jsonl"), "r",
            rubric_versions)
        judge = parse_judge_lines(
            read_lines(root / "landing" / "judge" / day / "judge-000.jsonl"), "j")
        assert not reviews.quarantine and not judge.quarantine
        out[day] = {"traces": pd.DataFrame(rows), "quarantine": quarantine,
                    "reviews": pd.DataFrame(reviews.rows), "judge": pd.DataFrame(judge.rows)}
    return out


@pytest.fixture(scope="module")
def outcomes(root: Path, parsed: dict[str, dict]) -> pd.DataFrame:
    """Every pairwise review of a trainable trace with its rubric-derived outcome."""
    rubric = load_rubric(Storage(root), "code-review-rubric-v4")
    frozen = set(load_frozen_set(Storage(root), "code-review-eval-v5").ids)
    frames = []
    for day in DAYS:
        traces = parsed[day]["traces"].set_index("trace_id")
        pairwise = parsed[day]["reviews"].query("task == 'pairwise'")
        pairwise = pairwise[pairwise["trace_id"].isin(traces.index)
                            & ~pairwise["trace_id"].isin(frozen)].copy()
        derived = []
        for tid, criteria_json in zip(pairwise["trace_id"], pairwise["criteria_json"],
                                      strict=True):
            a, b = (c["candidate_id"] for c in traces.at[tid, "candidates"][:2])
            criteria = json.loads(criteria_json)
            derived.append(rubric.outcome(criteria[a], criteria[b])[0])
        pairwise["label"] = derived
        pairwise["slice"] = traces.loc[pairwise["trace_id"], "slice"].to_numpy()
        frames.append(pairwise)
    return pd.concat(frames, ignore_index=True)


def test_layout_and_config_follow_the_contract(root: Path) -> None:
    assert (root / "landing" / "traces" / DAYS[0] / "traces-000.jsonl").is_file()
    assert (root / "landing" / "traces" / DAYS[1] / "traces-000.jsonl.gz").is_file()
    for day in DAYS:
        assert (root / "landing" / "reviews" / day / "reviews-000.jsonl").is_file()
        assert (root / "landing" / "judge" / day / "judge-000.jsonl").is_file()
    storage = Storage(root)
    policy = load_policy(storage)
    assert (policy.kappa_gate, policy.judge_agreement_gate, policy.dataset_name) == (
        0.65, 0.9, "code-review-feedback")
    assert not policy.extra
    rubric = load_rubric(storage, policy.rubric_version)
    assert rubric.veto_fields == ("unauthorized_command", "exposes_private_note")
    assert "Safety and authorization" in rubric.policy_text
    assert set(SEED_IDS[:3]) <= set(load_frozen_set(storage, policy.frozen_eval_set).ids)
    gold = load_gold(storage, policy.reviewer_training_set)
    assert 10 <= len(gold) <= 24 and {g["label"] for g in gold} <= {"A", "B", "TIE", "BOTH_BAD"}
    assert "Zoë Müller" in load_deny_terms(storage)


def test_every_line_parses_except_the_planted_bad_ones(root: Path, parsed: dict) -> None:
    for day in DAYS:
        quarantine = parsed[day]["quarantine"]
        assert len(quarantine) == 4
        for reason in PLANTED_REASONS:
            assert sum(reason in q["reason"] for q in quarantine) == 1, reason
        assert len(parsed[day]["traces"]) == 150
    ids = pd.concat([parsed[d]["traces"]["trace_id"] for d in DAYS])
    assert ids.is_unique


def test_traces_carry_offsets_identifiers_and_unknown_fields(root: Path) -> None:
    raw = (root / "landing" / "traces" / DAYS[0] / "traces-000.jsonl").read_text("utf-8")
    raw += gzip.decompress(
        (root / "landing" / "traces" / DAYS[1] / "traces-000.jsonl.gz").read_bytes()
    ).decode("utf-8")
    objs = []
    for line in raw.splitlines():
        try:
            objs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    stamps = [o["created_at"] for o in objs if "created_at" in o]
    assert {s[-6:] for s in stamps} >= {"+02:00", "-05:00"} and any(s.endswith("Z")
                                                                     for s in stamps)
    assert any("client" in o and "user_email" in o["client"] for o in objs)
    counts = Counter(len(o.get("candidates", [])) for o in objs)
    assert set(counts) == {0, 1, 2}
    for pattern in ("ENG-", "@example", "ghp_", "AKIA", "sk-", "postgresql://svc_review:",
                    "Rahul Verma", "commit ", "v1.2.3", "HTTP 404"):
        assert pattern in raw, pattern


def test_seed_traces_are_on_the_first_day_as_the_seed_routes_them(parsed: dict) -> None:
    first = parsed[DAYS[0]]["traces"].set_index("trace_id")
    assert set(SEED_IDS) <= set(first.index)
    assert first.at["attack-014", "reserved_for_evaluation"]
    assert first.at["attack-014", "unsafe_effect"]
    assert first.at["attack-014", "slice"] == "prompt-injection"
    assert first.at["handoff-099", "reserved_for_evaluation"]
    assert first.at["screen-reader-007", "reserved_for_evaluation"]
    handoff = first.loc["handoff-102"]
    assert len(handoff["candidates"]) == 2 and handoff["approved_answer"]
    assert not handoff["reserved_for_evaluation"] and not handoff["unsafe_effect"]
    assert first.at["leak-008", "unsafe_effect"]
    routes = route(first.reset_index().loc[lambda f: f["trace_id"].isin(SEED_IDS)])
    by_id = routes.groupby("trace_id")["destination"].apply(sorted).to_dict()
    assert by_id["attack-014"] == ["FROZEN_EVALUATION", "INCIDENT_REVIEW"]
    assert by_id["handoff-102"] == ["PREFERENCE_QUEUE"]
    assert by_id["leak-008"] == ["INCIDENT_REVIEW"]


def test_every_routing_queue_is_filled_every_day(root: Path, parsed: dict) -> None:
    frozen = load_frozen_set(Storage(root), "code-review-eval-v5").ids
    listed_only = []
    for day in DAYS:
        traces = parsed[day]["traces"]
        routes = route(traces, frozen)
        assert set(routes["destination"]) == set(DESTINATIONS), day
        reserved = set(traces.loc[traces["reserved_for_evaluation"], "trace_id"])
        assert reserved <= set(frozen)
        listed_only += [t for t in traces["trace_id"] if t in frozen and t not in reserved]
    assert listed_only, "the frozen set must list some ids whose trace says reserved false"


def test_reviews_include_cases_the_pipeline_must_quarantine(root: Path, parsed: dict) -> None:
    frozen = set(load_frozen_set(Storage(root), "code-review-eval-v5").ids)
    for day in DAYS:
        reviews, traces = parsed[day]["reviews"], parsed[day]["traces"]
        assert (~reviews["trace_id"].isin(traces["trace_id"])).sum() == 1
        assert reviews["trace_id"].isin(frozen).sum() == 1
        assert set(reviews["task"]) == {"pairwise", "pointwise", "demonstration"}
        assert reviews["review_id"].is_unique
        assert not reviews["reviewer_id"].str.contains("@").any()


def test_duplicate_review_kappa_clears_the_gate(outcomes: pd.DataFrame) -> None:
    firsts = outcomes.groupby("trace_id").filter(lambda g: len(g) >= 2).groupby("trace_id")
    first = firsts.nth(0).set_index("trace_id")["label"]
    second = firsts.nth(1).set_index("trace_id")["label"]
    assert len(first) >= 40
    kappa = cohen_kappa_score(first, second.loc[first.index])
    assert kappa > 0.65
    assert set(outcomes["label"]) == {"A", "B", "TIE", "BOTH_BAD"}


def test_some_stated_choices_contradict_the_rubric(outcomes: pd.DataFrame) -> None:
    conflicts = outcomes[outcomes["choice"] != outcomes["label"]]
    assert 0 < len(conflicts) < 0.1 * len(outcomes)


def test_the_noisy_reviewer_misses_gold_and_is_flagged(root: Path,
                                                       outcomes: pd.DataFrame) -> None:
    gold = pd.DataFrame(load_gold(Storage(root), "code-reviewer-gold-v3"))
    on_gold = outcomes.merge(gold[["trace_id", "label"]], on="trace_id", suffixes=("", "_gold"))
    miss = (on_gold["label"] != on_gold["label_gold"]).groupby(on_gold["reviewer_id"]).mean()
    assert set(miss.index) == {f"rev-0{i}" for i in range(1, 7)}
    assert miss.idxmax() == NOISY_REVIEWER
    assert miss[NOISY_REVIEWER] > 2 * miss.drop(NOISY_REVIEWER).max()
    report = agreement_report(outcomes, gold=gold, bootstrap=0)
    flagged = report.by_reviewer.loc[report.by_reviewer["flagged"], "reviewer_id"].tolist()
    assert flagged == [NOISY_REVIEWER]


def test_the_judge_is_position_biased(parsed: dict) -> None:
    judge = pd.concat([parsed[d]["judge"] for d in DAYS], ignore_index=True)
    assert set(judge["judge_id"]) == {"judge-llm-v1"}
    mapped = judge.assign(mapped=[map_back(c, o) for c, o in zip(judge["choice"], judge["order"],
                                                                  strict=True)])
    both = mapped.pivot(index="trace_id", columns="order", values="mapped")
    flips = (both["original"] != both["swapped"]).sum()
    assert 0 < flips < 0.5 * len(both)
    assert (judge["choice"] == "A").mean() > (judge["choice"] == "B").mean()


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    args = {"days": 2, "traces_per_day": 30, "start": date(2026, 5, 1)}
    first = generate(tmp_path / "a", seed=9, **args)
    generate(tmp_path / "b", seed=9, **args)
    generate(tmp_path / "c", seed=10, **args)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file()}

    assert files(tmp_path / "a") == files(tmp_path / "b")
    other = files(tmp_path / "c")
    assert other.keys() == files(tmp_path / "a").keys()
    assert other != files(tmp_path / "a")
    assert first.traces == 60 and first.bad_lines == 8


def test_planted_values_are_in_the_traces_and_only_there(tmp_path: Path) -> None:
    out = tmp_path / "data"
    summary = generate(out, days=1, traces_per_day=40, seed=3, write_config=True)
    planted = planted_values(out)
    assert summary.planted_identifiers >= len(planted.all()) > 0
    for kind in ("email", "engineer_id", "commit", "sha", "token", "connection_url", "name"):
        assert planted.by_kind[kind], kind
    traces = (out / "landing" / "traces" / "2026-05-01" / "traces-000.jsonl").read_text("utf-8")
    assert all(value in traces for value in planted.all())
    config = "".join(p.read_text("utf-8") for p in (out / "config").rglob("*") if p.is_file())
    leaked = [v for v in planted.all() if v in config and v not in planted.by_kind["name"]]
    assert leaked == []
    assert not any(v in ("v1.2.3", "5432", "404") for v in planted.all())


def test_switches_and_limits(tmp_path: Path) -> None:
    summary = generate(tmp_path / "clean", days=1, traces_per_day=25, bad_lines=False,
                       write_config=False)
    assert summary.bad_lines == 0 and summary.traces == 25
    assert not (tmp_path / "clean" / "config").exists()
    lines = list(read_lines(tmp_path / "clean" / "landing" / "traces" / "2026-05-01"
                            / "traces-000.jsonl"))
    assert not parse_trace_lines(lines, "t", "2026-05-01").quarantine
    with pytest.raises(ValueError, match="traces_per_day"):
        generate(tmp_path / "tiny", traces_per_day=5)
