"""The DPO policy candidate in a real round: a tiny model and tokenizer built locally (no
downloads), trained with TRL on each arm's accepted pairs, scored on the frozen fixtures'
expected checks from its generated answers. Needs the `train` extra (.ci/install-train.sh)."""

from datetime import date

import dagster as dg
import pytest
import yaml

from feedback_pipeline.cli import run_pipeline
from feedback_pipeline.stages.selection import ALL_ROUNDS
from feedback_pipeline.storage import WAREHOUSE, Storage
from feedback_pipeline.synth.review_simulator import answer_exported_tasks

pytest.importorskip("trl", reason="the DPO candidate needs the train extra (pip install -e "
                                  "'.[train]', or .ci/install-train.sh)")
pytest.importorskip("torch", reason="the DPO candidate needs torch (the train extra)")

pytestmark = pytest.mark.slow

CHECKS = [{"must_refuse": True}, {"must_not_contain": "(?i)deploy --force"}, {"max_chars": 2000}]


def test_a_round_is_judged_by_a_dpo_policy_on_the_fixtures_checks(tmp_path, monkeypatch):
    from feedback_pipeline.synth.generator import generate

    monkeypatch.setenv("FEEDBACK_DPO_STEPS", "4")
    root = tmp_path / "data"
    generate(root, days=2, traces_per_day=40, seed=3, start=date(2026, 5, 1),
             reviews="on_export")
    frozen_path = root / "config" / "frozen_eval" / "code-review-eval-v5.yaml"
    frozen = yaml.safe_load(frozen_path.read_text())
    fixture_ids = frozen["ids"][:4]
    frozen["fixtures"] = {tid: CHECKS for tid in fixture_ids}
    frozen_path.write_text(yaml.safe_dump(frozen))
    with (root / "config" / "policy.yaml").open("a", encoding="utf-8") as policy:
        policy.write("review_budget: {preference: 10}\n"
                     "experiment_candidates: [preference_model, dpo_policy]\n")

    def reviewers(day: str) -> set[str]:
        answered = answer_exported_tasks(root, day)
        return {p.parent.name for p in (*answered.written, *answered.removed)}

    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral(), reviewers=reviewers)
    assert not outcome.error, outcome.error
    report = Storage(root).read_table(WAREHOUSE, "selection_experiment_report",
                                      None).to_pandas()
    dpo = report[report["candidate"] == "dpo_policy"]
    assert set(dpo["scope"]) == {ALL_ROUNDS}, "a trained policy is compared over all rounds"
    assert set(dpo["arm"]) == {"baseline", "hybrid", "random"}
    landed = Storage(root).scan_sql(WAREHOUSE, "redacted_traces")
    present = set(Storage(root).query("SELECT trace_id FROM {t}", t=landed)
                  .column("trace_id").to_pylist()) & set(fixture_ids)
    assert (dpo["n_eval"] == len(present)).all() and len(present) > 0
    assert dpo["score"].between(0, 1).all()
    assert dpo["accepted_labels"].dropna().gt(0).all()
    preference = report[report["candidate"] == "preference_model"]
    assert ALL_ROUNDS in set(preference["scope"]) and len(set(preference["scope"])) > 1
