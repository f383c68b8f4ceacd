"""Shared fixtures: a small generated data root, materialized once per session."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

# Before any stage module builds the daily partitions: the tests' data roots land days from
# 2026-05-01, whatever the checkout's own ./data holds (feedback_pipeline.partitions).
os.environ.setdefault("FEEDBACK_PARTITIONS_START", "2020-01-01")

import dagster as dg  # noqa: E402
import pytest  # noqa: E402

from feedback_pipeline_tests.labelstudio_server import label_studio_server  # noqa: F401

DAYS = ["2026-05-01", "2026-05-02"]


@pytest.fixture(scope="session")
def generated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of synthetic landing data and config (never modified by tests)."""
    from feedback_pipeline.synth.generator import generate

    root = tmp_path_factory.mktemp("generated") / "data"
    generate(root, days=len(DAYS), traces_per_day=60, seed=11, start=date.fromisoformat(DAYS[0]))
    return root


@pytest.fixture(scope="session")
def pipeline_run(generated_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """The whole pipeline run once through the CLI entry point on a persistent temp instance."""
    from feedback_pipeline.cli import run_pipeline

    root = tmp_path_factory.mktemp("run") / "data"
    shutil.copytree(generated_root, root)
    home = tmp_path_factory.mktemp("dagster_home")
    instance = dg.DagsterInstance.local_temp(str(home))
    outcome = run_pipeline(root, instance=instance)
    return root, home, instance, outcome


def copy_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
