"""The release: what a release decides and what it writes.

- `decision`: the promotion decision, inputs -> gates and manifest (`decide_release`), with
  the agreement, slice and residue gates it rests on;
- `files`: the immutable release folder (atomic write, hashes, verification, dataset card).
"""

from feedback_pipeline.core.release.decision import (
    ReleaseDecision,
    ReleaseEvidence,
    agreement_gate,
    decide_release,
    residue_gate,
    slice_agreement_gate,
)
from feedback_pipeline.core.release.files import (
    DEFAULT_LICENSE,
    RELEASE_FILES,
    SIZE_CATEGORIES,
    ReleaseExistsError,
    ReleasePath,
    content_fingerprint,
    dataset_card,
    list_versions,
    read_manifest,
    sha256_bytes,
    sha256_file,
    size_category,
    verify_files,
    verify_release_dir,
    write_release,
)

__all__ = [
    "DEFAULT_LICENSE",
    "RELEASE_FILES",
    "ReleaseDecision",
    "ReleaseEvidence",
    "ReleaseExistsError",
    "ReleasePath",
    "SIZE_CATEGORIES",
    "agreement_gate",
    "content_fingerprint",
    "dataset_card",
    "decide_release",
    "list_versions",
    "read_manifest",
    "residue_gate",
    "sha256_bytes",
    "sha256_file",
    "size_category",
    "slice_agreement_gate",
    "verify_files",
    "verify_release_dir",
    "write_release",
]
