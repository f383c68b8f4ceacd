"""End to end through the real UI: `dagster dev` (webserver and daemon) on loopback, a run
launched through GraphQL, and the asset graph checked in headless Debian chromium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from feedback_pipeline_tests.automation.conftest import free_port, wait_until
from feedback_pipeline_tests.conftest import DAYS, copy_root

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STAGES = ["raw_traces", "redacted_traces", "routed_queues", "review_tasks", "reviewed_labels",
          "agreement_report", "selected_batch", "dataset_manifest", "dataset_release"]
DAY = DAYS[0]


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN_STATUS = """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status
  tags { key value } } } }"""


@contextlib.contextmanager
def running_dagster_dev(root: Path, base_dir: Path, env: dict[str, str] | None = None,
                        port: int | None = None) -> Iterator[dict]:
    """`dagster dev` (webserver and daemon) on loopback (`port`, or a free one), with its own
    DAGSTER_HOME under `base_dir`, on the data root `root`; `env` replaces the inherited
    environment."""
    home = base_dir / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**(os.environ if env is None else env), "DAGSTER_HOME": str(home),
           "FEEDBACK_DATA_ROOT": str(root), "DAGSTER_DISABLE_TELEMETRY": "1",
           "PYTHONUNBUFFERED": "1"}
    port = port or free_port()
    log_path = base_dir / "dagster-dev.log"
    with open(log_path, "w") as log:
        dev = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-m",
             "feedback_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=base_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            location = wait_until(lambda: loaded_location(base, dev), timeout=180, interval=1,
                                  what="dagster dev to load the code location")
            yield {"base": base, "location": location, "root": root, "dir": base_dir,
                   "log": log_path, "process": dev}
        finally:
            stop_session(dev)


@pytest.fixture(scope="module")
def dagster_dev(generated_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`dagster dev` on a free loopback port with its own DAGSTER_HOME and data root."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/install-services.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    base_dir = tmp_path_factory.mktemp("ui")
    with running_dagster_dev(copy_root(generated_root, base_dir / "data"), base_dir) as dev:
        yield dev


def stop_session(dev: subprocess.Popen) -> None:
    """Interrupt `dagster dev` and everything it started (its own session), then make sure.

    Its daemon and webserver shut their threads down on the interrupt but the processes do not
    always exit, so after a short grace the whole session is killed."""
    try:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(dev.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    dev.wait(timeout=10)


def loaded_location(base: str, dev: subprocess.Popen) -> str | None:
    if dev.poll() is not None:
        raise RuntimeError(f"dagster dev exited with {dev.returncode}")
    try:
        entries = graphql(base, LOCATIONS)["workspaceOrError"]["locationEntries"]
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None
    for entry in entries:
        loaded = entry["locationOrLoadError"]
        if loaded and loaded["__typename"] == "PythonError":
            raise RuntimeError(f"code location failed to load: {loaded['message']}")
        if loaded and loaded["__typename"] == "RepositoryLocation":
            return entry["name"]
    return None


def dismiss_welcome(page) -> None:
    """A fresh instance greets the first visitor with a newsletter dialog; skip it if shown."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=4_000)
    except PlaywrightTimeout:
        return
    skip.click()


def expand_all_groups(page) -> None:
    """The lineage view starts with every group collapsed; the graph's settings menu (the
    second gear on the page, after the navigation's) opens them all."""
    # a locator wait, not wait_for_function: the UI's Content-Security-Policy forbids the
    # eval a string predicate needs once it has to poll
    page.locator("button:has([aria-label='settings'])").nth(1).wait_for(timeout=30_000)
    page.locator("button:has([aria-label='settings'])").last.click()
    item = page.get_by_text("Expand all groups").filter(visible=True).first
    item.wait_for(timeout=10_000)
    item.click()


def run_status(base: str, run_id: str) -> str:
    return graphql(base, RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def test_a_run_launched_through_graphql_shows_in_the_asset_graph(dagster_dev: dict):
    from playwright.sync_api import sync_playwright

    base = dagster_dev["base"]
    launched = graphql(base, LAUNCH, {"params": {
        "selector": {"repositoryLocationName": dagster_dev["location"],
                     "repositoryName": "__repository__", "jobName": "daily_pipeline"},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    finished = wait_until(
        lambda: (s := run_status(base, run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        timeout=180, interval=2, what=f"run {run_id} to finish")
    assert finished == "SUCCESS", (dagster_dev["dir"] / "dagster-dev.log").read_text()[-3000:]
    assert (dagster_dev["root"] / "warehouse" / "redacted_traces" / f"date={DAY}"
            / "part-0.parquet").exists()

    screenshot = dagster_dev["dir"] / "asset-graph.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1400})
            page.goto(f"{base}/asset-groups", wait_until="domcontentloaded", timeout=60_000)
            page.get_by_text("Global asset lineage").first.wait_for(timeout=60_000)
            dismiss_welcome(page)
            expand_all_groups(page)
            page.get_by_text("routed_queues", exact=True).first.wait_for(timeout=30_000)
            assert "Cycle detected" not in page.inner_text("body"), "the lineage must draw"
            page.keyboard.press("Escape")
            zoom_out = page.locator("button:has([aria-label='zoom_out'])").last
            for _ in range(4):
                zoom_out.click()
                page.wait_for_timeout(300)
            page.wait_for_timeout(1_500)
            page.screenshot(path=str(screenshot))
            # the lineage graph renders only the nodes in view; the catalog lists every asset
            page.goto(f"{base}/assets", wait_until="domcontentloaded", timeout=60_000)
            page.get_by_text("redacted_traces").first.wait_for(timeout=60_000)
            text = page.inner_text("body")
            missing = [stage for stage in STAGES if stage not in text]
            assert not missing, f"asset graph lacks {missing}"

            page.goto(f"{base}/runs/{run_id}", wait_until="domcontentloaded", timeout=60_000)
            page.get_by_text("daily_pipeline").first.wait_for(timeout=60_000)
            page.get_by_text("Success", exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(dagster_dev["dir"] / "run.png"))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


PARTITION_KEYS = """query Keys($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  __typename ... on AssetNode { partitionKeys } } }"""


def test_a_root_landed_to_end_yesterday_shows_only_days_with_data_in_the_ui(tmp_path):
    """What `make demo` lands (`generate --end yesterday`): the UI's daily partitions are the
    landed days, with no empty day before or after them."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/install-services.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    from feedback_pipeline.cli import main

    root = tmp_path / "demo"
    assert main(["generate", "--out", str(root), "--end", "yesterday", "--days", "3",
                 "--traces-per-day", "20", "--reviews", "on_export", "--quiet"]) == 0
    landed = sorted(p.name for p in (root / "landing" / "traces").iterdir())
    # no declared start: the partitions begin at the first landed day, as on a user's machine
    env = {k: v for k, v in os.environ.items() if k != "FEEDBACK_PARTITIONS_START"}
    with running_dagster_dev(root, tmp_path, env) as dev:
        base = dev["base"]
        node = graphql(base, PARTITION_KEYS, {"path": ["raw_traces"]})["assetNodeOrError"]
        assert node["partitionKeys"] == landed
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1200})
                page.goto(f"{base}/assets/raw_traces?view=partitions",
                          wait_until="domcontentloaded", timeout=60_000)
                dismiss_welcome(page)
                page.get_by_text(landed[-1]).first.wait_for(timeout=60_000)
                text = page.inner_text("body")
                page.screenshot(path=str(tmp_path / "partitions.png"))
            finally:
                browser.close()
    first = date.fromisoformat(landed[0])
    assert all(day in text for day in landed), text[:2000]
    assert f"{len(landed)} Partitions" in text  # the partition bar's count: the landed days
    assert (first - timedelta(days=1)).isoformat() not in text
