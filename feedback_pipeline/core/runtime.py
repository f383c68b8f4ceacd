"""The runtime: worker processes, how many, when they stop, and memory handed back.

Everything about running per-batch work on several cores lives here, so domain code states
only what one batch is (a module-level function with named arguments) and the stages say how
many workers (`PipelineResource.stage_workers`, fed from FEEDBACK_STAGE_WORKERS through
`EnvVar`).

The per-day stages are pure-Python per record (parsing, rubric resolution, token building),
so one process uses one core. Batches are independent, so `ordered_map` hands them to worker
processes and yields results in input order, with at most `workers + 1` batches in flight so
memory stays a few batches whatever the day's size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.util import Finalize
from typing import Any, TypeVar

import pyarrow as pa

from feedback_pipeline import ARROW_POOL, ARROW_POOL_ENV

T = TypeVar("T")
R = TypeVar("R")
WORKERS_ENV = "FEEDBACK_STAGE_WORKERS"


def worker_count(configured: int | str | None = None) -> int:
    """Worker processes per stage: `configured` when it is a positive integer, else one per
    core (at most 4). 0 or empty means "one per core"."""
    raw = str(configured).strip() if configured is not None else ""
    if raw:
        try:
            value = int(raw)
        except ValueError as err:
            raise ValueError(f"{WORKERS_ENV} must be an integer, got {raw!r}") from err
        if value > 0:
            return value
        if value < 0:
            raise ValueError(f"{WORKERS_ENV} must be 0 (one per core) or more, got {value}")
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def stage_workers() -> int:
    """worker_count from FEEDBACK_STAGE_WORKERS, for callers outside Dagster (the benches);
    the stages take theirs from the pipeline resource."""
    return worker_count(os.environ.get(WORKERS_ENV))


def release_free_memory() -> None:
    """Hand free pages back to the OS: Arrow's pool and glibc's heap both keep them after large
    transient allocations, so a long-lived process would carry every batch's high-water mark.
    Cheap: no garbage collection, Arrow's `release_unused` and `malloc_trim` where glibc has
    it."""
    _ARROW_POOL.release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()
def _arrow_pool() -> pa.MemoryPool:
    """The Arrow memory pool every stage allocates from: jemalloc where the wheel has it,
    unless ARROW_DEFAULT_MEMORY_POOL names another. Arrow's default, mimalloc, keeps the pages
    of a stage's freed batches resident even after `release_unused`, and a run that executes
    every stage in one process would carry each stage's high-water mark into the next; jemalloc
    returns them on its own decay timer.

    The package sets the variable before pyarrow is imported (`feedback_pipeline/__init__`),
    which covers Arrow's C++ readers too; where pyarrow was imported first (a notebook), the
    pool pyarrow functions use is switched here, which covers what Python code allocates."""
    pool = pa.default_memory_pool()
    if (os.environ.get(ARROW_POOL_ENV) or ARROW_POOL) != ARROW_POOL or pool.backend_name == ARROW_POOL:
        return pool  # a pool the environment names, or jemalloc already
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a build without jemalloc (Windows wheels)
        return pa.default_memory_pool()
    pa.set_memory_pool(pool)
    return pool


_ARROW_POOL = _arrow_pool()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Per-record work (parsing, redaction, rubric
    resolution) allocates millions of small acyclic objects, and every collection they
    trigger walks everything the process holds, its imported modules included: about a fifth
    of such a batch's time. Reference counting still frees all of it; cycles wait for the
    collector, which resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _call_paused(fn: Callable[[T], R], item: T) -> R:
    with gc_paused():
        return fn(item)


def _trimmed(call: tuple[Callable[[T], R], T]) -> R:
    """Runs in a worker: the task (the collector paused: a task is one bounded batch), then
    its freed memory handed back. Whatever the task left in reference cycles is still in the
    youngest generation, so collecting that one alone frees it, without walking the rest."""
    fn, item = call
    try:
        return _call_paused(fn, item)
    finally:
        gc.collect(0)
        release_free_memory()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """fn over items, results in input order; in worker processes when workers > 1.

    `fn` must be a module-level function and items picklable. With one worker (or one item)
    everything runs in this process, so small days pay no process start-up.
    """
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        return
    second = next(iterator, None)
    if workers <= 1 or second is None:  # here, each call as a worker runs it
        yield _call_paused(fn, first)
        if second is not None:
            yield _call_paused(fn, second)
        for item in iterator:
            yield _call_paused(fn, item)
        return
    pool = _pool(workers)
    pending: deque[Future[R]] = deque([pool.submit(_trimmed, (fn, first)),
                                       pool.submit(_trimmed, (fn, second))])
    try:
        for item in iterator:
            if len(pending) > workers:
                yield pending.popleft().result()
            pending.append(pool.submit(_trimmed, (fn, item)))
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        _POOLS.pop(workers, None)
        raise
    finally:
        for future in pending:
            future.cancel()


def ordered_calls(calls: Iterable[Callable[[], R]], workers: int) -> Iterator[R]:
    """Each call's result, in order, in worker processes when workers > 1: a call is a
    `functools.partial` of a module-level worker function with its named arguments, so work
    whose arguments vary per item needs no packed tuple."""
    return ordered_map(_call, calls, workers)


def _call(call: Callable[[], R]) -> R:
    return call()


def submit(fn: Callable[[T], R], item: T, workers: int) -> Future[R]:
    """fn(item) in a worker process, so the caller can go on with other work meanwhile; with
    one worker it runs here, before this returns (same module-level `fn` rule as
    ordered_map)."""
    if workers > 1:
        return _pool(workers).submit(_trimmed, (fn, item))
    done: Future[R] = Future()
    try:
        done.set_result(fn(item))
    except Exception as err:  # noqa: BLE001 - re-raised by result(), as from a worker
        done.set_exception(err)
    return done


def submit_sequence(calls: list[Callable[[], Any]], workers: int) -> Future[list[Any]]:
    """submit for several calls (partials, as for ordered_calls) run one after another by one
    worker process: background work that should not take every core (nor start a worker per
    call) while the caller's own threads are busy. The result is each call's result, in
    order."""
    return submit(_run_sequence, calls, workers)


def _run_sequence(calls: list[Callable[[], Any]]) -> list[Any]:
    return [call() for call in calls]


_POOLS: dict[int, ProcessPoolExecutor] = {}
_OWNER = {"pid": 0}


def _pool(workers: int) -> ProcessPoolExecutor:
    """One pool per process and size, reused by every stage a run executes in this process
    (worker start-up is paid once) and shut down when the process exits.

    The shutdown is a multiprocessing finalizer, not an atexit hook: a Dagster step process is
    itself a multiprocessing child, which joins its children before atexit hooks run, so idle
    pool workers would otherwise keep it from ever exiting."""
    if _OWNER["pid"] != os.getpid():
        _POOLS.clear()
        _OWNER["pid"] = os.getpid()
        Finalize(None, _shutdown, exitpriority=100)
    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))
    return _POOLS[workers]


def _shutdown() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


def stop_workers() -> None:
    """Stop this process's workers and hand freed memory back, so what runs next does not
    sit beside idle workers' heaps (and their caches). The next ordered_map or submit starts
    new ones, which costs about a second."""
    if _OWNER["pid"] == os.getpid():
        _shutdown()
    release_free_memory()


def end_of_stage() -> None:
    """stop_workers after every step: a run that executes all stages in one process must not
    carry one stage's workers into stages that never use them."""
    stop_workers()
