"""Fixtures for the operations layer: a failed gate on a real instance, a webhook receiver, and
a real PostgreSQL server."""

from __future__ import annotations

import glob
import http.server
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from feedback_pipeline_tests.conftest import DAYS, copy_root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_policy(root: Path, **changes: object) -> None:
    path = root / "config" / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy.update(changes)
    path.write_text(yaml.safe_dump(policy, sort_keys=False))


@dataclass
class FailedGate:
    """A processed data root whose release run failed agreement_gate, on its own instance."""

    root: Path
    instance: dg.DagsterInstance
    defs: dg.Definitions
    run_id: str

    def run_release(self) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("release").execute_in_process(
            instance=self.instance, raise_on_error=False)


@pytest.fixture(scope="session")
def failed_gate(pipeline_run, tmp_path_factory: pytest.TempPathFactory) -> FailedGate:
    """The pipeline's processed root with kappa_gate raised to 0.99, one day and the release run
    again on a fresh instance: daily_agreement_gate fails (a warning; the day's run succeeds)
    and agreement_gate fails (blocking: dataset_release never runs and the run fails)."""
    from feedback_pipeline.definitions import build_definitions

    processed_root = pipeline_run[0]
    root = copy_root(processed_root, tmp_path_factory.mktemp("failed_gate") / "data")
    set_policy(root, kappa_gate=0.99,
               alerts={"sinks": ["jsonl"], "jsonl_path": "restricted/alerts/alerts.jsonl"})
    instance = dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("failed_gate_home")))
    gate = FailedGate(root, instance, build_definitions(str(root)), run_id="")
    daily = gate.defs.resolve_job_def("daily_pipeline").execute_in_process(
        partition_key=DAYS[-1], instance=instance, raise_on_error=False)
    assert daily.success, "a failed non-blocking check must not fail the daily run"
    result = gate.run_release()
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "agreement_gate" in failed
    gate.run_id = result.run_id
    return gate


class WebhookReceiver:
    """A loopback HTTP server that records every POSTed body (JSON, or a form as a dict) and its
    path, answering as Slack's and PagerDuty's APIs do ({"ok": true, "status": "success"})."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode("utf-8")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                receiver.bodies.append(body)
                receiver.paths.append(self.path)
                answer = b'{"ok": true, "status": "success", "message": "Event processed"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    with WebhookReceiver() as receiver:
        yield receiver


# ---- PostgreSQL -------------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db: str

    def env(self) -> dict[str, str]:
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port),
                "DAGSTER_PG_USER": self.user, "DAGSTER_PG_PASSWORD": self.password,
                "DAGSTER_PG_DB": self.db}


def _as_owner(owner: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


@pytest.fixture(scope="module")
def postgres_server():
    """A throwaway PostgreSQL cluster on a loopback port (password auth), stopped afterwards.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
    that Debian's package creates (or `nobody`); its folder is a fresh one under the system
    temp dir, since pytest's own temp dirs are private to the user running pytest."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
                    "run .ci/install-services.sh")
    owner = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            owner = name
            break
        if owner is None or shutil.which("runuser") is None:
            pytest.skip("running as root without a postgres user or runuser")
    base = Path(tempfile.mkdtemp(prefix="feedback-pg-"))
    os.chmod(base, 0o755)
    datadir, sockets = base / "cluster", base / "sockets"
    sockets.mkdir()
    pwfile = base / "pw"
    password = "dagster-test-pw"
    pwfile.write_text(password + "\n")
    if owner:
        shutil.chown(base, user=owner)
        shutil.chown(sockets, user=owner)
        shutil.chown(pwfile, user=owner)
    try:
        _run(_as_owner(owner, [str(bindir / "initdb"), "-D", str(datadir), "-U", "dagster",
                               f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                               "--no-instructions"]), timeout=120)
        port = free_port()
        options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=100")
        _run(_as_owner(owner, [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options,
                               "-l", str(base / "server.log"), "-w", "-t", "60", "start"]),
             timeout=90)
        server = PostgresServer("127.0.0.1", port, "dagster", password, "dagster")
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster",
              "dagster"], env={**os.environ, "PGPASSWORD": password}, timeout=60)
        yield server
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run(_as_owner(owner, [str(bindir / "pg_ctl"), "-D", str(datadir), "-m",
                                             "fast", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def sensor_resources(root: Path | str) -> dict:
    """The resources a sensor gets in the code location, bound to `root`."""
    from feedback_pipeline.definitions import deployment_resources

    return deployment_resources(str(root))
