"""Where a release's code came from: the package version and, in a git checkout, the commit.

Kept out of core (it runs git) and out of the stages (the CLI and verify read it too)."""

import subprocess
from importlib.metadata import version as package_version
from pathlib import Path


def code_version() -> str:
    """`<package version>[+g<short sha>]`; the sha only when this package sits in a git
    checkout and git answers within five seconds."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{package_version('feedback-pipeline')}" + (f"+g{sha}" if sha else "")
