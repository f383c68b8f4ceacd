import os

import pytest

from feedback_pipeline.core.parallel import WORKERS_ENV, ordered_map, stage_workers


def square_with_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_results_keep_input_order_across_worker_processes():
    out = list(ordered_map(square_with_pid, range(12), workers=2))
    assert [value for value, _ in out] == [x * x for x in range(12)]
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_or_one_item_runs_in_this_process():
    assert {pid for _, pid in ordered_map(square_with_pid, range(3), workers=1)} == {os.getpid()}
    assert list(ordered_map(square_with_pid, [4], workers=2)) == [(16, os.getpid())]
    assert list(ordered_map(square_with_pid, [], workers=2)) == []


def test_worker_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert stage_workers() == 3
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(ValueError, match=WORKERS_ENV):
        stage_workers()
    monkeypatch.delenv(WORKERS_ENV)
    assert 1 <= stage_workers() <= 4
