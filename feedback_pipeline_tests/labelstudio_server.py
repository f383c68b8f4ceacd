"""A real Label Studio server for the `labelstudio`-marked tests, one per test session.

Label Studio lives in its own venv (its pins conflict with the project's), so the server is
the `label-studio` binary of that venv, found at LABEL_STUDIO_BIN, else
$LABEL_STUDIO_VENV/bin/label-studio, else <repo>/.venv-labelstudio/bin/label-studio (what
.ci/install-services.sh installs), else /tmp/lsvenv/bin/label-studio. Without one, or when the
server does not answer /health in time, the tests skip with the reason.

How the users and their tokens come about (checked against Label Studio 1.23):

* The admin is created at start from LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD /
  LABEL_STUDIO_USER_TOKEN; the token given there replaces the admin's legacy token.
  `--enable-legacy-api-token` (and LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN) create the
  organization with legacy tokens enabled; without it the fixed token would be refused.
* An annotator joins the way a person does: the admin reads the organization's invite link
  through the API, the annotator signs up through it (the sign-up form, with its CSRF token;
  the server runs with DISABLE_SIGNUP_WITHOUT_LINK so the link is required), and, logged in,
  creates a personal access token (POST /api/token/, a JWT refresh token) or reads its legacy
  token (GET /api/current-user/token). So the tests drive the SDK with both token kinds.

The first start of a fresh data dir spends about a minute on database migrations (the wait for
/health is LABEL_STUDIO_START_TIMEOUT seconds, default 120). The
migrated, still empty database is kept in pytest's cache (per Label Studio version) and copied
into each session's data dir, so later sessions start in seconds.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
FALLBACK_BIN = Path("/tmp/lsvenv/bin/label-studio")
DB_NAME = "label_studio.sqlite3"
START_TIMEOUT = float(os.environ.get("LABEL_STUDIO_START_TIMEOUT", "120"))
ADMIN_EMAIL = "admin@feedback-pipeline.test"
ADMIN_PASSWORD = "admin-password-for-tests"
ADMIN_TOKEN = "fbp0test0admin0legacy0token0000000000000"  # 40 characters, like a real one


def find_label_studio_binary() -> Path | None:
    """The label-studio executable to run, by the documented order, or None."""
    candidates = []
    if os.environ.get("LABEL_STUDIO_BIN"):
        candidates.append(Path(os.environ["LABEL_STUDIO_BIN"]))
    if os.environ.get("LABEL_STUDIO_VENV"):
        venv = Path(os.environ["LABEL_STUDIO_VENV"])  # relative: to the repo, as the CI script
        candidates.append((venv if venv.is_absolute() else REPO / venv) / "bin" / "label-studio")
    candidates += [REPO / ".venv-labelstudio" / "bin" / "label-studio", FALLBACK_BIN]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path) -> dict[str, str]:
    """The server's environment: ours minus every inherited Label Studio setting (a developer's
    LABEL_STUDIO_HOST or DJANGO_DB must not leak in), plus a sqlite database in `data_dir`,
    no update check and no error reporting to the outside."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))
           and k not in ("DJANGO_DB", "DATABASE_NAME", "HOST", "PORT", "USERNAME", "PASSWORD",
                         "USER_TOKEN", "DJANGO_SETTINGS_MODULE")}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_DB": "sqlite",
        "DATABASE_NAME": str(data_dir / DB_NAME),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _install_key(binary: Path) -> str:
    """Which installation a cached database belongs to: the dist-info of label-studio in the
    binary's venv (its version), else the binary's path and mtime."""
    venv = binary.resolve().parent.parent
    found = sorted(glob.glob(str(venv / "lib" / "python*" / "site-packages" /
                                 "label_studio-*.dist-info")))
    basis = found[-1] if found else f"{binary.resolve()}:{binary.stat().st_mtime_ns}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def migrated_database(binary: Path, cache_dir: Path | None) -> Path | None:
    """A migrated, empty Label Studio database for this installation, built once.

    `label-studio version` applies the migrations and exits without creating any user; the
    result is kept in `cache_dir` (pytest's cache) so later sessions skip the minute of
    migrations. Built on /dev/shm when there is one (sqlite migrates faster off disk). None
    when it cannot be built: the server then migrates its own database at start."""
    if cache_dir is None:
        return None
    cached = cache_dir / DB_NAME
    if cached.is_file():
        return cached
    build = Path(tempfile.mkdtemp(prefix="feedback-ls-migrate-",
                                  dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
    try:
        done = subprocess.run([str(binary), "version"], env=server_env(build),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=START_TIMEOUT)
        if done.returncode or not (build / DB_NAME).is_file():
            return None
        partial = cache_dir / f".{DB_NAME}.{os.getpid()}.tmp"
        shutil.copyfile(build / DB_NAME, partial)
        os.replace(partial, cached)
        return cached
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(build, ignore_errors=True)


@dataclass
class Annotator:
    """A second (third, ...) user of the server, with a client acting as that user."""

    email: str
    password: str
    user_id: int
    token: str
    token_kind: str
    client: Any = field(repr=False)


@dataclass
class LabelStudioServer:
    """A running server: its URL, the admin's legacy token, and a way to add annotators."""

    url: str
    admin_token: str
    admin_email: str
    admin_password: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def client(self, token: str | None = None) -> Any:
        """An SDK client through the pipeline's own connect() (the admin's unless `token`)."""
        from feedback_pipeline.core.labelstudio_api import connect

        return connect(self.url, token or self.admin_token)

    def personal_access_token(self, legacy_token: str | None = None) -> str:
        """A new personal access token (JWT refresh token) for the admin, or for the user a
        legacy token belongs to, made through the API (POST /api/token/)."""
        response = httpx.post(f"{self.url}/api/token/", timeout=30,
                              headers={"Authorization": f"Token {legacy_token or self.admin_token}"})
        response.raise_for_status()
        return response.json()["token"]

    def create_annotator(self, name: str | None = None, token_kind: str = "personal",
                         password: str = "annotator-password-1") -> Annotator:
        """Sign a new user up through the organization's invite link, as a person would, and
        return it with a token of `token_kind` ("personal": a new personal access token;
        "legacy": its legacy token) and a client acting as that user."""
        if token_kind not in ("personal", "legacy"):
            raise ValueError("token_kind must be 'personal' or 'legacy'")
        email = f"{name or 'annotator-' + uuid.uuid4().hex[:8]}@feedback-pipeline.test"
        invite = self.client().organizations.invites.get_invite_link()
        signup = f"{self.url}{invite.invite_url}"
        with httpx.Client(timeout=30, follow_redirects=False) as browser:
            page = browser.get(signup)
            page.raise_for_status()
            found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            csrf = found.group(1) if found else browser.cookies.get("csrftoken", "")
            posted = browser.post(signup, headers={"Referer": signup},
                                  data={"csrfmiddlewaretoken": csrf, "email": email,
                                        "password": password})
            if posted.status_code != 302:
                raise RuntimeError(f"sign-up of {email} failed: HTTP {posted.status_code}")
            me = browser.get(f"{self.url}/api/current-user/whoami")
            me.raise_for_status()
            if token_kind == "legacy":
                got = browser.get(f"{self.url}/api/current-user/token")
            else:
                got = browser.post(f"{self.url}/api/token/", headers={
                    "X-CSRFToken": browser.cookies.get("csrftoken", ""),
                    "Referer": f"{self.url}/"})
            got.raise_for_status()
            token = got.json()["token"]
        return Annotator(email=email, password=password, user_id=int(me.json()["id"]),
                         token=token, token_kind=token_kind, client=self.client(token))

    def stop(self) -> None:
        """SIGTERM to the server's own process group (it was started in a new session), then
        SIGKILL if it lingers; nothing else is touched."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_until_up(process: subprocess.Popen, log_path: Path, port: int,
                   deadline: float) -> str | None:
    """The server's URL once /health answers UP, or None (it exited, or time ran out).

    Label Studio quietly moves to the next port when the asked one is taken, so the port is
    read from its "Starting development server at" line rather than assumed."""
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        if url is None:
            found = re.search(r"Starting development server at http://127\.0\.0\.1:(\d+)/",
                              log_path.read_text(errors="replace"))
            if found:
                url = f"http://127.0.0.1:{found.group(1)}"
        if url:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = httpx.get(f"{url}/health", timeout=2)
                if health.status_code == 200 and health.json().get("status") == "UP":
                    return url
        time.sleep(0.5)
    return None


@contextlib.contextmanager
def running_server(base: Path, cache_dir: Path | None = None) -> Iterator[LabelStudioServer]:
    """Start Label Studio on 127.0.0.1 with its data in `base`, yield it, and stop it.

    pytest.skip (with the reason) when there is no binary or it does not come up in time."""
    binary = find_label_studio_binary()
    if binary is None:
        pytest.skip("label-studio not installed: set LABEL_STUDIO_BIN or LABEL_STUDIO_VENV, or "
                    "run .ci/install-services.sh (installs .venv-labelstudio)")
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    template = migrated_database(binary, cache_dir)
    if template is not None:
        shutil.copyfile(template, data_dir / DB_NAME)
    env = server_env(data_dir)
    env.update({"LABEL_STUDIO_USERNAME": ADMIN_EMAIL, "LABEL_STUDIO_PASSWORD": ADMIN_PASSWORD,
                "LABEL_STUDIO_USER_TOKEN": ADMIN_TOKEN})
    log_path = base / "label-studio.log"
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(port), "--enable-legacy-api-token"],
            env=env, cwd=base, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = LabelStudioServer(url="", admin_token=ADMIN_TOKEN, admin_email=ADMIN_EMAIL,
                               admin_password=ADMIN_PASSWORD, data_dir=data_dir,
                               log_path=log_path, process=process)
    try:
        url = _wait_until_up(process, log_path, port, time.monotonic() + START_TIMEOUT)
        if url is None:
            reason = ("exited" if process.poll() is not None
                      else f"did not answer /health within {START_TIMEOUT:.0f} s")
            pytest.skip(f"Label Studio ({binary}) {reason}; log tail:\n{_tail(log_path)}")
        server.url = url
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory: pytest.TempPathFactory,
                        pytestconfig: pytest.Config) -> Iterator[LabelStudioServer]:
    """One Label Studio server for the whole session (tests keep apart by project titles)."""
    cache = getattr(pytestconfig, "cache", None)
    binary = find_label_studio_binary()
    cache_dir = (cache.mkdir(f"labelstudio-db-{_install_key(binary)}")
                 if cache is not None and binary is not None else None)
    with running_server(tmp_path_factory.mktemp("labelstudio"), cache_dir) as server:
        yield server
