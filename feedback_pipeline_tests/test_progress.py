import io
import json
import time

import pytest

from feedback_pipeline.progress import (
    PROGRESS_DIR_ENV,
    ProgressDisplay,
    StageProgress,
    displayed,
    summary_line,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_progress_folder_a_step_writes_nothing_but_keeps_its_figures(monkeypatch):
    monkeypatch.delenv(PROGRESS_DIR_ENV, raising=False)
    progress = StageProgress("redacted_traces", "2026-05-01")
    progress.begin_output("redacted_traces")
    progress.wrote(300)
    progress.wrote(200)
    time.sleep(0.05)
    figures = progress.metadata()
    assert progress.rows == 500
    assert figures["elapsed_seconds"] >= 0.05
    assert figures["rows_per_second"] == pytest.approx(500 / figures["elapsed_seconds"],
                                                       rel=0.02)


def test_snapshots_are_throttled_and_the_last_one_is_always_written(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_DIR_ENV, str(tmp_path))
    progress = StageProgress("raw_traces", "2026-05-01")
    progress.begin_output("raw_traces")
    for _ in range(1000):
        progress.wrote(1)  # a thousand batches inside the throttle interval: one file
    [path] = tmp_path.glob("*.json")
    assert json.loads(path.read_text())["rows"] < 1000
    progress.finish_output()
    state = json.loads(path.read_text())
    assert (state["rows"], state["done"]) == (1000, True)


def test_a_step_level_snapshot_gives_way_to_its_first_output(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_DIR_ENV, str(tmp_path))
    progress = StageProgress("review_intake", "2026-05-01")
    progress.reading(40)
    progress.was_read(40)
    progress.snapshot(force=True)
    assert [json.loads(p.read_text())["step"] for p in tmp_path.glob("*.json")] == [
        "review_intake"]
    progress.begin_output("reviewed_labels")
    assert [json.loads(p.read_text())["step"] for p in tmp_path.glob("*.json")] == [
        "reviewed_labels"]


def test_the_display_prints_one_line_per_finished_output_in_reporting_order(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv(PROGRESS_DIR_ENV, str(tmp_path))
    out = io.StringIO()  # not a terminal: lines only, no bars
    display = ProgressDisplay(tmp_path, out)
    first = StageProgress("raw_traces", "2026-05-01")
    first.begin_output("raw_traces")
    first.wrote(10)
    display.poll()
    assert out.getvalue() == ""  # running: nothing yet on a log
    first.finish_output(10)
    time.sleep(0.01)  # mtimes order the stages
    second = StageProgress("raw_traces", "2026-05-01")
    second.begin_output("trace_quarantine")
    second.finish_output(2)
    display.poll()
    display.poll()  # a finished stage is printed once
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["raw_traces 2026-05-01",
                                                       "trace_quarantine 2026-05-01"]
    assert lines[0].startswith("raw_traces 2026-05-01: 10 rows in ")
    assert lines[0].endswith(" rows/s)")


def test_on_a_terminal_a_running_stage_has_a_bar_with_its_input_total(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_DIR_ENV, str(tmp_path))
    out = Terminal()
    display = ProgressDisplay(tmp_path, out)
    progress = StageProgress("redacted_traces", "2026-05-01")
    progress.begin_output("redacted_traces")
    progress.reading(1000)
    progress.was_read(250)
    progress.wrote(240)
    progress.snapshot(force=True)
    display.poll()
    drawn = out.getvalue()
    assert "redacted_traces 2026-05-01" in drawn
    assert "25%" in drawn and "250/1000" in drawn
    assert "240 written" in drawn
    progress.finish_output()
    display.poll()
    assert not display._bars


def test_displayed_sets_the_folder_for_the_block_only(monkeypatch):
    monkeypatch.delenv(PROGRESS_DIR_ENV, raising=False)
    import os

    with displayed(stream=io.StringIO()):
        assert os.environ[PROGRESS_DIR_ENV]
    assert PROGRESS_DIR_ENV not in os.environ
    with displayed(False):
        assert PROGRESS_DIR_ENV not in os.environ


def test_summary_line_states_rows_time_and_rate():
    assert summary_line({"step": "routed_queues", "day": "2026-05-01", "rows": 3000,
                         "elapsed": 2.0}) == (
        "routed_queues 2026-05-01: 3,000 rows in 2.0 s (1,500 rows/s)")
    assert summary_line({"step": "frozen_evaluation_set", "day": None, "rows": 0,
                         "elapsed": 0.0}).startswith("frozen_evaluation_set: 0 rows")


def test_a_new_run_forgets_the_steps_of_earlier_runs(monkeypatch):
    from feedback_pipeline import progress as module

    monkeypatch.delenv(PROGRESS_DIR_ENV, raising=False)
    first = module.progress_of("run-1", "raw_traces", "2026-05-01")
    assert module.progress_of("run-1", "raw_traces", "2026-05-01") is first
    module.progress_of("run-2", "raw_traces", "2026-05-02")
    assert {run for run, _ in module._current} == {"run-2"}
