"""The stage layer's shared pieces: the confusion-matrix heatmap the release ships."""

import numpy as np

from feedback_pipeline.core.agreement import (
    agreement_report,
)
from feedback_pipeline.stages.common import write_confusion_heatmap
from feedback_pipeline_tests.core.agreement.conftest import (
    SEED_MATRIX,
    simulate,
)


def test_heatmap_png_is_written(tmp_path):
    rng = np.random.default_rng(1)
    reviews, _ = simulate(rng, n_items=60, reviewers=3)
    report = agreement_report(reviews, bootstrap=0)
    path = tmp_path / "release" / "confusion.png"
    write_confusion_heatmap(report, None, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    other = tmp_path / "m.png"
    write_confusion_heatmap(SEED_MATRIX, ["A", "B", "TIE"], other)
    assert other.read_bytes()[:4] == b"\x89PNG"
