"""`feedback-pipeline labelstudio setup | push | pull`: a live Label Studio on both ends.

setup  ensure one project per task type (created, or its labeling config brought up to date)
push   import each day's exported tasks (exports/review_tasks/<day>/label_studio_tasks.json)
       into the project of their task type; tasks already there are not imported again
pull   land the annotations not pulled before (or changed since) as Label Studio export files
       in landing/reviews/<review day>/, where review intake reads them

The API key comes from LABEL_STUDIO_API_KEY only (never a flag: command lines are visible to
every user of the machine). Exit status: 0 done, 1 an error (one line on stderr; a traceback
too with FEEDBACK_DEBUG set).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR = 0, 1
DEFAULT_URL = "http://127.0.0.1:8080"
TASKS_FILE = "label_studio_tasks.json"


class CommandError(Exception):
    """A failure the operator can fix (a missing file, no projects yet): its message is enough."""


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD day") from err


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; any failure (unreachable server, refused key, unreadable file) becomes
    one line on stderr and exit status 1, as `run` does."""
    def run(args: argparse.Namespace) -> int:
        from feedback_pipeline.core.labelstudio_api import LabelStudioError

        try:
            return command(args)
        except Exception as err:  # noqa: BLE001 - the CLI turns any failure into exit status 1
            if os.environ.get("FEEDBACK_DEBUG"):
                traceback.print_exc()
            known = isinstance(err, LabelStudioError | CommandError)
            message = str(err) if known else f"{type(err).__name__}: {err}"
        print(f"labelstudio {args.labelstudio_command}: {message}", file=sys.stderr)
        return EXIT_ERROR
    run.__doc__ = command.__doc__
    return run


def _connect(args: argparse.Namespace) -> Any:
    from feedback_pipeline.core.labelstudio_api import connect

    return connect(args.url)


def cmd_setup(args: argparse.Namespace) -> int:
    """Ensure the projects; print each one's id and URL."""
    from feedback_pipeline.core.labelstudio import project_instruction
    from feedback_pipeline.core.labelstudio_api import ensure_projects

    projects = ensure_projects(_connect(args), title_prefix=args.title_prefix,
                               instruction=project_instruction(Path(args.data_root) / "exports"))
    for line in projects.lines():
        print(line)
    return EXIT_OK


def task_files(data_root: Path, day: str | None) -> list[Path]:
    """The import files to push: the labeling round's tasks and the open follow-ups
    (adjudications, incidents), of one day or of every day."""
    from feedback_pipeline.core.labelstudio import TASK_EXPORT_FOLDERS, exported_task_paths

    exports = data_root / "exports"
    files = exported_task_paths(exports, day)
    if not files:
        where = ", ".join(str(exports / f / (day or "<day>")) for f in TASK_EXPORT_FOLDERS)
        raise CommandError(f"no {TASKS_FILE} under {where} (run the pipeline first)")
    return files


def cmd_push(args: argparse.Namespace) -> int:
    """Push the exported tasks of one day, or of every day, into their projects."""
    from feedback_pipeline.core.labelstudio import load_import_tasks, project_instruction
    from feedback_pipeline.core.labelstudio_api import ensure_projects, push_tasks

    files = task_files(Path(args.data_root), args.day)
    try:
        tasks = load_import_tasks(files)
    except ValueError as err:
        raise CommandError(str(err)) from err
    client = _connect(args)
    projects = ensure_projects(client, title_prefix=args.title_prefix,
                               instruction=project_instruction(Path(args.data_root) / "exports"))
    summary = push_tasks(client, projects, tasks)
    print(f"pushed {len(tasks)} task(s) from {len(files)} file(s) to {projects.url}")
    for line in summary.lines():
        print(f"  {line}")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    """Land new and updated annotations of every project for review intake. Pull only reads
    the server: it finds the projects and never creates or re-configures them."""
    from feedback_pipeline.core.labelstudio_api import find_projects, pull_annotations

    client = _connect(args)
    projects = find_projects(client, title_prefix=args.title_prefix)
    if not projects:
        raise CommandError(f"no feedback-pipeline projects at {args.url} (titles "
                                f"'{args.title_prefix}: <task type>'); run `labelstudio setup` "
                                "and `labelstudio push` first")
    reviews_root = Path(args.data_root) / "landing" / "reviews"
    review_day = args.review_day or datetime.now(UTC).date().isoformat()
    summary = pull_annotations(client, projects, reviews_root, review_day, args.format)
    print(f"pulled {summary.written} annotation(s) as {summary.export_format} into "
          f"{reviews_root / summary.review_day}")
    for line in summary.lines():
        print(f"  {line}")
    return EXIT_OK


def add_labelstudio_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `labelstudio` and its subcommands to the CLI's subparsers; each subcommand's handler
    is set with set_defaults(func=...) and returns an exit status, like the others."""
    parser = subparsers.add_parser("labelstudio", help="set up, push tasks to and pull "
                                                       "annotations from a Label Studio server",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="labelstudio_command", required=True)

    def common(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]):
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", DEFAULT_URL),
                         help="Label Studio base URL (default: LABEL_STUDIO_URL or "
                              f"{DEFAULT_URL}); the API key is read from LABEL_STUDIO_API_KEY")
        cmd.add_argument("--title-prefix", default="feedback-pipeline",
                         help='projects are titled "<prefix>: <task type>"')
        cmd.set_defaults(func=_guarded(handler))
        return cmd

    setup = common("setup", "ensure one project per task type (showing the newest exported "
                            "rubric's policy as its instructions) and print their ids and URLs",
                   cmd_setup)
    setup.add_argument("--data-root", default=os.environ.get("FEEDBACK_DATA_ROOT", "data"))
    push = common("push", "import exported review tasks into their projects (idempotent)",
                  cmd_push)
    push.add_argument("--data-root", default=os.environ.get("FEEDBACK_DATA_ROOT", "data"))
    push.add_argument("--day", type=_day, help="push this day's tasks only (default: every "
                                                "day under <data-root>/exports/review_tasks)")
    pull = common("pull", "land new and updated annotations in landing/reviews/<review day>",
                  cmd_pull)
    pull.add_argument("--data-root", default=os.environ.get("FEEDBACK_DATA_ROOT", "data"))
    pull.add_argument("--review-day", type=_day,
                      help="the reviews folder to land in (default: today, UTC)")
    pull.add_argument("--format", choices=("JSON", "JSON_MIN"), default="JSON",
                      help="Label Studio export format to land (default: JSON)")
    return parser
