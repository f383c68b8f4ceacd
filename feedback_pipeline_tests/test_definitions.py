"""The definitions load through Dagster's `dg` toolchain as well as through workspace.yaml."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")


@pytest.mark.skipif(not DG.exists(), reason="dagster-dg-cli is not installed (test extra)")
def test_dg_check_and_list_defs_load_the_project():
    checked = subprocess.run([str(DG), "check", "defs"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run([str(DG), "list", "defs", "--json"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout[listed.stdout.index("{"):])
    keys = {asset["asset_key"] for asset in defs["assets"]}
    assert {"redacted_traces", "dataset_manifest", "dataset_release"} <= keys
