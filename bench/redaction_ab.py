"""Redaction A/B: two checkouts of this project timed against each other inside one process.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/redaction_ab.py /tmp/before .          # redact_texts and redact_traces

The shared machine's speed swings by up to 2x between spells of a few minutes, so timing one
version now and the other later compares the spells, not the code. Here each checkout's
package is imported under its own module objects, the two redactors run the same inputs in
turn, and each keeps its best CPU time over `--repeat` rounds: both see the same spells.
Outputs are checked equal first. For a figure that no spell moves, count instructions with
valgrind around one call (`valgrind --tool=callgrind --instr-atstart=no`, switched on and
off with `callgrind_control -i on|off <pid>`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _load(root: Path) -> tuple[Any, Any]:
    """(redaction package, secrets corpus module) of the checkout at `root`."""
    for name in [m for m in sys.modules if m.split(".")[0] == "feedback_pipeline"]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        return (importlib.import_module("feedback_pipeline.core.redaction"),
                importlib.import_module("feedback_pipeline.synth.secrets_corpus"))
    finally:
        sys.path.remove(str(root))


def _best(calls: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    best = [float("inf")] * len(calls)
    for _ in range(repeat):
        for i, call in enumerate(calls):
            start = time.process_time()
            call()
            best[i] = min(best[i], time.process_time() - start)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs=2, type=Path, help="two checkouts: before, after")
    parser.add_argument("--texts", type=int, default=4000, help="realistic-mix texts")
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    loaded = [_load(root.resolve()) for root in args.roots]
    corpus = loaded[-1][1]
    texts = list(corpus.iter_texts(args.texts, seed=7))
    frame = corpus.make_trace_frame(texts[:args.traces], seed=3)
    key = b"bench-corpus-key-0123456789abcdef"
    redactors = [redaction.Redactor(corpus.DENY_TERMS, corpus_key=key)
                 for redaction, _ in loaded]
    if len({"\0".join(r.redact_texts(texts)) for r in redactors}) != 1 or \
            len({r.redact_traces(frame)[0].to_json() for r in redactors}) != 1:
        raise SystemExit("the two checkouts redact differently: not a speed comparison")
    text_bytes = sum(len(t.encode()) for t in texts)
    for name, calls in (
            (f"redact_texts, {args.texts} texts ({text_bytes / 1e6:.1f} MB)",
             [lambda r=r: r.redact_texts(texts) for r in redactors]),
            (f"redact_traces, {args.traces} traces",
             [lambda r=r: r.redact_traces(frame) for r in redactors])):
        before, after = _best(calls, args.repeat)
        print(f"{name}: {before * 1e3:.1f} -> {after * 1e3:.1f} ms "
              f"(best of {args.repeat} each, {before / after:.2f}x)")


if __name__ == "__main__":
    main()
