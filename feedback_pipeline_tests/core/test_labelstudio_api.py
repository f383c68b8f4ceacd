"""core.labelstudio_api and the `labelstudio` commands against a real Label Studio server.

Each test keeps to its own projects (a unique title prefix), so they share one server. Two
users annotate: the admin with its legacy token and an annotator who signed up through the
invite link, with a personal access token; annotation results use the control names, targets
and types of the shipped labeling configs.
"""

from __future__ import annotations

import argparse
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from feedback_pipeline.core.labelstudio import (
    LABEL_CONFIGS,
    instruction_html,
    labeling_config,
    parse_label_studio_export,
    to_import_tasks,
)
from feedback_pipeline.core.labelstudio_api import (
    STATE_FILE,
    LabelStudioError,
    connect,
    ensure_projects,
    find_projects,
    project_title,
    pull_annotations,
    push_tasks,
)
from feedback_pipeline.core.tasks import TASK_COLUMNS, shared_text_json
from feedback_pipeline.labelstudio_commands import add_labelstudio_parser

pytestmark = pytest.mark.labelstudio

RUBRIC = "code-review-rubric-v4"
KNOWN = {RUBRIC}
DAY = "2026-05-03"
POLICY = ("Judge each answer of the code-review assistant in this order. 1. Safety and "
          "authorization ... Equal on every level: TIE.")


def prefix() -> str:
    return f"fp-test-{uuid.uuid4().hex[:8]}"


def task_row(trace_id: str, task: str, **extra: str) -> dict[str, str]:
    row = {c: "" for c in TASK_COLUMNS}
    row.update(task_id=f"{trace_id}:{task}", trace_id=trace_id, trace_day="2026-05-02",
               round_id=f"round-{DAY}", arm="random" if task == "pairwise" else "", task=task,
               queue={"pairwise": "PREFERENCE_QUEUE", "pointwise": "NEEDS_TRIAGE",
                      "demonstration": "DEMONSTRATION_QUEUE"}.get(task, "INCIDENT_REVIEW"),
               slice="routine-review",
               prompt=f"Please review the diff in services/ledger/reconcile.go ({trace_id}). "
                      "Requested by <NAME_1>.",
               context="Repository policy: every change needs a test and a changelog line.",
               candidate_a_id=f"{trace_id}-c1",
               candidate_a="The retry on HTTP 500 hides the failing test_reconcile_totals.",
               rubric_version=RUBRIC, policy_text=POLICY, redaction_version="redact-v3")
    if task == "pairwise":
        row.update(candidate_b_id=f"{trace_id}-c2",
                   candidate_b="Looks fine; per the private note <NAME_1> leaked a key.")
    if task == "demonstration":
        row.update(candidate_a_id="", candidate_a="",
                   approved_answer="test_reconcile_totals fails because the fixture moved.")
    row.update(extra)
    return row


def review_tasks() -> list[dict[str, Any]]:
    """Import objects exactly as the pipeline writes them (to_import_tasks), plus a task of a
    type without a project and one without a task_id."""
    rows = ([task_row(f"routine-{n:03d}", "pairwise") for n in range(1, 4)]
            + [task_row(f"triage-{n:03d}", "pointwise") for n in range(1, 3)]
            + [task_row(f"fixture-{n:03d}", "demonstration") for n in range(1, 3)])
    tasks = to_import_tasks(pd.DataFrame(rows, columns=TASK_COLUMNS))
    tasks.append({"data": {**tasks[0]["data"], "task_id": "retired-001:retired-kind",
                           "task": "retired-kind"}})
    tasks.append({"data": {"task": "pairwise", "trace_id": "no-task-id"}})
    return tasks


EXPECTED = {"pairwise": 3, "pointwise": 2, "demonstration": 2}


def control(task: str, name: str) -> dict[str, str]:
    """from_name/to_name/type of a control, read from the shipped labeling config."""
    for element in ET.fromstring(labeling_config(task)).iter():
        if element.get("name") == name and element.get("toName"):
            return {"from_name": name, "to_name": element.get("toName"),
                    "type": element.tag.lower()}
    raise AssertionError(f"{task}.xml has no control {name!r}")


def result(task: str, **values: Any) -> list[dict[str, Any]]:
    """An annotation result: choices given as lists, a rating as int, text as str."""
    out = []
    for name, value in values.items():
        spec = control(task, name)
        kind = {"choices": "choices", "rating": "rating", "textarea": "text"}[spec["type"]]
        if kind == "text":
            value = [value]
        out.append({**spec, "value": {kind: value}})
    return out


def pairwise(choice: str, a_marks: list[str], b_marks: list[str], reason: str = ""):
    values = {"choice": [choice], "a_marks": a_marks, "b_marks": b_marks}
    if reason:
        values["reason"] = reason
    return result("pairwise", **values)


def server_tasks(client, project_id: int) -> dict[str, int]:
    """data.task_id -> Label Studio task id of every task in a project."""
    return {t.data["task_id"]: t.id for t in client.tasks.list(project=project_id,
                                                                 include="id,data")}


def parse_files(root: Path, files: dict[str, str]) -> dict[str, dict]:
    """review_id -> review row, over the files a pull wrote."""
    reviews = {}
    for name in files.values():
        parsed = parse_label_studio_export(json.loads((root / name).read_text()), name, KNOWN)
        assert parsed.quarantine == []
        for row in parsed.rows:
            assert row["review_id"] not in reviews
            reviews[row["review_id"]] = row
    return reviews


def landed_files(root: Path) -> list[Path]:
    return sorted((root / DAY).glob("*.json")) if (root / DAY).is_dir() else []


# ---- connect --------------------------------------------------------------------------------
def test_connect_takes_both_token_kinds_and_refuses_bad_ones(label_studio_server, monkeypatch):
    legacy = connect(label_studio_server.url, label_studio_server.admin_token)
    personal = connect(label_studio_server.url + "/",
                       label_studio_server.personal_access_token())
    assert legacy.users.whoami().email == personal.users.whoami().email \
        == label_studio_server.admin_email
    annotator = label_studio_server.create_annotator(token_kind="legacy")
    assert annotator.client.users.whoami().id == annotator.user_id

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio_server.admin_token)
    assert connect(label_studio_server.url).users.whoami().id == legacy.users.whoami().id
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_API_KEY"):
        connect(label_studio_server.url)
    with pytest.raises(LabelStudioError, match="refused.*401"):
        connect(label_studio_server.url, "0" * 40)
    with pytest.raises(LabelStudioError, match="cannot reach"):
        connect("http://127.0.0.1:9", label_studio_server.admin_token)


# ---- projects -------------------------------------------------------------------------------
def test_ensure_projects_is_idempotent_and_restores_a_changed_config(label_studio_server):
    client = label_studio_server.client()
    title_prefix = prefix()
    # A project whose title merely contains the real title must not be taken for it.
    decoy = client.projects.create(title=project_title("pairwise", title_prefix) + " (old)",
                                   label_config=labeling_config("pairwise"))
    first = ensure_projects(client, title_prefix)
    assert set(first) == set(LABEL_CONFIGS)
    assert sorted(first.created) == sorted(LABEL_CONFIGS) and first.updated == []
    assert decoy.id not in first.values()
    for task, pid in first.items():
        assert client.projects.get(pid).title == f"{title_prefix}: {task}"

    second = ensure_projects(client, title_prefix)
    assert dict(second) == dict(first)
    assert second.created == [] and second.updated == []
    assert dict(find_projects(client, title_prefix)) == dict(first)

    changed = labeling_config("pointwise").replace('<Choice value="unclear"/>', "")
    client.projects.update(first["pointwise"], label_config=changed)
    third = ensure_projects(client, title_prefix)
    assert dict(third) == dict(first)
    assert third.updated == ["pointwise"] and third.created == []
    assert 'value="unclear"' in client.projects.get(first["pointwise"]).label_config
    assert any("labeling config updated" in line for line in third.lines())
    assert ensure_projects(client, title_prefix).updated == []


def test_each_project_shows_the_rubric_policy_as_its_instructions(label_studio_server):
    client = label_studio_server.client()
    title_prefix = prefix()
    first = instruction_html({"rubric_version": "r1", "policy_text": "Safety <first>.\n\nTone."})
    projects = ensure_projects(client, title_prefix, instruction=first)
    for pid in projects.values():
        project = client.projects.get(pid)
        assert project.expert_instruction == first and project.show_instruction
        assert "$policy_text" not in project.label_config  # stated once, not per task
    second = instruction_html({"rubric_version": "r2", "policy_text": "Correctness next."})
    again = ensure_projects(client, title_prefix, instruction=second)
    assert dict(again) == dict(projects) and again.updated == []
    assert {client.projects.get(pid).expert_instruction for pid in again.values()} == {second}
    ensure_projects(client, title_prefix)  # None leaves the instructions alone
    assert {client.projects.get(pid).expert_instruction for pid in again.values()} == {second}


# ---- push -----------------------------------------------------------------------------------
def test_push_imports_each_task_once_and_reports_what_it_could_not_route(label_studio_server):
    client = label_studio_server.client()
    projects = ensure_projects(client, prefix())
    tasks = review_tasks()

    first = push_tasks(client, projects, tasks)
    assert dict(first.imported) == EXPECTED
    assert sum(first.already_present.values()) == 0
    assert dict(first.no_project) == {"retired-kind": 1}
    assert first.invalid == 1

    second = push_tasks(client, projects, tasks + tasks[:2])  # and a repeat within the list
    assert sum(second.imported.values()) == 0
    assert dict(second.already_present) == {**EXPECTED, "pairwise": EXPECTED["pairwise"] + 2}
    assert dict(second.no_project) == {"retired-kind": 1}
    for task, count in EXPECTED.items():
        on_server = server_tasks(client, projects[task])
        assert len(on_server) == count
        assert all(key.endswith(f":{task}") for key in on_server)

    printed = "\n".join(first.lines() + second.lines())
    assert "retired-kind" in printed and "pairwise (project" in printed
    for text in ("reconcile.go", "<NAME_1>", POLICY[:20]):
        assert text not in printed


def test_push_sends_a_calibrated_judges_predictions_as_pre_labels(label_studio_server):
    from feedback_pipeline.core.labelstudio import judge_prediction
    client = label_studio_server.client()
    projects = ensure_projects(client, prefix())
    tasks = [t for t in review_tasks()[:4] if t["data"].get("task") == "pairwise"]
    tasks[0] = {**tasks[0], "predictions": [judge_prediction("B", "judge-v2")]}
    push_tasks(client, projects, tasks)
    on_server = server_tasks(client, projects["pairwise"])
    with_pred = client.tasks.get(on_server[tasks[0]["data"]["task_id"]])
    without = client.tasks.get(on_server[tasks[1]["data"]["task_id"]])
    predictions = [p if isinstance(p, dict) else p.dict() for p in with_pred.predictions or []]
    assert len(predictions) == 1 and predictions[0]["model_version"] == "judge-v2"
    assert predictions[0]["result"][0]["value"]["choices"] == ["B"]
    assert not without.predictions


# ---- pull -----------------------------------------------------------------------------------
@pytest.mark.parametrize("export_format", ["JSON", "JSON_MIN"])
def test_pull_lands_each_annotation_version_once(label_studio_server, tmp_path, export_format):
    admin = label_studio_server.client()
    annotator = label_studio_server.create_annotator()
    assert annotator.token_kind == "personal"
    projects = ensure_projects(admin, prefix())
    push_tasks(admin, projects, review_tasks())
    ids = {task: server_tasks(admin, pid) for task, pid in projects.items()
           if task in EXPECTED}
    pair_1, pair_2 = ids["pairwise"]["routine-001:pairwise"], ids["pairwise"]["routine-002:pairwise"]
    point_1 = ids["pointwise"]["triage-001:pointwise"]
    demo_1 = ids["demonstration"]["fixture-001:demonstration"]

    good = ["technically_correct", "actionable", "clear"]
    by_admin = admin.annotations.create(pair_1, result=pairwise("A", good, ["exposes_private_note"]),
                                        lead_time=12.5)
    by_annotator = annotator.client.annotations.create(
        pair_1, result=pairwise("BOTH_BAD", ["unauthorized_command"], ["exposes_private_note"],
                                "A runs a release script, B leaks a note"), lead_time=31.0)
    skipped = annotator.client.annotations.create(pair_2, result=[], was_cancelled=True,
                                                  lead_time=2.0)
    scored = annotator.client.annotations.create(
        point_1, result=result("pointwise", label=["incorrect"], score=2,
                               reason="cites the wrong test"), lead_time=20.0)
    answered = admin.annotations.create(
        demo_1, result=result("demonstration", answer="Re-register tmp_repo in conftest.py."),
        lead_time=64.0)
    assert by_admin.completed_by != by_annotator.completed_by == annotator.user_id

    root = tmp_path / "landing" / "reviews"
    first = pull_annotations(admin, projects, root, DAY, export_format)
    assert set(first.files) == {"pairwise", "pointwise", "demonstration"}
    assert dict(first.new) == {"pairwise": 2, "pointwise": 1, "demonstration": 1}
    assert sum(first.updated.values()) == 0
    assert first.skipped["pairwise"] == (1 if export_format == "JSON" else None)
    assert [p.name for p in landed_files(root)] == sorted(Path(f).name
                                                          for f in first.files.values())
    for task, name in first.files.items():
        assert name.startswith(f"{DAY}/labelstudio-{task}-") and name.endswith("Z.json")
    assert (root / STATE_FILE).is_file()
    assert not list(root.rglob("*.tmp"))

    payload = json.loads((root / first.files["pairwise"]).read_text())
    if export_format == "JSON":  # Label Studio's raw shape, cut down to the new annotations
        assert {t["id"] for t in payload} == {pair_1}
        assert {a["id"] for a in payload[0]["annotations"]} == {by_admin.id, by_annotator.id}
        assert payload[0]["data"]["task_id"] == "routine-001:pairwise"
        assert all("lead_time" in a for a in payload[0]["annotations"])
    else:  # one row per annotation
        assert {row["annotation_id"] for row in payload} == {by_admin.id, by_annotator.id}
        assert all(row["id"] == pair_1 and "lead_time" in row for row in payload)

    reviews = parse_files(root, first.files)
    assert set(reviews) == {f"ls-{pair_1}-{by_admin.id}", f"ls-{pair_1}-{by_annotator.id}",
                            f"ls-{point_1}-{scored.id}", f"ls-{demo_1}-{answered.id}"}
    assert f"ls-{pair_2}-{skipped.id}" not in reviews
    mine = reviews[f"ls-{pair_1}-{by_admin.id}"]
    theirs = reviews[f"ls-{pair_1}-{by_annotator.id}"]
    assert (mine["choice"], mine["review_seconds"]) == ("A", 12.5)
    assert (theirs["choice"], theirs["review_seconds"]) == ("BOTH_BAD", 31.0)
    assert mine["reviewer_id"] == label_studio_server.admin_email  # not a server-local id
    assert theirs["reviewer_id"] == annotator.email != mine["reviewer_id"]
    assert theirs["reason"] == "A runs a release script, B leaks a note"
    criteria = json.loads(theirs["criteria_json"])
    assert criteria["routine-001-c1"]["unauthorized_command"] is True
    assert criteria["routine-001-c2"]["exposes_private_note"] is True
    assert criteria["routine-001-c2"]["clear"] is False
    assert json.loads(mine["criteria_json"])["routine-001-c1"]["actionable"] is True
    point = reviews[f"ls-{point_1}-{scored.id}"]
    assert (point["label"], point["score"], point["candidate_id"], point["review_seconds"]) \
        == ("incorrect", 2, "triage-001-c1", 20.0)
    demo = reviews[f"ls-{demo_1}-{answered.id}"]
    assert demo["answer"] == "Re-register tmp_repo in conftest.py."
    assert demo["trace_id"] == "fixture-001" and demo["rubric_version"] == RUBRIC

    again = pull_annotations(admin, projects, root, DAY, export_format)
    assert again.files == {} and again.written == 0
    assert dict(again.unchanged) == dict(first.new)
    assert again.skipped["pairwise"] == (0 if export_format == "JSON" else None)
    assert len(landed_files(root)) == len(first.files)

    annotator.client.annotations.update(
        by_annotator.id, result=pairwise("B", ["unauthorized_command"], good), lead_time=45.0)
    third = pull_annotations(admin, projects, root, DAY, export_format)
    assert list(third.files) == ["pairwise"]
    assert dict(third.updated) == {"pairwise": 1} and sum(third.new.values()) == 0
    assert len(landed_files(root)) == len(first.files) + 1
    updated = parse_files(root, third.files)
    assert list(updated) == [f"ls-{pair_1}-{by_annotator.id}"]
    newer = updated[f"ls-{pair_1}-{by_annotator.id}"]
    assert newer["reviewed_at"] > theirs["reviewed_at"]
    assert (newer["choice"], newer["review_seconds"]) == ("B", 45.0)
    assert newer["reviewer_id"] == theirs["reviewer_id"]

    fourth = pull_annotations(admin, projects, root, DAY, export_format)
    assert fourth.files == {}
    printed = "\n".join(first.lines() + third.lines())
    assert "pairwise (project" in printed and first.files["pairwise"] in printed
    for text in ("release script", "tmp_repo", "reconcile.go"):
        assert text not in printed


def test_pull_rejects_a_bad_day_and_format(label_studio_server, tmp_path):
    client = label_studio_server.client()
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        pull_annotations(client, {}, tmp_path, "../../etc")
    with pytest.raises(ValueError, match="export_format"):
        pull_annotations(client, {}, tmp_path, DAY, "CSV")  # type: ignore[arg-type]


# ---- commands -------------------------------------------------------------------------------
def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="feedback-pipeline")
    add_labelstudio_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_commands_set_up_push_and_pull(label_studio_server, tmp_path, monkeypatch, capsys):
    data_root = tmp_path / "data"
    for day, tasks in (("2026-05-02", review_tasks()[:4]), (DAY, review_tasks())):
        folder = data_root / "exports" / "review_tasks" / day
        folder.mkdir(parents=True)
        (folder / "label_studio_tasks.json").write_text(json.dumps(tasks))
        (folder / "rubric.json").write_text(shared_text_json("r1", f"Policy of {day}."))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio_server.admin_token)
    monkeypatch.delenv("FEEDBACK_DEBUG", raising=False)
    common = ["--url", label_studio_server.url, "--title-prefix", prefix()]

    assert run(["labelstudio", "setup", *common]) == 0
    out = capsys.readouterr().out
    assert out.count("(created)") == len(LABEL_CONFIGS)
    assert f"{label_studio_server.url}/projects/" in out

    base = ["--data-root", str(data_root), *common]
    assert run(["labelstudio", "push", *base]) == 0
    out = capsys.readouterr().out
    assert "from 2 file(s)" in out and "pairwise (project" in out and "3 imported" in out
    assert run(["labelstudio", "push", *base, "--day", DAY]) == 0
    assert "0 imported" in capsys.readouterr().out

    client = label_studio_server.client()
    projects = find_projects(client, common[-1])
    newest = max(DAY, "2026-05-02")  # the newest export's policy is what reviewers read
    assert {client.projects.get(pid).expert_instruction for pid in projects.values()} == {
        instruction_html({"rubric_version": "r1", "policy_text": f"Policy of {newest}."})}
    task_id = next(iter(server_tasks(client, projects["pointwise"]).values()))
    client.annotations.create(task_id, result=result("pointwise", label=["ok"], score=5),
                              lead_time=9.0)
    assert run(["labelstudio", "pull", *base, "--review-day", DAY, "--format", "JSON_MIN"]) == 0
    assert "pulled 1 annotation(s) as JSON_MIN" in capsys.readouterr().out
    files = list((data_root / "landing" / "reviews" / DAY).glob("labelstudio-pointwise-*.json"))
    assert len(files) == 1
    assert run(["labelstudio", "pull", *base, "--review-day", DAY]) == 0
    assert "pulled 0 annotation(s)" in capsys.readouterr().out

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0" * 40)
    assert run(["labelstudio", "pull", *base]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "refused" in captured.err
    assert "Traceback" not in captured.err
    assert run(["labelstudio", "setup", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert run(["labelstudio", "push", "--data-root", str(tmp_path / "none"), *common]) == 1
    assert "no label_studio_tasks.json" in capsys.readouterr().err
