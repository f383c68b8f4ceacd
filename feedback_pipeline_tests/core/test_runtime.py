import functools
import multiprocessing
import os

import pytest

from feedback_pipeline import ARROW_POOL, ARROW_POOL_ENV
from feedback_pipeline.core.runtime import (
    WORKERS_ENV,
    gc_paused,
    ordered_calls,
    ordered_map,
    stage_workers,
    submit,
    submit_sequence,
    worker_count,
)


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


def fail_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def test_submitted_work_runs_in_a_worker_or_here_and_raises_where_collected():
    value, pid = submit(square_with_pid, 7, workers=2).result()
    assert value == 49 and pid != os.getpid()
    assert submit(square_with_pid, 3, workers=1).result() == (9, os.getpid())
    for workers in (1, 2):
        job = submit(fail_on_odd, 5, workers)
        with pytest.raises(ValueError, match="odd 5"):
            job.result()
        assert submit(fail_on_odd, 4, workers).result() == 4


def test_a_sequence_of_calls_runs_in_one_worker_in_order():
    out = submit_sequence([functools.partial(square_with_pid, 2),
                           functools.partial(fail_on_odd, 6), functools.partial(square_with_pid, 3)],
                          workers=2).result()
    assert [out[0][0], out[1], out[2][0]] == [4, 6, 9]
    assert out[0][1] == out[2][1] != os.getpid()


def test_worker_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert stage_workers() == 3
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(ValueError, match=WORKERS_ENV):
        stage_workers()
    monkeypatch.delenv(WORKERS_ENV)
    assert 1 <= stage_workers() <= 4


def test_worker_count_is_declared_on_the_pipeline_resource_and_read_through_env_var(
        monkeypatch, tmp_path):
    import dagster as dg

    from feedback_pipeline.definitions import build_definitions
    from feedback_pipeline.resources import PipelineResource

    assert worker_count("2") == 2 and worker_count(0) == worker_count("") >= 1
    with pytest.raises(ValueError, match="0 .one per core. or more"):
        worker_count(-1)
    assert PipelineResource(data_root=str(tmp_path), stage_workers="3").workers == 3
    monkeypatch.setenv(WORKERS_ENV, "2")
    declared = build_definitions(str(tmp_path)).resources["pipeline"].stage_workers
    assert isinstance(declared, dg.EnvVar) and declared.env_var_name == WORKERS_ENV


def test_calls_with_named_arguments_run_in_order_on_workers():
    calls = [functools.partial(square_with_pid, n) for n in range(5)]
    assert [v for v, _ in ordered_calls(calls, workers=2)] == [0, 1, 4, 9, 16]


def _map_in_child() -> None:
    assert [v for v, _ in ordered_map(square_with_pid, range(6), workers=2)] == [
        x * x for x in range(6)]


def test_a_multiprocessing_child_using_the_pool_still_exits():
    """Dagster step processes are multiprocessing children; they join their children before
    atexit hooks run, so the pool must shut down before that or the step never ends."""
    child = multiprocessing.get_context("spawn").Process(target=_map_in_child)
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive
    assert child.exitcode == 0


def arrow_pool_backend(_: int) -> str:
    import pyarrow as pa

    return pa.default_memory_pool().backend_name


_POOL_PROBE = ("import sys; sys.argv[1:] and __import__('pyarrow'); "
               "import feedback_pipeline.core.runtime as r, pyarrow as pa; "
               "print(pa.default_memory_pool().backend_name, r._ARROW_POOL.backend_name)")


@pytest.mark.parametrize(("declared", "pyarrow_first"),
                         [(None, False), (None, True), ("system", False)])
def test_stages_allocate_from_jemalloc_unless_the_environment_names_a_pool(declared,
                                                                          pyarrow_first):
    """mimalloc (Arrow's default) keeps freed batches resident, so a run of every stage in one
    process would carry each stage's high-water mark into the next; a declared pool wins, and
    a process that imported pyarrow before the package still allocates from jemalloc."""
    import subprocess
    import sys

    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow build has no jemalloc; the runtime keeps Arrow's default")
    env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_ENV}
    if declared:
        env[ARROW_POOL_ENV] = declared
    out = subprocess.run([sys.executable, "-c", _POOL_PROBE, *(["first"] if pyarrow_first
                                                              else [])],
                         env=env, capture_output=True, text=True, check=True)
    expected = declared or ARROW_POOL
    assert out.stdout.split() == [expected, expected]
    assert "Unsupported backend" not in out.stderr


def test_worker_processes_allocate_from_the_same_pool_as_the_stage():
    assert set(ordered_map(arrow_pool_backend, range(4), workers=2)) == {
        arrow_pool_backend(0)}


def collector_running(_: int) -> bool:
    import gc

    return gc.isenabled()


def test_tasks_run_with_the_collector_paused_here_and_in_workers_and_it_resumes_after():
    import gc

    assert gc.isenabled()
    assert list(ordered_map(collector_running, range(3), workers=1)) == [False] * 3
    assert gc.isenabled()  # the caller's collector runs between tasks and after them
    assert list(ordered_map(collector_running, range(6), workers=2)) == [False] * 6
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # an inner pause never resumes an outer one
    assert gc.isenabled()


def cycle_freed_after_task(_: int) -> bool:
    """Runs a task through the worker wrapper here and reports whether the cycle it left was
    freed on the way out (the youngest generation collected), as each worker does."""
    import weakref

    from feedback_pipeline.core import runtime

    class Node:
        pass

    refs = []

    def task(_: int) -> None:
        node = Node()
        node.me = node
        refs.append(weakref.ref(node))

    runtime._trimmed((task, 0))
    return refs[0]() is None


def test_a_worker_task_leaves_no_cycle_behind_for_the_next_one():
    assert cycle_freed_after_task(0)
    assert list(ordered_map(cycle_freed_after_task, range(2), workers=2)) == [True, True]
