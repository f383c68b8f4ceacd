"""Label Studio over its API: one project per task type, tasks pushed once, annotations pulled once.

Plain functions on the official SDK (`label-studio-sdk` 2.x, `LabelStudio`) so the CLI, a Dagster
asset or a test can drive a live server without the file hand-off of core.labelstudio. The
pipeline itself still only reads files: `pull_annotations` lands each pull as an ordinary Label
Studio export file in the reviews landing folder, where review intake parses it with
`parse_label_studio_export` like any export downloaded by hand.

Behaviour checked against Label Studio 1.23 (Community) and SDK 2.1:

* Tokens: the SDK takes either kind Label Studio issues. A legacy token (40 hex characters) is
  sent as `Authorization: Token ...`, and only authenticates while the organization has legacy
  tokens enabled (new organizations have them off unless the server started with
  `--enable-legacy-api-token`). A personal access token is a JWT refresh token; the SDK trades
  it for short-lived access tokens at `/api/token/refresh/` and sends `Bearer ...`. An expired
  JWT is refused by the SDK before any request, so `connect` checks both up front.
* Exports: Community serves `GET /api/projects/{id}/export` synchronously. The SDK's
  `exports.as_json` asks for every task (`download_all_tasks=True`); we ask for annotated tasks
  only. Raw JSON carries `completed_by` as a bare user id and `lead_time` per annotation;
  JSON_MIN has one row per annotation (`id` = task id, `annotation_id`, `annotator` = user id,
  `created_at`, `updated_at`, `lead_time`, one key per control) and leaves cancelled
  (skipped) annotations out altogether.
* `lead_time` is whatever the client sent: the labeling UI measures it, an API client must
  send it itself, and without it the review has no `review_seconds`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from feedback_pipeline.core import labelstudio as ls_files
from feedback_pipeline.core.labelstudio import API_KEY_ENV
from feedback_pipeline.core.locks import exclusive_lock

logger = logging.getLogger(__name__)

STATE_FILE = ".labelstudio-pulled.json"
"""Under the reviews root: which annotation versions were already landed, per server."""
CANCELLED = "cancelled@"
"""State prefix of a skipped annotation's version: seen and counted, never landed."""
EXPORT_FORMATS = ("JSON", "JSON_MIN")
ExportFormat = Literal["JSON", "JSON_MIN"]
IMPORT_BATCH = 500
"""Tasks per import request: a round of thousands of tasks stays well under request limits."""
TITLE_MAX = 50  # Label Studio refuses longer project titles (PROJECT_TITLE_MAX_LEN)


class LabelStudioError(RuntimeError):
    """A connection, authentication or API failure, worded as one line for an operator."""


# ---- connection -------------------------------------------------------------------------------
def _detail(err: ApiError) -> str:
    """The server's own reason from an SDK error (its `detail`, else a trimmed body)."""
    body = err.body
    if isinstance(body, Mapping):
        text = body.get("detail") or body.get("validation_errors") or body
    else:
        text = body
    text = " ".join(str(text).split())
    return f"HTTP {err.status_code}: {text[:300]}"


@contextlib.contextmanager
def _api(action: str, url: str = "") -> Iterator[None]:
    """Turn the SDK's and httpx's exceptions into one LabelStudioError naming the action."""
    where = f" at {url}" if url else ""
    try:
        yield
    except ApiError as err:
        if err.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio{where} refused to {action} ({_detail(err)}); "
                                   f"check {API_KEY_ENV}") from err
        raise LabelStudioError(f"Label Studio{where} could not {action} ({_detail(err)})") from err
    except httpx.HTTPError as err:
        raise LabelStudioError(f"cannot reach Label Studio{where} to {action} "
                               f"({type(err).__name__}: {err})") from err
    except ValueError as err:  # a non-JSON answer: not a Label Studio server, or a proxy page
        raise LabelStudioError(f"Label Studio{where} gave an unreadable answer when asked to "
                               f"{action} ({err})") from err


def _base_url(client: LabelStudio) -> str:
    """The server a client talks to (the pull state is kept per server)."""
    wrapper = getattr(client, "_client_wrapper", None)
    return str(wrapper.get_base_url()).rstrip("/") if wrapper is not None else "default"


def connect(url: str, api_key: str | None = None, *, timeout: float = 120.0) -> LabelStudio:
    """A client for `url`, already checked against the server (`whoami`).

    Checking at once turns a wrong URL or a refused token into one clear error before any work,
    instead of a traceback halfway through a push. `api_key` defaults to LABEL_STUDIO_API_KEY
    and may be either token kind: a legacy token, or a personal access token (JWT refresh
    token), which the SDK exchanges for access tokens itself.
    """
    key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
    if not key:
        raise LabelStudioError(f"no Label Studio API key: set {API_KEY_ENV} to a personal access "
                               "token or legacy token (Account & Settings in Label Studio)")
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise LabelStudioError(f"Label Studio URL must start with http:// or https://, "
                               f"got {url!r}")
    with _api("accept the API key", url):
        # An expired personal access token is refused here, before any request.
        client = LabelStudio(base_url=url, api_key=key, timeout=timeout)
    with _api("confirm who the API key belongs to", url):
        user = client.users.whoami()
    logger.info("connected to Label Studio at %s as user %s", url, user.id)
    return client


# ---- projects ---------------------------------------------------------------------------------
def project_title(task: str, title_prefix: str = "feedback-pipeline") -> str:
    """The exact title of a task type's project ("feedback-pipeline: pairwise")."""
    return f"{title_prefix}: {task}"


def _same_config(a: str | None, b: str | None) -> bool:
    """Whether two labeling configs mean the same: Label Studio stores the XML trimmed, so byte
    equality would call every project changed; compare canonical XML (comments and
    whitespace-only text dropped) instead, falling back to trimmed text if either won't parse."""
    a, b = (a or "").strip(), (b or "").strip()
    if a == b:
        return True
    try:
        return ET.canonicalize(a, strip_text=True) == ET.canonicalize(b, strip_text=True)
    except ET.ParseError:
        return False


class ProjectIds(dict[str, int]):
    """Task type -> project id, plus which projects this call created or re-configured."""

    def __init__(self, ids: Mapping[str, int], created: Iterable[str] = (),
                 updated: Iterable[str] = (), url: str = "") -> None:
        super().__init__(ids)
        self.created = list(created)
        self.updated = list(updated)
        self.url = url

    def project_url(self, task: str) -> str:
        return f"{self.url}/projects/{self[task]}/"

    def lines(self) -> list[str]:
        out = []
        for task, pid in self.items():
            state = ("created" if task in self.created else
                     "labeling config updated" if task in self.updated else "unchanged")
            out.append(f"{task}: project {pid} ({state}) {self.project_url(task)}")
        return out


def _find_project(client: LabelStudio, title: str, url: str) -> int | None:
    """The id of the one project titled exactly `title` (the API's title filter matches
    substrings, so the match is checked here), or None; two such projects are an error, since
    tasks must not be split between them."""
    with _api(f"list projects titled {title!r}", url):
        matches = sorted(int(p.id) for p in client.projects.list(title=title, page_size=100)
                         if p.title == title)
    if len(matches) > 1:
        raise LabelStudioError(f"{len(matches)} Label Studio projects are titled {title!r} "
                               f"(ids {', '.join(map(str, matches))}); rename or delete all "
                               "but one")
    return matches[0] if matches else None


def _titles(title_prefix: str) -> dict[str, str]:
    titles = {task: project_title(task, title_prefix) for task in list(ls_files.LABEL_CONFIGS)}
    for title in titles.values():
        if not 3 <= len(title) <= TITLE_MAX:
            raise ValueError(f"project title {title!r} must be 3 to {TITLE_MAX} characters "
                             "(a Label Studio limit); use a shorter title_prefix")
    return titles


def find_projects(client: LabelStudio, title_prefix: str = "feedback-pipeline") -> ProjectIds:
    """The existing projects of the task types in LABEL_CONFIGS, changing nothing on the
    server (what a pull needs: a type without a project has nothing to pull)."""
    url = _base_url(client)
    ids = {}
    for task, title in _titles(title_prefix).items():
        pid = _find_project(client, title, url)
        if pid is not None:
            ids[task] = pid
    return ProjectIds(ids, url=url)


def ensure_projects(client: LabelStudio, title_prefix: str = "feedback-pipeline",
                    instruction: str | None = None) -> ProjectIds:
    """One project per task type in LABEL_CONFIGS, found by exact title or created.

    Idempotent: a second call finds the same projects and changes nothing. A project whose
    labeling config differs from the shipped XML is updated to it (logged, and listed in
    `.updated`), so the controls the parser reads are the controls reviewers see; Label
    Studio refuses the update when existing annotations use labels the new config drops,
    which surfaces as a LabelStudioError rather than silently keeping the old config.

    `instruction` (HTML, core.labelstudio.instruction_html: the rubric's policy) becomes each
    project's instructions, shown before labeling: the policy is stated once per project, not
    carried by every task. A project showing other instructions is updated to these; None
    leaves them as they are.
    """
    url = _base_url(client)
    ids: dict[str, int] = {}
    created: list[str] = []
    updated: list[str] = []
    for task, title in _titles(title_prefix).items():
        config = ls_files.labeling_config(task)
        pid = _find_project(client, title, url)
        shown = ({"expert_instruction": instruction, "show_instruction": True}
                 if instruction is not None else {})
        if pid is None:
            with _api(f"create project {title!r}", url):
                project = client.projects.create(title=title, label_config=config, **shown)
            logger.info("created Label Studio project %s (%r)", project.id, title)
            ids[task] = int(project.id)
            created.append(task)
            continue
        with _api(f"read project {pid}", url):
            project = client.projects.get(pid)
        current = project.label_config
        if shown and ((project.expert_instruction or "").strip() != instruction.strip()
                      or not project.show_instruction):
            with _api(f"update the instructions of project {pid} ({title!r})", url):
                client.projects.update(pid, **shown)
            logger.info("Label Studio project %s (%r) now shows the current rubric's policy",
                        pid, title)
        if not _same_config(current, config):
            with _api(f"update the labeling config of project {pid} ({title!r})", url):
                client.projects.update(pid, label_config=config)
            logger.warning("updated the labeling config of Label Studio project %s (%r) to the "
                           "shipped %s", pid, title, ls_files.LABEL_CONFIGS[task])
            updated.append(task)
        ids[task] = pid
    return ProjectIds(ids, created, updated, url)


# ---- push ---------------------------------------------------------------------------------------
@dataclass
class PushSummary:
    """What a push did, per task type; counts and project ids only, never task text."""

    projects: dict[str, int] = field(default_factory=dict)
    imported: Counter[str] = field(default_factory=Counter)
    already_present: Counter[str] = field(default_factory=Counter)
    no_project: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    """Tasks without a `data` object carrying `task` and `task_id` (not pushed)."""

    @property
    def total_imported(self) -> int:
        return sum(self.imported.values())

    def lines(self) -> list[str]:
        out = []
        for task in sorted(set(self.imported) | set(self.already_present)):
            out.append(f"{task} (project {self.projects.get(task)}): {self.imported[task]} "
                       f"imported, {self.already_present[task]} already present")
        for task, count in sorted(self.no_project.items()):
            out.append(f"{task}: {count} task(s) not pushed, no Label Studio project for this "
                       "task type")
        if self.invalid:
            out.append(f"{self.invalid} task(s) not pushed: no data.task or data.task_id")
        return out or ["no tasks to push"]


def _existing_task_ids(client: LabelStudio, project_id: int, url: str) -> set[str]:
    """data.task_id of every task already in a project (the push's idempotency key)."""
    with _api(f"list the tasks of project {project_id}", url):
        return {str(t.data.get("task_id")) for t in
                client.tasks.list(project=project_id, include="id,data", page_size=500)
                if isinstance(t.data, Mapping) and t.data.get("task_id") is not None}


def push_tasks(client: LabelStudio, projects: Mapping[str, int],
               tasks: Iterable[Mapping[str, Any]]) -> PushSummary:
    """Import tasks ({"data": {...}}, Label Studio's import format) into their type's project.

    A task goes to the project of its data["task"]; one whose data.task_id is already in that
    project (or earlier in `tasks`) is left alone, so pushing the same round twice, or a
    backlog task issued again, adds nothing. Only `data` and the calibrated judge's
    `predictions` (pre-labels reviewers see and can change) are sent. A task type without a
    project is counted in `no_project`, never dropped silently.
    """
    url = _base_url(client)
    summary = PushSummary(projects=dict(projects))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        data = task.get("data") if isinstance(task, Mapping) else None
        if (not isinstance(data, Mapping) or not data.get("task")
                or data.get("task_id") in (None, "")):
            summary.invalid += 1
            continue
        item: dict[str, Any] = {"data": dict(data)}
        if isinstance(task.get("predictions"), list) and task["predictions"]:
            item["predictions"] = list(task["predictions"])
        by_type.setdefault(str(data["task"]), []).append(item)
    for task_type, items in by_type.items():
        if task_type not in projects:
            summary.no_project[task_type] += len(items)
            continue
        pid = int(projects[task_type])
        summary.imported.setdefault(task_type, 0)
        summary.already_present.setdefault(task_type, 0)
        seen = _existing_task_ids(client, pid, url)
        fresh = []
        for item in items:
            key = str(item["data"]["task_id"])
            if key in seen:
                summary.already_present[task_type] += 1
                continue
            seen.add(key)
            fresh.append(item)
        for start in range(0, len(fresh), IMPORT_BATCH):
            batch = fresh[start:start + IMPORT_BATCH]
            with _api(f"import {len(batch)} {task_type} task(s) into project {pid}", url):
                response = client.projects.import_tasks(pid, request=batch)
            # Community imports synchronously and counts; Enterprise queues the import and
            # answers with an import id only, so the batch size is the best count available.
            count = response.task_count if response.task_count is not None else len(batch)
            summary.imported[task_type] += int(count)
    return summary


# ---- pull ---------------------------------------------------------------------------------------
@dataclass
class PullSummary:
    """What a pull landed, per task type; counts, project ids and file names only."""

    review_day: str
    export_format: str
    projects: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    """Task type -> written file, relative to the reviews root."""
    new: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, int | None] = field(default_factory=dict)
    """Cancelled (skipped) annotations seen for the first time; None where the export format
    cannot show them (JSON_MIN leaves them out)."""

    @property
    def written(self) -> int:
        """Annotations written by this pull (new plus updated)."""
        return sum(self.new.values()) + sum(self.updated.values())

    def lines(self) -> list[str]:
        out = []
        for task, pid in self.projects.items():
            skipped = self.skipped.get(task)
            skipped_text = ("skipped not visible in JSON_MIN" if skipped is None
                            else f"{skipped} skipped")
            target = f" -> {self.files[task]}" if task in self.files else ", nothing written"
            out.append(f"{task} (project {pid}): {self.new[task]} new, {self.updated[task]} "
                       f"updated, {self.unchanged[task]} already pulled, {skipped_text}{target}")
        return out or ["no projects to pull"]


def _atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON next to `path` and rename it into place: a reader (review intake) never sees
    half a file. The temporary name starts with a dot and ends in .tmp, so intake, which reads
    *.json, skips it even if a crash leaves it behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": 1, "servers": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LabelStudioError(f"{path} is not valid JSON ({err.msg}); it records which "
                               "annotations were already pulled, so fix or remove it "
                               "(removing it pulls every annotation again)") from err
    if not isinstance(state, dict) or not isinstance(state.get("servers"), dict):
        raise LabelStudioError(f"{path} is not a pull state file")
    return state


def _export(client: LabelStudio, project_id: int, export_format: str, url: str) -> list[Any]:
    """A project's annotated tasks in one of Label Studio's export formats."""
    with _api(f"export project {project_id} as {export_format}", url):
        raw = b"".join(client.projects.exports.download_sync(
            project_id, export_type=export_format, download_all_tasks=False,
            download_resources=False))
        payload = json.loads(raw)
    if not isinstance(payload, list):
        raise LabelStudioError(f"Label Studio at {url} exported project {project_id} as "
                               f"{type(payload).__name__}, not a list")
    return payload


def _version(item: Mapping[str, Any]) -> str:
    return str(item.get("updated_at") or item.get("created_at") or "")


def _valid_day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except (TypeError, ValueError) as err:
        raise ValueError(f"review_day must be a YYYY-MM-DD day, got {text!r}") from err


def pull_annotations(client: LabelStudio, projects: Mapping[str, int], reviews_root: Path,
                     review_day: str, export_format: ExportFormat = "JSON") -> PullSummary:
    """Land the annotations not pulled before, or changed since, one file per task type.

    Each project is exported (annotated tasks only) and compared with the state file
    `reviews_root/.labelstudio-pulled.json`, which remembers each annotation id with the
    `updated_at` last landed. New and updated annotations go to
    `reviews_root/<review_day>/labelstudio-<task type>-<UTC timestamp>.json` in the shape Label
    Studio produced: raw JSON keeps each task with only its new annotations (drafts, which are
    unsubmitted work, emptied); JSON_MIN keeps the new rows. An updated annotation is written
    again under its own id, so its review_id repeats with a later reviewed_at and supersedes the
    earlier one. Cancelled (skipped) annotations are not reviews: counted, never written.
    Nothing new writes no file. Files and state are written atomically, the state only after
    its file, so a crash between the two re-lands the same annotation versions (harmless: same
    review ids) rather than losing any.
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"export_format must be one of {', '.join(EXPORT_FORMATS)}")
    review_day = _valid_day(review_day)
    reviews_root = Path(reviews_root)
    url = _base_url(client)
    summary = PullSummary(review_day=review_day, export_format=export_format,
                          projects={k: int(v) for k, v in projects.items()})
    state_path = reviews_root / STATE_FILE
    with exclusive_lock(reviews_root / f"{STATE_FILE}.lock"):
        state = _load_state(state_path)
        pulled: dict[str, str] = state["servers"].setdefault(url, {})
        emails: dict[int, str] | None = None
        for task_type, pid in summary.projects.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]+", task_type):
                raise ValueError(f"task type {task_type!r} cannot be part of a file name")
            payload = _export(client, pid, export_format, url)
            landed: dict[str, str] = {}
            if export_format == "JSON":
                out, skipped = _new_in_raw(payload, pulled, landed, summary, task_type)
                summary.skipped[task_type] = skipped
            else:
                out = _new_in_min(payload, pulled, landed, summary, task_type)
                summary.skipped[task_type] = None
            if out:
                if emails is None:
                    emails = _user_emails(client, url)
                out = _with_emails(out, emails, export_format)
                path = _export_path(reviews_root / review_day, task_type)
                _atomic_write_json(path, out)
                summary.files[task_type] = str(path.relative_to(reviews_root))
                logger.info("landed %d Label Studio annotation(s) of project %s in %s",
                            len(landed), pid, path)
            if landed:
                pulled.update(landed)
                _atomic_write_json(state_path, state)
    return summary


def _user_emails(client: LabelStudio, url: str) -> dict[int, str]:
    """Label Studio user id -> email. Exports name an annotator by user id only, which means
    nothing on another server; the email is the identity config/reviewers.yaml names (the
    pipeline pseudonymises it on intake)."""
    with _api("list the users", url):
        return {int(user.id): str(user.email) for user in client.users.list()
                if getattr(user, "email", None)}


def _with_emails(items: list[Any], emails: Mapping[int, str], export_format: str) -> list[Any]:
    """The export with each annotator's user id beside their email: raw JSON's `completed_by`
    as {"id", "email"} (a shape Label Studio itself exports), JSON_MIN's `annotator` as the
    email. An id the server does not list is left as it is."""
    def who(value: Any) -> Any:
        if isinstance(value, int) and value in emails:
            return {"id": value, "email": emails[value]}
        return value

    if export_format == "JSON":
        return [{**task, "annotations": [{**a, "completed_by": who(a.get("completed_by"))}
                                         for a in task["annotations"]]} for task in items]
    return [{**row, "annotator": emails.get(row.get("annotator"), row.get("annotator"))}
            if isinstance(row.get("annotator"), int) else row for row in items]


def _export_path(folder: Path, task_type: str) -> Path:
    """A new file name for this pull, stamped to the microsecond in UTC; never an existing one
    (two pulls within a microsecond must not overwrite each other)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"labelstudio-{task_type}-{stamp}.json"
    serial = 1
    while path.exists():
        path = folder / f"labelstudio-{task_type}-{stamp}-{serial}.json"
        serial += 1
    return path


def _classify(key: str, version: str, pulled: Mapping[str, str], summary: PullSummary,
              task_type: str) -> bool:
    """Whether an annotation version is to be written (counted as new or updated)."""
    previous = pulled.get(key)
    if previous is None or previous.startswith(CANCELLED):
        summary.new[task_type] += 1
        return True
    if previous != version:
        summary.updated[task_type] += 1
        return True
    summary.unchanged[task_type] += 1
    return False


def _new_in_raw(payload: list[Any], pulled: Mapping[str, str], landed: dict[str, str],
                summary: PullSummary, task_type: str) -> tuple[list[Any], int]:
    """Raw-JSON tasks cut down to their unpulled annotations, and the count of new skips."""
    out: list[Any] = []
    skipped = 0
    for task in payload:
        if not isinstance(task, Mapping):
            continue
        fresh = []
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, Mapping) or annotation.get("id") is None:
                continue
            key, version = str(annotation["id"]), _version(annotation)
            if annotation.get("was_cancelled"):
                if pulled.get(key) != CANCELLED + version:
                    skipped += 1
                    landed[key] = CANCELLED + version
                continue
            if _classify(key, version, pulled, summary, task_type):
                fresh.append(annotation)
                landed[key] = version
        if fresh:
            out.append({**task, "annotations": fresh, "drafts": []})
    return out, skipped


def _new_in_min(payload: list[Any], pulled: Mapping[str, str], landed: dict[str, str],
                summary: PullSummary, task_type: str) -> list[Any]:
    """JSON_MIN rows (one per annotation) not pulled before, or changed since."""
    out = []
    for row in payload:
        if not isinstance(row, Mapping) or row.get("annotation_id") is None:
            continue  # a task without annotations carries no review
        key, version = str(row["annotation_id"]), _version(row)
        if _classify(key, version, pulled, summary, task_type):
            out.append(row)
            landed[key] = version
    return out
