"""The one daily partitions definition: a partition is a UTC day of trace data.

Where the days start is declared, not hard-coded: FEEDBACK_PARTITIONS_START, else
`partitions_start` in the data root's policy.yaml, else the first day landed under the data
root, else DEFAULT_START. The definition is built once per process, when Dagster loads the code
location, so the UI's partition bar begins at the team's first day rather than at a date in this
project's history. A landed day before the start is reported by `feedback-pipeline run` (never
run and never silently dropped): declare an earlier start to take it in.
"""

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import dagster as dg
import yaml

from feedback_pipeline.storage import is_day_name

START_ENV = "FEEDBACK_PARTITIONS_START"
DATA_ROOT_ENV = "FEEDBACK_DATA_ROOT"
DEFAULT_START = "2020-01-01"
"""Used only when nothing is declared and nothing has landed yet."""
LANDED_KINDS = ("traces", "reviews", "judge")
def _day(value: object) -> str | None:
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text if is_day_name(text) else None


def resolve_partitions_start(environ: Mapping[str, str], data_root: Path) -> tuple[str, str]:
    """(first partition day, where it was declared): the environment, the policy, the first
    landed day, or the default. A declared value that is not a YYYY-MM-DD day is an error
    naming where it was declared."""
    if environ.get(START_ENV):
        day = _day(environ[START_ENV])
        if day is None:
            raise ValueError(f"{START_ENV}={environ[START_ENV]!r} is not a YYYY-MM-DD day")
        return day, START_ENV
    policy = data_root / "config" / "policy.yaml"
    if policy.is_file():
        try:
            declared = (yaml.safe_load(policy.read_text(encoding="utf-8")) or {}).get(
                "partitions_start")
        except ValueError as err:  # a date YAML cannot build (2024-13-40)
            raise ValueError(f"{policy}: partitions_start or another value is not valid "
                             f"({err})") from err
        except (yaml.YAMLError, AttributeError, OSError):
            declared = None  # settings.load_policy reports a broken policy by name
        if declared is not None:
            day = _day(declared)
            if day is None:
                raise ValueError(f"{policy}: partitions_start {declared!r} is not a "
                                 "YYYY-MM-DD day")
            return day, f"{policy} partitions_start"
    landed = sorted(day for kind in LANDED_KINDS
                    for folder in [data_root / "landing" / kind] if folder.is_dir()
                    for day in (_day(p.name) for p in folder.iterdir() if p.is_dir()) if day)
    if landed:
        return landed[0], f"the first landed day under {data_root}/landing"
    return DEFAULT_START, "the default (nothing declared, nothing landed)"


PARTITIONS_START, PARTITIONS_START_SOURCE = resolve_partitions_start(
    os.environ, Path(os.environ.get(DATA_ROOT_ENV, "data")))

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
