"""Which executor the jobs run their steps with is chosen by the deployment (FEEDBACK_EXECUTOR),
never by editing the code; the operations guide's Kubernetes run config is valid for it."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_K8S = importlib.util.find_spec("dagster_k8s") is not None


def _probe(code: str, env: dict[str, str], data_root: Path) -> dict:
    """Runs `code` in a fresh interpreter (the jobs read FEEDBACK_EXECUTOR when they load) and
    returns the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "FEEDBACK_DATA_ROOT": str(data_root), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_jobs_run_on_the_forkserver_multiprocess_executor_unless_told_otherwise():
    from feedback_pipeline.jobs import ALL_JOBS, EXECUTOR_ENV, chosen_executor

    assert chosen_executor("").name == "stage_multiprocess"
    stage_jobs = [job for job in ALL_JOBS if job.name != "gate_audit"]  # checks only: in process
    assert {job.name for job in stage_jobs} >= {"daily_pipeline", "release",
                                                "judge_calibration_job"}
    if not os.environ.get(EXECUTOR_ENV):
        assert {job.executor_def.name for job in stage_jobs} == {"stage_multiprocess"}


def _ops_guide_run_config() -> dict:
    """The run config the operations guide gives for a sharded day on Kubernetes."""
    import yaml

    guide = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"```yaml\n# run config of daily_pipeline[^\n]*\n(.*?)```", guide, re.S)
    assert block is not None, "the operations guide lost its Kubernetes run config"
    return yaml.safe_load(block.group(1))


K8S_PROBE = """
import json
import dagster as dg
from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.jobs import ALL_JOBS
defs = build_definitions()
job = defs.resolve_job_def("daily_pipeline")
def valid(config):
    try:
        dg.validate_run_config(job, config)
        return True
    except dg.DagsterInvalidConfigError:
        return False
configs = json.loads(CONFIGS)
print(json.dumps({"executors": {j.name: defs.resolve_job_def(j.name).executor_def.name
                                for j in ALL_JOBS if j.name != "gate_audit"},
                  "valid": [valid(c) for c in configs]}))
"""


@pytest.mark.slow  # a fresh interpreter loading the definitions with the k8s executor
@pytest.mark.skipif(not HAS_K8S, reason="dagster-k8s is not installed (test extra)")
def test_feedback_executor_k8s_gives_every_job_a_pod_per_step_and_the_guides_config_is_valid(
        tmp_path):
    guide = _ops_guide_run_config()
    assert guide["execution"]["config"]["max_concurrent"] >= 1
    misspelt = {"execution": {"config": {**guide["execution"]["config"], "no_such_field": 1}}}
    probe = K8S_PROBE.replace("CONFIGS", repr(json.dumps([guide, misspelt])))
    found = _probe(probe, {"FEEDBACK_EXECUTOR": "k8s"}, tmp_path)
    assert set(found["executors"].values()) == {"k8s"}
    assert found["valid"] == [True, False]  # the schema checked is the k8s executor's own


def test_an_unknown_or_uninstalled_executor_stops_loading_with_what_to_do():
    from feedback_pipeline.jobs import EXECUTOR_ENV, ExecutorChoiceError, chosen_executor

    with pytest.raises(ExecutorChoiceError, match=f"{EXECUTOR_ENV} must be one of .*k8s"):
        chosen_executor("kubernetes-please")
    saved = sys.modules.get("dagster_celery")
    sys.modules["dagster_celery"] = None  # import fails as where the package is missing
    try:
        with pytest.raises(ExecutorChoiceError, match=r"pip install dagster-celery"):
            chosen_executor("celery")
    finally:
        if saved is None:
            sys.modules.pop("dagster_celery", None)
        else:
            sys.modules["dagster_celery"] = saved
    assert chosen_executor(" Multiprocess ").name == "stage_multiprocess"
