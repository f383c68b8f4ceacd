"""The round trip through a real Label Studio server on the bundled sample (`data/`), with no
glue: the pipeline's round is
pushed, two users annotate through the API, the annotations are pulled (raw JSON by the CLI,
JSON_MIN by the labelstudio_sync Dagster job), and the next run releases rows made from them.

What each user answers comes from the generator's simulated reviewers (synth.review_simulator),
so agreement has something real to measure; their JSONL files are deleted before the pull, so
every review the pipeline sees came out of Label Studio.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from feedback_pipeline.cli import main as cli_main
from feedback_pipeline.cli import run_pipeline
from feedback_pipeline.core.labelstudio_api import find_projects
from feedback_pipeline.core.rubric import CRITERIA_FIELDS
from feedback_pipeline.storage import Storage
from feedback_pipeline.synth.review_simulator import answer_exported_tasks

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

BUNDLED = Path(__file__).resolve().parents[2] / "data"
DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]
PULL_DAY = "2026-05-04"  # the day the reviewers' work is pulled: no traces landed on it
PREFIX = "fp-roundtrip"


def simulated_answers(root: Path) -> list[dict]:
    """What the reviewers would say to each exported task; their files are then removed, and
    so are the generator's deliberately broken review lines: only Label Studio lands reviews."""
    for day in DAYS:
        answer_exported_tasks(root, day)
    answers = []
    for path in sorted((root / "landing" / "reviews").glob("*/*.jsonl")):
        if path.name.startswith("round-"):
            answers += [json.loads(line) for line in path.read_text().splitlines() if line]
        path.unlink()
    return answers


def annotation_result(review: dict, data: dict) -> list[dict]:
    """A simulated review as a Label Studio annotation result, in the shipped configs' controls."""
    def choices(name: str, to: str, values: list[str]) -> dict:
        return {"from_name": name, "to_name": to, "type": "choices",
                "value": {"choices": values}}

    out = []
    if review.get("reason"):
        to = "candidate_a" if review["task"] == "pointwise" else "prompt"
        out.append({"from_name": "reason", "to_name": to, "type": "textarea",
                    "value": {"text": [review["reason"]]}})
    if review["task"] == "pairwise":
        for side in ("a", "b"):
            marks = review["criteria"][data[f"candidate_{side}_id"]]
            out.append(choices(f"{side}_marks", f"candidate_{side}",
                               [f for f in CRITERIA_FIELDS if marks.get(f)]))
        if review.get("choice"):
            out.append(choices("choice", "prompt", [review["choice"]]))
    elif review["task"] == "pointwise":
        if review.get("label"):
            out.append(choices("label", "candidate_a", [review["label"]]))
        if review.get("score") is not None:
            out.append({"from_name": "score", "to_name": "candidate_a", "type": "rating",
                        "value": {"rating": review["score"]}})
    else:
        out.append({"from_name": "answer", "to_name": "prompt", "type": "textarea",
                    "value": {"text": [review["answer"]]}})
    return out


def annotate(server, answers: list[dict]) -> int:
    """Each exported item's first two simulated reviews, posted by two Label Studio users."""
    admin = server.client()
    users = [admin, server.create_annotator("second-reviewer").client]
    projects = find_projects(admin, PREFIX)
    tasks = {}
    for pid in projects.values():
        for task in admin.tasks.list(project=pid, include="id,data"):
            tasks[task.data["task_id"]] = (task.id, task.data)
    by_item = defaultdict(list)
    for review in answers:
        by_item[f"{review['trace_id']}:{review['task']}"].append(review)
    posted = 0
    for task_id, reviews in sorted(by_item.items()):
        if task_id not in tasks:
            continue
        ls_id, data = tasks[task_id]
        for user, review in zip(users, reviews[:2], strict=False):
            user.annotations.create(ls_id, result=annotation_result(review, data),
                                    lead_time=float(review.get("review_seconds") or 30.0))
            posted += 1
    return posted


@pytest.fixture(scope="module")
def exported_round(label_studio_server, tmp_path_factory, monkeypatch_module):
    """The bundled sample as a clean checkout has it (config and landing files, no simulated
    reviews), run once (the rounds exported, nothing reviewed yet), pushed to the server and
    annotated by two users."""
    root = tmp_path_factory.mktemp("ls-roundtrip") / "data"
    for part in ("config", "landing"):
        shutil.copytree(BUNDLED / part, root / part,
                        ignore=shutil.ignore_patterns("round-*.jsonl"))
    assert sorted(p.name for p in (root / "landing" / "traces").iterdir()) == DAYS
    run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    answers = simulated_answers(root)
    monkeypatch_module.setenv("LABEL_STUDIO_API_KEY", label_studio_server.admin_token)
    monkeypatch_module.setenv("LABEL_STUDIO_URL", label_studio_server.url)
    common = ["--title-prefix", PREFIX, "--data-root", str(root)]
    assert cli_main(["labelstudio", "push", *common]) == 0
    assert cli_main(["labelstudio", "push", *common]) == 0  # a second push adds nothing
    posted = annotate(label_studio_server, answers)
    assert posted > 40
    return root, posted


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def assert_released_from_label_studio(root: Path, outcome) -> None:
    storage = Storage(root)
    assert outcome.error is None, outcome.error
    assert outcome.reasons == [], outcome.gates
    assert outcome.promoted
    assert outcome.gates["agreement_gate"]["value"] is not None
    release = root / "releases" / outcome.dataset_version
    released = pq.read_table(release / "preference_pairs.parquet").to_pylist()
    assert released and all(p["reviewer_ids"].startswith("rvw-") for p in released)
    accepted = [p for d in DAYS
                for p in storage.read_table("warehouse", "preference_pairs", d).to_pylist()]
    assert {p["trace_id"] for p in released} == {p["trace_id"] for p in accepted}
    assert all(r.startswith("ls-") for p in accepted for r in p["review_ids"].split(","))
    demos = [row for d in DAYS
             for row in storage.read_table("warehouse", "demonstrations", d).to_pylist()]
    assert any(row["source"] == "reviewer_answer" for row in demos)
    for day in DAYS:
        quarantine = storage.read_table("restricted", "review_quarantine", day)
        assert quarantine.num_rows == 0, quarantine.column("reason").to_pylist()
    assert outcome.quarantine["reviews"]["quarantined"] == 0
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["agreement_report"]["value"] is not None


def test_push_annotate_pull_run_release_with_the_cli(exported_round, tmp_path, monkeypatch):
    source, posted = exported_round
    root = tmp_path / "data"
    shutil.copytree(source, root)
    assert cli_main(["labelstudio", "pull", "--title-prefix", PREFIX, "--data-root", str(root),
                     "--review-day", PULL_DAY]) == 0
    pulled = list((root / "landing" / "reviews" / PULL_DAY).glob("labelstudio-*.json"))
    assert pulled
    assert cli_main(["labelstudio", "pull", "--title-prefix", PREFIX, "--data-root", str(root),
                     "--review-day", PULL_DAY]) == 0
    assert sorted(pulled) == sorted((root / "landing" / "reviews" / PULL_DAY).glob("*.json"))
    text = "".join(p.read_text() for p in pulled)
    assert "second-reviewer@feedback-pipeline.test" in text  # the annotator, by email

    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert_released_from_label_studio(root, outcome)
    labels = sum(Storage(root).read_table("warehouse", "reviewed_labels", d).num_rows
                 for d in DAYS)
    assert labels == posted


def test_the_labelstudio_sync_job_pulls_json_min_for_the_same_release(exported_round, tmp_path,
                                                                      label_studio_server):
    from feedback_pipeline.definitions import build_definitions

    source, posted = exported_round
    root = tmp_path / "data"
    shutil.copytree(source, root)
    defs = build_definitions(str(root))
    instance = dg.DagsterInstance.ephemeral()
    result = defs.get_job_def("labelstudio_sync").execute_in_process(
        instance=instance,
        run_config={"ops": {name: {"config": {"title_prefix": PREFIX,
                                              "export_format": "JSON_MIN"}}
                            for name in ("push_to_label_studio", "pull_from_label_studio")}})
    assert result.success
    from feedback_pipeline.core.labelstudio import exported_task_paths, load_import_tasks

    client = label_studio_server.client()
    on_server = sum(len(list(client.tasks.list(project=pid, include="id")))
                    for pid in find_projects(client, PREFIX).values())
    assert on_server == len(load_import_tasks(exported_task_paths(root / "exports"))), \
        "the job's push imported nothing twice"
    rows = [row for path in (root / "landing" / "reviews").glob("*/labelstudio-*.json")
            for row in json.loads(path.read_text())]
    assert len(rows) == posted and all("annotation_id" in row for row in rows)  # JSON_MIN
    outcome = run_pipeline(root, instance=dg.DagsterInstance.ephemeral())
    assert_released_from_label_studio(root, outcome)
