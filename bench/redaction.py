"""Redaction benchmark: accuracy per entity type, throughput and memory, against baselines.

    .venv/bin/python bench/redaction.py                 # a few minutes
    .venv/bin/python bench/redaction.py --million       # adds the 10^6-trace memory run

Compared in one run, on the same texts:
- this project's `Redactor` (Hyperscan locator + precise Python patterns, stable tokens),
  and the same Redactor with `engine="python"` (no Hyperscan);
- the seed's approach (lesson listing 02): one `re.sub` per pattern, both with the seed's three
  patterns (EMAIL, COMMIT, ENGINEER) and scaled to this project's detectors (the baseline for
  the issue's "20x": it covers the same entity types);
- scrubadub 2 with its default detectors plus the deny list as user-supplied filth;
- Presidio (presidio-analyzer + presidio-anonymizer) with pattern recognizers only: the NLP
  engine is `EmptyNlpEngine` below, which loads no model and returns empty NlpArtifacts, and
  every predefined recognizer that is not a PatternRecognizer is removed; the deny list is
  added as a deny-list PatternRecognizer so names are judged on equal terms.

Accuracy is measured on the labelled corpus (`make_labelled_corpus`, every fragment plants
values: ~11 per KB, with decoys). A planted value counts as found when one predicted span covers
all of it; for our Redactor and the seed the kind must match too, for scrubadub and Presidio
(whose kind names differ) any kind counts. Throughput is CPU time of this process (one core;
the machine is shared, so wall time is noisier), on the realistic mix (`iter_texts`: ~2 values
per KB), and includes building tokens and the redacted strings. Peak memory is the maximum RSS
of a child process that streams N traces through `redact_trace_batches` in batches of 2,000.

The residue scan (the independent second opinion the blocking checks run) is timed over the
redacted realistic mix, as `find_residue_many` and as `residue_flags` (list and Arrow column),
beside the same rules without Hyperscan.

Bench-only dependencies (not project dependencies): scrubadub, presidio-analyzer,
presidio-anonymizer (they pull spaCy, but no spaCy model is loaded). The project itself
needs `hyperscan` for speed; without it the Redactor falls back to pure Python.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedback_pipeline.core import redaction as core  # noqa: E402
from feedback_pipeline.core.redaction import (  # noqa: E402
    DETECTORS,
    Redactor,
    deny_pattern,
    find_residue_many,
    residue_flags,
)
from feedback_pipeline.synth.secrets_corpus import (  # noqa: E402
    DENY_TERMS,
    ENTITY_KINDS,
    FAMILIES,
    decoy_samples,
    family_kind,
    family_samples,
    iter_texts,
    make_labelled_corpus,
    make_trace_frame,
    score_spans,
)

Span = tuple[int, int, str]
SEED_PATTERNS = {
    "EMAIL": r"\b[\w.+-]+@[\w.-]+\.[A-Za-z]{2,}\b",
    "COMMIT": r"\b[a-f0-9]{12}\b",
    "ENGINEER": r"\bENG-\d+\b",
}


# ---- tools -------------------------------------------------------------------------------------

class SeedRedactor:
    """Lesson listing 02: one re.sub per pattern, numbered tokens."""

    def __init__(self) -> None:
        self.patterns = {k: re.compile(p) for k, p in SEED_PATTERNS.items()}

    def redact(self, text: str) -> str:
        token_for: dict[tuple[str, str], str] = {}
        counters = dict.fromkeys(self.patterns, 0)
        for kind, pattern in self.patterns.items():
            def replace(m: re.Match[str], kind: str = kind) -> str:
                key = (kind, m.group(0))
                if key not in token_for:
                    counters[kind] += 1
                    token_for[key] = f"<{kind}_{counters[kind]}>"
                return token_for[key]
            text = pattern.sub(replace, text)
        return text

    def spans(self, text: str) -> list[Span]:
        found = []
        for kind, pattern in self.patterns.items():
            found.extend((m.start(), m.end(), kind) for m in pattern.finditer(text))
        return found


class PerPatternRedactor:
    """The seed's approach scaled to this project's detectors: one re.sub per pattern, in
    priority order, each replacement validated; what a straightforward port would do."""

    def __init__(self, deny_terms: Sequence[str]) -> None:
        deny = deny_pattern(deny_terms)
        self.detectors = sorted(DETECTORS, key=lambda d: -d.priority)
        self.deny = deny

    def redact(self, text: str) -> str:
        token_for: dict[tuple[str, str], str] = {}
        counters: dict[str, int] = {}

        def token(kind: str, value: str) -> str:
            key = (kind, value)
            if key not in token_for:
                counters[kind] = counters.get(kind, 0) + 1
                token_for[key] = f"<{kind}_{counters[kind]}>"
            return token_for[key]

        for det in self.detectors:
            def replace(m: re.Match[str], det=det) -> str:
                start, end = det.value_span(m)
                value = m.string[start:end]
                if start < 0 or (det.validate is not None and not det.validate(value, False)):
                    return m.group(0)
                whole = m.group(0)
                offset = start - m.start()
                return whole[:offset] + token(det.kind, value) + whole[offset + len(value):]
            text = det.pattern.sub(replace, text)
        if self.deny is not None:
            text = self.deny.sub(lambda m: token("NAME", m.group(0).casefold()), text)
        return text


def make_scrubadub() -> tuple[Callable[[str], list[Span]], Callable[[str], str]] | str:
    try:
        import scrubadub
        import scrubadub.detectors
    except ImportError as exc:
        return f"not installed ({exc.name})"
    scrubber = scrubadub.Scrubber()
    scrubber.add_detector(scrubadub.detectors.UserSuppliedFilthDetector([
        {"match": term, "filth_type": "name", "ignore_case": True,
         "ignore_partial_word_matches": True} for term in DENY_TERMS]))

    def spans(text: str) -> list[Span]:
        return [(f.beg, f.end, f.type.upper()) for f in scrubber.iter_filth(text)]

    return spans, scrubber.clean


def make_presidio() -> tuple[Callable[[str], list[Span]], Callable[[str], str]] | str:
    try:
        from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
        from presidio_anonymizer import AnonymizerEngine
    except ImportError as exc:
        return f"not installed ({exc.name})"

    class EmptyNlpEngine(NlpEngine):
        """Loads no model: every text gets empty NLP artifacts, so only regexes can match."""

        def load(self) -> None:
            pass

        def is_loaded(self) -> bool:
            return True

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            return NlpArtifacts(entities=[], tokens=[], tokens_indices=[], lemmas=[],
                                nlp_engine=self, language=language)

        def process_batch(self, texts, language, batch_size=1, n_process=1, **kwargs):
            for text in texts:
                yield text, self.process_text(text, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return False

        def is_punct(self, word: str, language: str) -> bool:
            return False

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    nlp = EmptyNlpEngine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    registry.recognizers = [r for r in registry.recognizers if isinstance(r, PatternRecognizer)]
    registry.add_recognizer(PatternRecognizer(supported_entity="PERSON",
                                              deny_list=list(DENY_TERMS)))
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    anonymizer = AnonymizerEngine()

    def spans(text: str) -> list[Span]:
        return [(r.start, r.end, r.entity_type) for r in analyzer.analyze(text, language="en")]

    def redact(text: str) -> str:
        results = analyzer.analyze(text, language="en")
        return anonymizer.anonymize(text=text, analyzer_results=results).text

    return spans, redact


# ---- measurements ------------------------------------------------------------------------------

def cpu_rate(fn: Callable[[], object], n_bytes: int, n_items: int, repeat: int = 3
             ) -> tuple[float, float]:
    """Best of `repeat` runs: (MB/s, items/s) in CPU time of this process."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return n_bytes / 1e6 / best, n_items / best


def accuracy_table(texts: list[str], gold: list[list[Span]], tools: dict) -> pd.DataFrame:
    columns = {}
    for name, (spans_fn, strict) in tools.items():
        predicted = [spans_fn(t) for t in texts]
        scores = score_spans(gold, predicted, kinds_must_match=strict)
        if not strict:
            scores = _loose_precision(gold, predicted, scores)
        scores = scores.set_index("kind")
        columns[(name, "recall")] = scores["recall"].reindex(ENTITY_KINDS)
        columns[(name, "precision")] = scores["precision"].reindex(ENTITY_KINDS)
        overall = _overall(gold, predicted, strict)
        columns[(name, "recall")]["ALL"] = overall[0]
        columns[(name, "precision")]["ALL"] = overall[1]
    return pd.DataFrame(columns)


def _loose_precision(gold, predicted, scores: pd.DataFrame) -> pd.DataFrame:
    """Precision by planted kind for tools with other kind names: each predicted span is
    credited to the planted value it overlaps; spans overlapping nothing are false positives
    spread over no planted kind (they show in the ALL row)."""
    hits: dict[str, int] = {}
    flagged: dict[str, int] = {}
    for g, p in zip(gold, predicted, strict=True):
        for ps, pe, _ in p:
            kinds = [gk for gs, ge, gk in g if ps < ge and gs < pe]
            for kind in set(kinds):
                hits[kind] = hits.get(kind, 0) + 1
                flagged[kind] = flagged.get(kind, 0) + 1
    scores = scores.copy()
    scores["precision"] = [hits.get(k, 0) / flagged[k] if flagged.get(k) else float("nan")
                           for k in scores["kind"]]
    return scores


def _overall(gold, predicted, strict: bool) -> tuple[float, float]:
    planted = found = flagged = correct = 0
    for g, p in zip(gold, predicted, strict=True):
        planted += len(g)
        found += sum(any(ps <= gs and pe >= ge and (pk == gk or not strict)
                         for ps, pe, pk in p) for gs, ge, gk in g)
        flagged += len(p)
        correct += sum(any(ps < ge and gs < pe and (pk == gk or not strict)
                           for gs, ge, gk in g) for ps, pe, pk in p)
    return found / planted, (correct / flagged if flagged else float("nan"))


def memory_child(n_traces: int, batch: int) -> None:
    """Stream n traces through the redactor in batches; print the peak RSS in MB."""
    redactor = Redactor(DENY_TERMS, corpus_key=b"bench-corpus-key-0123456789abcdef")
    stream = iter_texts(n_traces, seed=99)
    done = 0
    start = time.process_time()
    n_bytes = 0

    def batches():
        nonlocal done, n_bytes
        while done < n_traces:
            texts = [next(stream) for _ in range(min(batch, n_traces - done))]
            frame = make_trace_frame(texts, seed=done, id_prefix=f"b{done}")
            n_bytes += sum(len(t) for t in texts)
            done += len(texts)
            yield frame

    rows = tokens = 0
    for redacted, vault in redactor.redact_trace_batches(batches()):
        rows += len(redacted)
        tokens += len(vault)
    elapsed = time.process_time() - start
    print(f"{rows} {tokens} {peak_rss_mb():.1f} {elapsed:.2f} {n_bytes}")


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork and exec, so a child would report the (large) bench process's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_runs(sizes: Sequence[int]) -> pd.DataFrame:
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)],
                             capture_output=True, text=True, check=True).stdout.split()
        traces, tokens, peak, elapsed, n_bytes = (int(out[0]), int(out[1]), float(out[2]),
                                                  float(out[3]), int(out[4]))
        rows.append({"traces": traces, "vault_rows": tokens, "peak_rss_mb": peak,
                     "cpu_s (incl. generation)": elapsed, "context_mb": n_bytes / 1e6})
    return pd.DataFrame(rows)


# ---- main --------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="labelled accuracy texts")
    parser.add_argument("--throughput-texts", type=int, default=4000)
    parser.add_argument("--baseline-texts", type=int, default=300,
                        help="texts for the slow baselines' throughput")
    parser.add_argument("--traces", type=int, default=2000, help="traces for redact_traces")
    parser.add_argument("--million", action="store_true", help="add the 10^6-trace memory run")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="best of N for fast tools")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--issue17-only", action="store_true",
                        help="only the issue-17 table: recall per family, precision on decoys, "
                        "MB/s per core with known-value propagation on and off")
    parser.add_argument("--family-samples", type=int, default=300,
                        help="held-out fragments per family for the issue-17 table")
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, 2000)
        return
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)

    ours = Redactor(DENY_TERMS, corpus_key=b"bench-corpus-key-0123456789abcdef")
    if args.issue17_only:
        issue17_table(ours, args)
        return
    ours_python = Redactor(DENY_TERMS, engine="python",
                           corpus_key=b"bench-corpus-key-0123456789abcdef")
    seed = SeedRedactor()
    scrub = make_scrubadub()
    presidio = make_presidio()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"load average (shared machine): {load}")
    print(f"engine: {ours.engine}; scrubadub: "
          f"{'ok' if not isinstance(scrub, str) else scrub}; presidio: "
          f"{'ok' if not isinstance(presidio, str) else presidio}\n")

    # accuracy
    texts, gold = make_labelled_corpus(args.texts, seed=2026)
    size = sum(len(t.encode()) for t in texts)
    print(f"## Accuracy: {len(texts)} labelled texts, {size / 1e6:.2f} MB, "
          f"{sum(map(len, gold))} planted values ({sum(map(len, gold)) / size * 1000:.1f}/KB)")
    tools = {"redactor": (lambda t: [(s, e, k) for s, e, k, _, _ in ours.detect(t)], True),
             "seed": (seed.spans, True)}
    if not isinstance(scrub, str):
        tools["scrubadub"] = (scrub[0], False)
    if not isinstance(presidio, str):
        tools["presidio"] = (presidio[0], False)
    table = accuracy_table(texts, gold, tools)
    print(table.round(3).to_string(na_rep="-"))
    missing = [k for k in ("scrubadub", "presidio") if k not in tools]
    if missing:
        print(f"(not measured: {', '.join(missing)})")
    print()

    # throughput
    real = list(iter_texts(args.throughput_texts, seed=7))
    real_bytes = sum(len(t.encode()) for t in real)
    small = real[:args.baseline_texts]
    small_bytes = sum(len(t.encode()) for t in small)
    density = sum(len(s) for _, s in iter_texts(args.throughput_texts, seed=7, labelled=True))
    print(f"## Throughput (CPU time, one core): realistic mix, {len(real)} texts, "
          f"{real_bytes / 1e6:.1f} MB, {density / real_bytes * 1000:.1f} values/KB; "
          f"slow tools on the first {len(small)} texts")
    rows = []

    def add(name: str, fn: Callable[[list[str]], object], sample: list[str], n_bytes: int,
            repeat: int = args.repeat) -> None:
        mbs, per_s = cpu_rate(lambda: fn(sample), n_bytes, len(sample), repeat)
        rows.append({"tool": name, "MB/s": mbs, "texts/s": per_s})

    add("redactor (hyperscan, stable tokens)", ours.redact_texts, real, real_bytes)
    add("redactor (pure python, stable tokens)", ours_python.redact_texts, small, small_bytes, 1)
    add("seed listing 02: 3 patterns, one re.sub each", lambda ts: [seed.redact(t) for t in ts],
        real, real_bytes)
    per_pattern = PerPatternRedactor(DENY_TERMS)
    add("seed approach, this project's patterns", lambda ts: [per_pattern.redact(t) for t in ts],
        small, small_bytes, 1)
    if not isinstance(scrub, str):
        add("scrubadub", lambda ts: [scrub[1](t) for t in ts], small, small_bytes, 1)
    if not isinstance(presidio, str):
        add("presidio (pattern recognizers only)", lambda ts: [presidio[1](t) for t in ts],
            small, small_bytes, 1)
    speed = pd.DataFrame(rows)
    seed_rate = speed.loc[speed["tool"].str.startswith("seed approach"), "MB/s"].iloc[0]
    seed3_rate = speed.loc[speed["tool"].str.startswith("seed listing"), "MB/s"].iloc[0]
    speed["x seed approach"] = speed["MB/s"] / seed_rate
    speed["x seed listing 02"] = speed["MB/s"] / seed3_rate
    print(speed.round(2).to_string(index=False))

    frame = make_trace_frame(real[:args.traces], seed=3)
    trace_bytes = _trace_bytes(frame)
    mbs, per_s = cpu_rate(lambda: ours.redact_traces(frame), trace_bytes, len(frame), args.repeat)
    print(f"\nredact_traces with stable tokens: {len(frame)} traces, {trace_bytes / 1e6:.1f} MB "
          f"of text -> {mbs:.1f} MB/s, {per_s:,.0f} traces/s ({mbs / seed_rate:.1f}x the seed "
          f"approach, {mbs / seed3_rate:.1f}x seed listing 02)\n")

    residue_table(ours, real, args)
    issue17_table(ours, args)

    if not args.no_memory:
        sizes = [10**4, 10**5] + ([10**6] if args.million else [])
        print("## Peak memory, streaming redact_trace_batches (batches of 2,000 traces)")
        print(memory_runs(sizes).round(2).to_string(index=False))


def issue17_table(ours: Redactor, args: argparse.Namespace) -> None:
    """Issue 17: recall per public-scanner family on held-out generated values (fresh seed),
    precision on the labelled corpus and on benign look-alikes (decoy fragments, where every
    flag is a false positive), and throughput (CPU time, one core) of `redact_texts` and of
    `redact_traces` with known-value propagation on, beside the same with it off."""
    rows = []
    for family in FAMILIES:
        kind = family_kind(family)
        samples = family_samples(family, args.family_samples, seed=90210)
        planted = found = flagged = correct = 0
        for text, spans in samples:
            detected = [(s, e, k) for s, e, k, _, _ in ours.detect(text)]
            for gs, ge, gk in spans:
                if gk == kind:
                    planted += 1
                    found += any(ps <= gs and pe >= ge and pk == kind for ps, pe, pk in detected)
            for ps, pe, pk in detected:
                if pk == kind:
                    flagged += 1
                    correct += any(ps < ge and gs < pe and gk == kind for gs, ge, gk in spans)
        rows.append({"family": family, "kind": kind, "planted": planted,
                     "recall": found / planted if planted else float("nan"),
                     "precision": correct / flagged if flagged else float("nan")})
    table = pd.DataFrame(rows)
    print(f"## Issue 17: held-out values per family ({args.family_samples} fragments each)")
    print(table.round(4).to_string(index=False))
    decoys = decoy_samples(2000, seed=4242)
    false_flags = sum(len(ours.detect(t)) for t in decoys)
    residue = sum(bool(find_residue_many([t], DENY_TERMS)[0]) for t in decoys)
    print(f"decoy fragments: {len(decoys)}, redactor flags on them: {false_flags}, residue "
          f"flags: {residue}")
    texts, gold = make_labelled_corpus(args.texts, seed=17017)
    scores = score_spans(gold, [[(s, e, k) for s, e, k, _, _ in x]
                                for x in ours.detect_many(texts)]).set_index("kind")
    correct, flagged = scores["correct"].sum(), scores["flagged"].sum()
    worst = scores["recall"].idxmin()
    print(f"labelled corpus ({len(texts)} texts, seed 17017): overall precision "
          f"{correct / flagged:.4f}; min recall {scores['recall'].min():.4f} ({worst}); min "
          f"precision {scores['precision'].min():.4f} ({scores['precision'].idxmin()})")
    real = list(iter_texts(args.throughput_texts, seed=7))
    real_bytes = sum(len(t.encode()) for t in real)
    frame = make_trace_frame(real[:args.traces], seed=3)
    trace_bytes = _trace_bytes(frame)
    off = Redactor(DENY_TERMS, corpus_key=b"bench-corpus-key-0123456789abcdef", propagate=False)
    speed = []
    for name, redactor in (("propagation on", ours), ("propagation off", off)):
        mbs, _ = cpu_rate(lambda r=redactor: r.redact_texts(real), real_bytes, len(real),
                          args.repeat)
        tmbs, tps = cpu_rate(lambda r=redactor: r.redact_traces(frame), trace_bytes, len(frame),
                             args.repeat)
        speed.append({"redactor": name, "redact_texts MB/s/core": mbs,
                      "redact_traces MB/s/core": tmbs, "traces/s": tps})
    print(f"throughput: {real_bytes / 1e6:.1f} MB realistic mix; {len(frame)} traces, "
          f"{trace_bytes / 1e6:.1f} MB (CPU time, one core)")
    print(pd.DataFrame(speed).round(1).to_string(index=False))
    print()


def residue_table(ours: Redactor, real: list[str], args: argparse.Namespace) -> None:
    """Throughput of the independent residue scan over already-redacted text, the way the
    blocking checks call it (a list of texts, or an Arrow column), against the same rules run
    without Hyperscan (one `re.finditer` per rule per text: the scanner's fallback path)."""
    redacted = ours.redact_texts(real)
    n_bytes = sum(len(t.encode()) for t in redacted)
    column = pa.array(redacted)
    small = redacted[:args.baseline_texts]
    small_bytes = sum(len(t.encode()) for t in small)
    scanner = core._residue_scanner(tuple(core._clean_terms(DENY_TERMS)))
    rows = []
    for name, fn, size, count, repeat in [
        ("find_residue_many (list of str)", lambda: find_residue_many(redacted, DENY_TERMS),
         n_bytes, len(redacted), args.repeat),
        ("residue_flags (list of str)", lambda: residue_flags(redacted, DENY_TERMS),
         n_bytes, len(redacted), args.repeat),
        ("residue_flags (Arrow string column)", lambda: residue_flags(column, DENY_TERMS),
         n_bytes, len(redacted), args.repeat),
        ("same rules, no Hyperscan (re.finditer per rule)",
         lambda: [scanner._scan_python(core._nfc(t)) for t in small], small_bytes, len(small), 1),
    ]:
        mbs, per_s = cpu_rate(fn, size, count, repeat)
        rows.append({"residue scan": name, "MB/s": mbs, "texts/s": per_s})
    table = pd.DataFrame(rows)
    table["x no-Hyperscan rules"] = table["MB/s"] / table["MB/s"].iloc[-1]
    print(f"## Residue scan over the redacted realistic mix ({n_bytes / 1e6:.1f} MB, "
          f"{len(redacted)} texts; the baseline on the first {len(small)})")
    print(table.round(2).to_string(index=False))
    print()


def _trace_bytes(frame: pd.DataFrame) -> int:
    total = 0
    for column in ("prompt", "context", "approved_answer", "extra_json"):
        total += sum(len(v.encode()) for v in frame[column] if isinstance(v, str))
    for cands in frame["candidates"]:
        for c in cands:
            total += len(c["text"].encode()) + len(c["generation"].encode())
    return total


if __name__ == "__main__":
    main()
