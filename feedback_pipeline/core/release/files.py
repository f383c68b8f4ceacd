"""Immutable releases: written under a temporary name, renamed into place, never rewritten.

Training files are named so the Hugging Face loader infers no test split from them, and the
dataset card declares every config and split explicitly.

The release folder is a local `Path` or any object with the same slice of the pathlib API (the
storage layer's fsspec-backed paths). Object stores cannot rename a folder, so there a release
is written file by file with `manifest.json` last: a version exists only once its manifest does
(list_versions and the existence check both look for it), and each object is one atomic put.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from feedback_pipeline.core.signing import SIGNATURE_FILE, signature_problems

# config name -> file name; none contains "test", "eval", "valid" or "dev".
RELEASE_FILES = {
    "preference": "preference_pairs.parquet",
    "sft": "sft_demonstrations.parquet",
    "unpaired": "pointwise_labels.parquet",
    "preference_text": "preference_pairs_text.parquet",
    "sft_text": "sft_demonstrations_text.parquet",
    "unpaired_text": "pointwise_labels_text.parquet",
}
"""Config name -> file: the conversational configs (the default) and their plain-string twins,
which hold the same rows."""


class ReleasePath(Protocol):
    """What a release folder must offer: pathlib's names, on a local disk or an object store."""

    name: str

    def __truediv__(self, other: str) -> ReleasePath: ...
    def exists(self) -> bool: ...
    def is_dir(self) -> bool: ...
    def iterdir(self) -> Any: ...
    def open(self, mode: str = ...) -> Any: ...
    def read_text(self, encoding: str = ...) -> str: ...
    def write_bytes(self, payload: bytes) -> int: ...


class ReleaseExistsError(FileExistsError):
    """A dataset version that exists is never written again."""


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: Path | ReleasePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_versions(releases_dir: Path | ReleasePath) -> list[str]:
    if not releases_dir.is_dir():
        return []
    return sorted(p.name for p in releases_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists())


def _manifest_text(manifest: dict[str, Any], files: Mapping[str, bytes]) -> str:
    manifest = dict(manifest, files={name: sha256_bytes(p) for name, p in files.items()})
    return json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"


def write_release(
    releases_dir: Path | ReleasePath, version: str, files: Mapping[str, bytes],
    manifest: dict[str, Any], sign: Callable[[bytes], bytes] | None = None,
) -> Path | ReleasePath:
    """Write files + manifest (with every file's sha256) to releases/<version> atomically;
    with `sign` (manifest bytes -> signature file bytes, core.signing), the signature too."""
    final = releases_dir / version
    if sign is not None:
        files = dict(files)
        text = _manifest_text(manifest, files)
        signed = {SIGNATURE_FILE: sign(text.encode("utf-8"))}
    else:
        signed = {}
    if not isinstance(releases_dir, Path):
        return _write_release_objects(final, version, files, manifest, signed)
    if final.exists():
        raise ReleaseExistsError(f"release {version} already exists at {final}; it is immutable")
    releases_dir.mkdir(parents=True, exist_ok=True)
    staging = releases_dir / f".staging-{version}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for name, payload in files.items():
            (staging / name).write_bytes(payload)
        (staging / "manifest.json").write_text(_manifest_text(manifest, files), encoding="utf-8")
        for name, payload in signed.items():
            (staging / name).write_bytes(payload)
        for path in staging.iterdir():
            os.chmod(path, 0o444)
        try:
            os.rename(staging, final)
        except OSError as err:
            raise ReleaseExistsError(f"release {version} appeared while writing: {err}") from err
    finally:
        if staging.exists():
            for path in staging.iterdir():
                os.chmod(path, 0o644)
            shutil.rmtree(staging)
    return final


def _write_release_objects(final: ReleasePath, version: str, files: Mapping[str, bytes],
                           manifest: dict[str, Any],
                           signed: Mapping[str, bytes] | None = None) -> ReleasePath:
    """Object-store release: data files first, the manifest last, each one atomic put."""
    marker = final / "manifest.json"
    if marker.exists():
        raise ReleaseExistsError(f"release {version} already exists at {final}; it is immutable")
    for name, payload in files.items():
        (final / name).write_bytes(payload)
    if marker.exists():
        raise ReleaseExistsError(f"release {version} appeared while writing")
    for name, payload in (signed or {}).items():
        (final / name).write_bytes(payload)
    marker.write_bytes(_manifest_text(manifest, files).encode("utf-8"))
    return final


def read_manifest(release_dir: Path | ReleasePath) -> dict[str, Any]:
    return json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))


def verify_files(release_dir: Path | ReleasePath) -> list[str]:
    """Problems found re-hashing a release: changed, missing or unlisted files."""
    manifest = read_manifest(release_dir)
    listed: dict[str, str] = manifest.get("files", {})
    problems = []
    for name, expected in sorted(listed.items()):
        path = release_dir / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name}: sha256 differs from the manifest")
    for path in sorted(release_dir.iterdir()):
        if path.name not in listed and path.name not in ("manifest.json", SIGNATURE_FILE):
            problems.append(f"{path.name}: not listed in the manifest")
    return problems


def verify_release_dir(release_dir: Path | ReleasePath,
                       trusted: Mapping[str, Any]) -> list[str]:
    """Every problem with a stored release: re-hashed files against the manifest, and the
    manifest's signature against the trusted signing keys (core.signing.trusted_keys). A
    release whose files and manifest were rewritten together fails on the signature."""
    if not (release_dir / "manifest.json").exists():
        return ["manifest.json: missing"]
    problems = verify_files(release_dir)
    signature = release_dir / SIGNATURE_FILE
    problems += signature_problems((release_dir / "manifest.json").read_bytes(),
                                   signature.read_bytes() if signature.exists() else None,
                                   trusted)
    return problems


SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))
DEFAULT_LICENSE = {"license": "other", "license_name": "internal-use-only",
                   "license_link": "LICENSE"}
"""A release of reviewed production traces is not openly licensed by default; policy keys
`license`, `license_name` and `license_link` (carried in the manifest) say otherwise."""


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for a row count."""
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>10M")


def content_fingerprint(files: Mapping[str, bytes]) -> str:
    """sha256 over the training files' names and hashes: what `datasets` must see differ
    between two releases, even two of one version name from different data roots."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{sha256_bytes(files[name])}\n".encode())
    return digest.hexdigest()


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "none"
    return "" if value is None else str(value).replace("|", "\\|")


def dataset_card(manifest: Mapping[str, Any], present: Mapping[str, str],
                 fingerprint: str | None = None) -> str:
    """README.md with the Hugging Face YAML header: configs and splits declared explicitly.

    The content fingerprint goes into every config's `description`, a builder parameter that
    `datasets` hashes into its cache key (the folder name and config name alone are the same
    for one version name in two data roots, and a second load would be served the first's
    rows)."""
    counts = manifest.get("row_counts", {})
    rows = sum(int(v) for k, v in counts.items()
               if k in ("preferences", "demonstrations", "pointwise") and v is not None)
    described = f"content fingerprint {fingerprint}" if fingerprint else None
    header = {
        "pretty_name": manifest["dataset_version"],
        **{k: manifest.get(k) or v for k, v in DEFAULT_LICENSE.items()},
        "language": list(manifest.get("language") or ["en"]),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(rows)],
        "tags": ["human-feedback", "preference", "dpo", "sft", "kto", "code-review"],
        "configs": [
            {"config_name": config, "data_files": [{"split": "train", "path": name}],
             **({"description": described} if described else {}),
             **({"default": True} if config == "preference" else {})}
            for config, name in present.items()
        ],
    }
    agreement = manifest.get("agreement_report") or {}
    gates = manifest.get("gates", {})
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
        f"# {manifest['dataset_version']}", "",
        "Human-feedback training data for the code-review assistant, produced by "
        "feedback-pipeline. Every text was redacted before review "
        f"(`{manifest.get('redaction_version')}`); the re-identification mapping is held "
        f"separately under `{manifest.get('reidentification_access_rule')}`.", "",
        "## Sources",
        f"- window: {manifest.get('source_window')}",
        f"- parent dataset: {manifest.get('parent_dataset') or 'none (first release)'}",
        f"- rubric: {manifest.get('rubric_version')}; reviewer gold set: "
        f"{manifest.get('reviewer_training_set')}",
        f"- selection policy: {manifest.get('selection_policy_version')}", "",
        "## Counts", "| lane | rows |", "|---|---|",
        *[f"| {k} | {_cell(v)} |" for k, v in counts.items()], "",
        "## Gates", "| gate | passed | value |", "|---|---|---|",
        *[f"| {k} | {g.get('passed')} | {_cell(g.get('value'))} |" for k, g in gates.items()],
        "",
        f"Agreement: {agreement.get('statistic')} = {agreement.get('value')} "
        f"({agreement.get('level')}, gate {agreement.get('policy_gate')} on "
        f"{agreement.get('gate_on')}).", "",
        *([f"Content fingerprint: `{fingerprint}` (sha256 over the training files).", ""]
          if fingerprint else []),
        *([f"Every config is also released as JSON Lines (the same rows): "
           f"{', '.join(f'`{n}`' for n in manifest['jsonl_files'])}.", ""]
          if manifest.get("jsonl_files") else []),
        "## Intended use",
        "- `preference`: prompt / chosen / rejected pairs for DPO or reward modelling (TRL), "
        "in TRL's conversational format: the prompt is the conversation the reviewers judged "
        "(a system message with the assistant's instructions and the context they saw, the "
        "earlier turns, the user turn), chosen and rejected one assistant message each.",
        "- `sft`: conversational `messages` demonstrations for supervised fine-tuning.",
        "- `unpaired`: prompt / completion / label for unpaired preference methods (KTO).",
        "- `preference_text`, `sft_text` (prompt / completion), `unpaired_text`: the same rows "
        "as plain strings, for tokenizers without a chat template; each prompt ends with "
        "`Assistant:` on its own line.",
        f"Never evaluate on these rows: the frozen set `{manifest.get('frozen_evaluation_set')}` "
        "was checked for leakage by id and by content before promotion. BOTH_BAD cases "
        f"({manifest.get('both_bad_escalated')}) went to incident review, not into pairs.", "",
    ]
    return "\n".join(lines)
