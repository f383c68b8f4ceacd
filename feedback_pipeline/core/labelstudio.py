"""Label Studio on both ends: an import file of redacted tasks, and its exports read back.

Export shapes follow Label Studio's documented formats (labelstud.io/guide/export and
/guide/task_format): the raw JSON export is a list of tasks, each with `data` and
`annotations`, an annotation holding `result` items (`from_name`, `to_name`, `type`, `value`)
and `completed_by` (a user id, or an object with `id`/`email`); JSON-MIN is a flat list with one
object per annotation, the data fields beside each control's value and `annotator`.
Both become contract reviews; reviewer identities are pseudonymised on the way in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from feedback_pipeline.core.contract import ContractError, ParsedLines, quarantine_row
from feedback_pipeline.core.review import validate_review
from feedback_pipeline.core.rubric import CRITERIA_FIELDS
from feedback_pipeline.core.tasks import TASK_SCHEMA, import_task_json

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
"""The variable holding the Label Studio token (a personal access token or a legacy one)."""

LABEL_CONFIGS = {"pairwise": "pairwise.xml", "pointwise": "pointwise.xml",
                 "demonstration": "demonstration.xml", "incident": "incident.xml",
                 "adjudication": "adjudication.xml"}
"""One Label Studio project per task type, each with its own labeling configuration."""
TASK_DATA_FIELDS = ("task_id", "trace_id", "trace_day", "round_id", "arm", "task", "queue",
                    "slice", "prompt", "context", "conversation",
                    "candidate_a_id", "candidate_a", "candidate_b_id", "candidate_b",
                    "approved_answer", "rubric_version",
                    "adjudicates", "adjudication_reason", "incident_reason")
"""What a Label Studio task's data holds. The last three describe follow-up work (an item in
adjudication, an open incident); elsewhere they are empty, so every project's configuration
finds each field it shows. The rubric's policy text is not among them: it is the same for
every task of a rubric version, so each project shows it once, as its instructions
(`instruction_html`, from the export folder's `rubric.json`), instead of a million tasks each
carrying it."""


def labeling_config(task: str) -> str:
    """The shipped Label Studio labeling configuration (XML) for a task type."""
    return resources.files("feedback_pipeline.labelstudio").joinpath(LABEL_CONFIGS[task]).read_text()


def to_import_tasks(tasks: pd.DataFrame | pa.Table) -> list[dict[str, Any]]:
    """Label Studio's import format: one {"data": {...}} per task (strings only, no nulls)."""
    if isinstance(tasks, pd.DataFrame):
        tasks = pa.Table.from_pandas(tasks, schema=TASK_SCHEMA, preserve_index=False)
    return [json.loads(item) for item in import_task_json(tasks, TASK_DATA_FIELDS)]


PREDICTION_CONTROL = ("choice", "prompt")
"""(from_name, to_name) of the pairwise configuration's single-choice control (pairwise.xml),
the one a judge's label pre-fills."""


def judge_prediction(choice: str, judge_id: str, score: float | None = None) -> dict[str, Any]:
    """One Label Studio prediction (labelstud.io/guide/predictions: `model_version`, `score`,
    `result` items shaped like an annotation's) choosing `choice` in the pairwise control."""
    from_name, to_name = PREDICTION_CONTROL
    return {"model_version": judge_id, "score": score,
            "result": [{"from_name": from_name, "to_name": to_name, "type": "choices",
                        "value": {"choices": [choice]}}]}


def with_predictions(tasks: list[dict[str, Any]], prelabels: pd.DataFrame | None,
                     calibration_passed: bool) -> tuple[list[dict[str, Any]], int]:
    """Import tasks with a passing judge's labels as `predictions` on pairwise tasks, and how
    many tasks got one. Nothing is added unless `calibration_passed`; `prelabels` holds
    trace_id, judge_id and choice (core.judge.judge_prelabels). A task's own earlier
    predictions from these judges are replaced, so writing twice changes nothing."""
    if not calibration_passed or prelabels is None or prelabels.empty:
        return tasks, 0
    by_trace: dict[str, list[tuple[str, str]]] = {}
    for trace_id, judge_id, choice in prelabels[["trace_id", "judge_id", "choice"]].itertuples(
            index=False):
        by_trace.setdefault(str(trace_id), []).append((str(judge_id), str(choice)))
    out, added = [], 0
    for task in tasks:
        data = task.get("data") or {}
        labels = by_trace.get(str(data.get("trace_id"))) if data.get("task") == "pairwise" else None
        if not labels:
            out.append(task)
            continue
        judges = {judge_id for judge_id, _ in labels}
        kept = [p for p in task.get("predictions") or [] if p.get("model_version") not in judges]
        out.append({**task, "predictions": kept + [judge_prediction(choice, judge_id)
                                                   for judge_id, choice in sorted(labels)]})
        added += 1
    return out, added


def annotator_identity(completed_by: Any) -> str:
    """Label Studio's `completed_by` (id or {id, email}) or JSON-MIN's `annotator`, as text."""
    if isinstance(completed_by, Mapping):
        completed_by = completed_by.get("email") or completed_by.get("id")
    return str(completed_by).strip()


def make_pseudonymiser(key: bytes) -> Callable[[str], str]:
    """Keyed, stable reviewer pseudonyms: the same identity maps to the same `rvw-` id. A day
    has few reviewers and many reviews, so each identity's HMAC is computed once."""
    @functools.lru_cache(maxsize=1 << 16)
    def pseudonym(identity: str) -> str:
        digest = hmac.new(key, identity.strip().lower().encode(), hashlib.sha256)
        return "rvw-" + digest.hexdigest()[:10]
    return pseudonym


def _choices(value: Any) -> list[str]:
    """A control's values as text, from a raw export's value object ({"choices": [...]},
    {"rating": n}, {"text": [...]}) or a JSON-MIN cell, which may itself be a list of such
    objects (a rating control exports `[{"rating": 1}]`)."""
    if isinstance(value, Mapping):
        value = value.get("choices", value.get("rating", value.get("text")))
    if value is None:
        return []
    if isinstance(value, list):
        return [item for v in value for item in (_choices(v) if isinstance(v, Mapping)
                                                 else [str(v)])]
    return [str(value)]


def _score(values: list[str]) -> int | None:
    """A rating as a whole number; anything else is the line's error, not the day's."""
    if not values:
        return None
    try:
        score = float(values[0])
    except ValueError as err:
        raise ContractError("score must be a number from 1 to 5") from err
    if not score.is_integer():
        raise ContractError("score must be a whole number from 1 to 5")
    return int(score)


def _text(value: Any) -> str | None:
    items = value.get("text") if isinstance(value, Mapping) else value
    if isinstance(items, list):
        return "\n".join(str(i) for i in items) or None
    return str(items) if items not in (None, "") else None


def _review_from_controls(data: Mapping[str, Any], controls: Mapping[str, Any],
                          review_id: str, reviewer: str, reviewed_at: Any,
                          lead_time: Any = None) -> dict[str, Any]:
    """A contract review object built from one annotation's control values."""
    task = data.get("task")
    adjudication = task == "adjudication"
    if adjudication:  # a decision on a queued item reads like a review of the item's own task
        task = data.get("adjudicates")
    review: dict[str, Any] = {
        "review_id": review_id, "trace_id": data.get("trace_id"), "reviewer_id": reviewer,
        "rubric_version": data.get("rubric_version"), "task": task,
        "reason": _text(controls.get("reason")),
    }
    if adjudication:
        review["adjudication"] = True
    if reviewed_at:
        review["reviewed_at"] = str(reviewed_at).replace("Z", "+00:00")
    if lead_time is not None:
        review["review_seconds"] = lead_time
    if task == "pairwise":
        criteria = {}
        for side in ("a", "b"):
            marked = set(_choices(controls.get(f"{side}_marks")))
            criteria[data.get(f"candidate_{side}_id")] = {f: f in marked for f in CRITERIA_FIELDS}
        choice = _choices(controls.get("choice"))
        review.update(criteria=criteria, choice=choice[0] if choice else None)
    elif task == "pointwise":
        score = _choices(controls.get("score"))
        label = _choices(controls.get("label"))
        review.update(candidate_id=data.get("candidate_a_id"), score=_score(score),
                      label=label[0] if label else None)
    elif task == "demonstration":
        review["answer"] = _text(controls.get("answer"))
    elif task == "incident":
        resolution = _choices(controls.get("resolution"))
        review["resolution"] = resolution[0] if resolution else None
    return review


def _raw_annotations(task: Mapping[str, Any]):
    for annotation in task.get("annotations") or []:
        if annotation.get("was_cancelled"):
            continue
        controls = {item.get("from_name"): item.get("value")
                    for item in annotation.get("result") or []}
        yield (str(annotation.get("id")), annotation.get("completed_by"), controls,
               annotation.get("updated_at") or annotation.get("created_at"),
               annotation.get("lead_time"))


def parse_label_studio_export(payload: Any, source_file: str, known_rubrics: set[str]) -> ParsedLines:
    """Reviews from a raw-JSON or JSON-MIN export; each unusable annotation is quarantined.

    `reviewer_id` holds the annotator's identity as exported; the caller pseudonymises it.
    """
    parsed = ParsedLines()
    if not isinstance(payload, list):
        parsed.quarantine.append(quarantine_row(
            source_file, 0, "a Label Studio export must be a JSON list of tasks", "", None))
        return parsed
    for position, task in enumerate(payload, start=1):
        if not isinstance(task, Mapping):
            parsed.quarantine.append(quarantine_row(source_file, position,
                                                    "export item is not an object", "", None))
            continue
        if "annotations" in task and isinstance(task.get("data"), Mapping):
            data = task["data"]
            items = [(f"ls-{task.get('id')}-{aid}", who, controls, when, lead)
                     for aid, who, controls, when, lead in _raw_annotations(task)]
        else:
            data = task
            annotation = task.get("annotation_id", task.get("id"))
            items = [(f"ls-{task.get('id')}-{annotation}", task.get("annotator"), task,
                      task.get("updated_at") or task.get("created_at"), task.get("lead_time"))]
        for review_id, who, controls, when, lead in items:
            try:
                if who in (None, ""):
                    raise ContractError("annotation has no annotator (completed_by)")
                row = validate_review(
                    _review_from_controls(data, controls, review_id, annotator_identity(who), when,
                                          lead),
                    known_rubrics)
            except ContractError as err:
                parsed.quarantine.append(quarantine_row(
                    source_file, position, str(err),
                    json.dumps({"review_id": review_id, "trace_id": data.get("trace_id")}),
                    review_id))
                continue
            row["source_file"] = source_file
            row["source_line"] = position
            parsed.rows.append(row)
    return parsed


TASK_EXPORT_FOLDERS = ("review_tasks", "follow_up_tasks")
"""Where the pipeline writes Label Studio import files, one folder per day in each: the
labeling round's tasks, and the open adjudications and incidents resolution leaves."""
IMPORT_FILE = "label_studio_tasks.json"
RUBRIC_FILE = "rubric.json"
"""Beside each export's tasks: the rubric version and policy text they share, once per file."""


def exported_task_paths(exports_dir: Path, day: str | None = None) -> list[Path]:
    """Every Label Studio import file under `exports_dir` (one day's, or every day's), in
    folder and day order."""
    paths = []
    for folder in TASK_EXPORT_FOLDERS:
        base = Path(exports_dir) / folder
        days = [day] if day else (sorted(p.name for p in base.iterdir() if p.is_dir())
                                  if base.is_dir() else [])
        paths += [base / d / IMPORT_FILE for d in days if (base / d / IMPORT_FILE).is_file()]
    return paths


def latest_rubric_text(exports_dir: Path) -> dict[str, str] | None:
    """The newest export folder's `rubric.json` ({"rubric_version", "policy_text"}), the policy
    the projects show reviewers; None before the first export."""
    found = []
    for folder in TASK_EXPORT_FOLDERS:
        base = Path(exports_dir) / folder
        if base.is_dir():
            found += [(p.parent.name, p) for p in base.glob(f"*/{RUBRIC_FILE}")]
    if not found:
        return None
    return json.loads(max(found)[1].read_text(encoding="utf-8"))


def instruction_html(rubric_text: Mapping[str, str]) -> str:
    """A project's instructions (Label Studio's `expert_instruction`, HTML) from a rubric's
    policy text: escaped, paragraphs kept."""
    import html

    paragraphs = [html.escape(p).replace("\n", "<br>")
                  for p in str(rubric_text.get("policy_text", "")).split("\n\n") if p.strip()]
    title = html.escape(str(rubric_text.get("rubric_version", "")))
    return f"<h3>Rubric {title}</h3>" + "".join(f"<p>{p}</p>" for p in paragraphs)


def project_instruction(exports_dir: Path) -> str | None:
    """The instructions every project shows: the newest exported rubric's policy, as HTML;
    None before the first export (the projects' instructions are left as they are)."""
    text = latest_rubric_text(exports_dir)
    return instruction_html(text) if text else None


def load_import_tasks(paths: list[Path]) -> list[dict[str, Any]]:
    """The tasks of these import files, each file a JSON list of {"data": {...}}; a file that is
    not one is a ValueError naming it (it was not written by the pipeline)."""
    tasks: list[dict[str, Any]] = []
    for path in paths:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(payload, list):
            raise ValueError(f"{path} is not a JSON list of Label Studio tasks")
        tasks.extend(payload)
    return tasks
