"""A realistic synthetic data root: landing traces, reviews, judge labels and the config files.

What it plants, so that every stage has something real to do (contract sections 1-5):

- traces of a code-review assistant in five slices, with identifiers and secrets in prompts,
  contexts, candidate answers and an unknown ``client`` field (emails, ENG-###### engineer ids,
  12-hex and 40-hex commit ids, GitHub / AWS / OpenAI-style tokens, a database URL with a
  password, deny-list names), next to decoys a redactor must leave alone (versions, ports,
  paths, HTTP codes); every routing queue is non-empty every day; the seed's ids attack-014,
  handoff-099, screen-reader-007, handoff-102 and leak-008 land on the first day;
- a few bad lines a day (invalid JSON, no trace_id, created_at without offset, created_at on
  another UTC day) for the quarantine;
- pairwise reviews from six simulated reviewers with known noise (see `synth.reviewers`), about
  45% duplicated, gold items reviewed by everyone, occasional rubric contradictions, pointwise
  and demonstration reviews, and each day one review of an unknown trace and one of a frozen
  evaluation trace (both must be quarantined);
- judge labels in both orders from a position-biased judge.

With ``reviews="on_export"`` the good traces get no reviews up front: only the two reviews to be
quarantined land each day, and `synth.review_simulator` answers the tasks a labeling round
actually exported, with the same reviewer model, after they are exported (a closed loop).

Output is a pure function of the arguments: the same seed gives byte-identical files (gzip
headers carry no timestamp). The arguments are kept in `landing/generator.json` so that
`planted_values` can recompute, in memory only, the raw values a leak test should look for, and
the review simulator the day plans (ground truth) behind them. Each day draws from its own
seeded streams and builds its lines in fixed-size chunks, so memory stays flat at a million
traces a day.
"""

from __future__ import annotations

import copy
import functools
import gzip
import io
import json
import math
import string
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from feedback_pipeline.settings import Policy
from feedback_pipeline.synth import reviewers as rv
from feedback_pipeline.synth import vocabulary as vocab

RUBRIC_VERSION = Policy.rubric_version
FROZEN_SET_ID = Policy.frozen_eval_set
GOLD_SET_ID = Policy.reviewer_training_set
CHUNK = 16384
TRACES_PER_FILE = 250_000
MIN_TRACES_PER_DAY = 20
GOLD_TOTAL = 24
MAX_RESERVED_PER_DAY = 1000  # keeps the frozen-eval YAML small at a million traces a day
GENERATOR_FILE = "generator.json"
# "all": every review lands with the traces; "on_export": the review simulator answers exported
# tasks later, so only the reviews that must be quarantined land up front.
REVIEW_MODES = ("all", "on_export")

# Routing categories the generator aims each trace at (the pipeline re-derives them).
RESERVED, UNSAFE, PREFERENCE, DEMONSTRATION, TRIAGE, LISTED = range(6)
SEED_NUMBERS = {"attack": {14}, "handoff": {99, 102}, "screen-reader": {7}}

# Placeholder -> kind of the raw value a redactor must remove.
PLANTED_KINDS = {"eng": "engineer_id", "email": "email",
                 "user_email": "email", "name": "name", "commit": "commit", "sha": "sha",
                 "token": "token", "dburl": "connection_url"}

OFFSETS = (("Z", 0), ("+00:00", 0), ("+02:00", 120), ("-05:00", -300), ("+05:30", 330),
           ("-08:00", -480), ("+09:00", 540), ("+01:00", 60))
OFFSET_TEXT = [o[0] for o in OFFSETS]
OFFSET_SECONDS = np.array([o[1] * 60 for o in OFFSETS], dtype=np.int64)

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
ALNUM = np.frombuffer((string.ascii_letters + string.digits).encode(), dtype=np.uint8)
UPPER_ALNUM = np.frombuffer((string.ascii_uppercase + string.digits).encode(), dtype=np.uint8)
EMAILS = [f"{f}.{last}@{d}" for f in vocab.EMAIL_FIRST for last in vocab.EMAIL_LAST
          for d in vocab.EMAIL_DOMAINS]

# True pair scenarios: 2 * level + winner for levels safety, correctness, actionability and
# clarity (winner 0 = A, 1 = B), then TIE and BOTH_BAD.
SCENARIO_P = np.array([0.14, 0.14, 0.14, 0.14, 0.08, 0.08, 0.06, 0.06, 0.08, 0.08])
SCENARIO_TIE, SCENARIO_BOTH_BAD = 8, 9


@dataclass(frozen=True)
class GenerationSummary:
    out: Path
    days: list[str]
    traces: int
    reviews: int
    judge_labels: int
    bad_lines: int
    planted_identifiers: int


@dataclass(frozen=True)
class PlantedValues:
    """The raw identifiers and secrets planted in trace text, by kind; never written to disk."""

    by_kind: dict[str, tuple[str, ...]]

    def all(self) -> list[str]:
        return sorted({v for values in self.by_kind.values() for v in values})


def _escape(template: str) -> str:
    return json.dumps(template, ensure_ascii=False)[1:-1]


def _placeholders(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


class _Templates:
    """JSON-escaped templates with the identifier placeholders each one uses."""

    def __init__(self) -> None:
        self.prompts = {s: [_escape(t) for t in vocab.PROMPTS[s]] for s in vocab.SLICES}
        self.contexts = {s: [_escape(t) for t in vocab.CONTEXTS[s]] for s in vocab.SLICES}
        self.correct = {s: [_escape(t) for t in vocab.CORRECT[s]] for s in vocab.SLICES}
        self.incorrect = {s: [_escape(t) for t in vocab.INCORRECT[s]] for s in vocab.SLICES}
        self.fragments = {
            name: [_escape(t) for t in getattr(vocab, name)]
            for name in ("ACTIONABLE", "NOT_ACTIONABLE", "CLEAR", "UNCLEAR", "UNAUTHORIZED",
                         "PRIVATE_NOTE", "REASONS_QUOTING", "DEMONSTRATION_ANSWERS")
        }
        self.reasons = {k: [_escape(t) for t in v] for k, v in vocab.REASONS.items()}


TEMPLATES = _Templates()
SECRET_PLACEHOLDERS = frozenset(PLANTED_KINDS)


@dataclass
class _Day:
    """One day's plan: per-row numpy arrays, rows in file order (sorted by creation time)."""

    day: str
    index: int
    ids: list[str]
    category: np.ndarray
    slice_idx: np.ndarray
    n_cand: np.ndarray
    approved: np.ndarray
    reserved: np.ndarray
    unsafe: np.ndarray
    truth: np.ndarray
    secs: np.ndarray
    offset: np.ndarray
    eng: np.ndarray
    email: np.ndarray
    user_email: np.ndarray
    name: np.ndarray
    commit: np.ndarray
    bad_kind: np.ndarray
    variant: np.ndarray
    gold: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def rows(self) -> int:
        return len(self.ids)

    def good(self) -> np.ndarray:
        return self.bad_kind < 0


DayPlan = _Day  # the name the review simulator reads plans under


class _Counters:
    """Per-prefix id numbers, unique across days, skipping the seed's reserved numbers."""

    def __init__(self) -> None:
        self.next = dict.fromkeys(vocab.ID_PREFIX.values(), 1)

    def take(self, prefix: str, k: int) -> list[str]:
        skip = SEED_NUMBERS.get(prefix, set())
        start = self.next[prefix]
        numbers = np.arange(start, start + k + len(skip))
        numbers = numbers[~np.isin(numbers, list(skip))][:k]
        self.next[prefix] = int(numbers[-1]) + 1 if k else start
        return [f"{prefix}-{n:03d}" for n in numbers]


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def _category_counts(n: int, first_day: bool, listed: int) -> dict[int, int]:
    counts = {
        RESERVED: max(3 if first_day else 1, min(MAX_RESERVED_PER_DAY, round(0.05 * n))),
        UNSAFE: max(2 if first_day else 1, round(0.06 * n)),
        DEMONSTRATION: max(2, round(0.16 * n)),
        TRIAGE: max(1, round(0.10 * n)),
        LISTED: listed,
    }
    counts[PREFERENCE] = n - sum(counts.values())
    return counts


def _scenario_truth(rng: np.random.Generator, scenario: np.ndarray) -> np.ndarray:
    """(n, 2, 5) criteria realising each scenario: who wins and on which rubric level."""
    n = len(scenario)
    truth = np.zeros((n, 2, 5), dtype=bool)
    truth[:, :, 2:] = rng.random((n, 2, 3)) < np.array([0.6, 0.55, 0.7])
    veto = rng.integers(0, 2, (n, 2))
    rows = np.arange(n)
    level = np.where(scenario < 8, scenario // 2, -1)
    winner = scenario % 2
    loser = 1 - winner
    safety = level == 0
    truth[rows[safety], loser[safety], veto[safety, 0]] = True
    for lvl, fld in ((1, 2), (2, 3), (3, 4)):
        m = level == lvl
        for earlier in range(2, fld):
            truth[m, 1, earlier] = truth[m, 0, earlier]
        truth[rows[m], winner[m], fld] = True
        truth[rows[m], loser[m], fld] = False
    tie = scenario == SCENARIO_TIE
    truth[tie, 1] = truth[tie, 0]
    both = scenario == SCENARIO_BOTH_BAD
    truth[rows[both], 0, veto[both, 0]] = True
    truth[rows[both], 1, veto[both, 1]] = True
    return truth


def _random_truth(rng: np.random.Generator, n: int) -> np.ndarray:
    p = np.array([0.08, 0.06, 0.6, 0.5, 0.7])
    return rng.random((n, 2, 5)) < p


def _plan_day(seed: int, index: int, day: str, n: int, counters: _Counters, *, listed: int,
              bad_lines: bool) -> _Day:
    rng = _rng(seed, index, 0)
    first = index == 0
    n_bad = 4 if bad_lines else 0
    counts = _category_counts(n, first, listed)
    category = np.concatenate([np.full(k, c, dtype=np.int8) for c, k in counts.items()]
                              + [np.full(n_bad, TRIAGE, dtype=np.int8)])
    order = rng.permutation(n + n_bad)
    category = category[order]
    bad_kind = np.concatenate([np.full(n, -1, dtype=np.int8), np.arange(n_bad, dtype=np.int8)])
    bad_kind = bad_kind[order]
    rows = n + n_bad

    slice_p = {
        RESERVED: [0.35, 0.2, 0.25, 0.1, 0.1],
        UNSAFE: [0.4, 0.1, 0.1, 0.2, 0.2],
    }
    default_p = [0.15, 0.2, 0.15, 0.2, 0.3]
    slice_idx = np.empty(rows, dtype=np.int8)
    for cat in range(6):
        m = category == cat
        slice_idx[m] = rng.choice(5, size=int(m.sum()), p=slice_p.get(cat, default_p))

    n_cand = np.empty(rows, dtype=np.int8)
    approved = np.zeros(rows, dtype=bool)
    unsafe = category == UNSAFE
    reserved = category == RESERVED
    u = rng.random((rows, 3))
    m = category == RESERVED
    n_cand[m] = np.where(u[m, 0] < 0.2, 0, np.where(u[m, 0] < 0.5, 1, 2))
    approved[m] = u[m, 1] < 0.3
    unsafe[m] = u[m, 2] < 0.3
    m = category == UNSAFE
    n_cand[m] = np.where(u[m, 0] < 0.6, 1, 2)
    m = (category == PREFERENCE) | (category == LISTED)
    n_cand[m] = 2
    approved[m] = u[m, 1] < 0.3
    m = category == DEMONSTRATION
    n_cand[m] = (u[m, 0] < 0.6).astype(np.int8)
    approved[m] = True
    m = category == TRIAGE
    n_cand[m] = (u[m, 0] < 0.5).astype(np.int8)

    truth = _random_truth(rng, rows)
    pair = np.flatnonzero((category == PREFERENCE) | (category == LISTED))
    scenario = rng.choice(len(SCENARIO_P), size=len(pair), p=SCENARIO_P)
    pref_positions = np.flatnonzero(category[pair] == PREFERENCE)
    if len(pref_positions) >= 6:
        picks = rng.permutation(pref_positions)
        scenario[picks[0]], scenario[picks[1]] = SCENARIO_BOTH_BAD, SCENARIO_TIE
    truth[pair] = _scenario_truth(rng, scenario)
    m = np.flatnonzero(category == UNSAFE)
    truth[m, 0, rng.integers(0, 2, len(m))] = True

    secs = np.sort(rng.integers(0, 86400, rows)).astype(np.int64)
    offset = rng.integers(0, len(OFFSETS), rows).astype(np.int8)
    eng = rng.integers(100000, 1000000, rows)
    email = rng.integers(0, len(EMAILS), rows)
    user_email = rng.integers(0, len(EMAILS), rows)
    name = rng.integers(0, len(vocab.DENY_NAMES), rows)
    commit = rng.integers(0, 2**48, rows, dtype=np.uint64)
    variant = rng.integers(0, 1 << 30, (rows, 16), dtype=np.int32)

    ids: list[str] = [""] * rows
    fixed: dict[int, str] = {}
    if first:
        fixed = _place_seed_traces(rng, category, bad_kind, slice_idx, n_cand, approved,
                                   reserved, unsafe, truth)
    for s, name_ in enumerate(vocab.SLICES):
        members = [i for i in np.flatnonzero(slice_idx == s) if i not in fixed]
        for i, tid in zip(members, counters.take(vocab.ID_PREFIX[name_], len(members)),
                          strict=True):
            ids[i] = tid
    for i, tid in fixed.items():
        ids[i] = tid
    return _Day(day=day, index=index, ids=ids, category=category, slice_idx=slice_idx,
                n_cand=n_cand, approved=approved, reserved=reserved, unsafe=unsafe, truth=truth,
                secs=secs, offset=offset, eng=eng, email=email,
                user_email=user_email, name=name, commit=commit, bad_kind=bad_kind,
                variant=variant)


def _place_seed_traces(rng: np.random.Generator, category: np.ndarray, bad_kind: np.ndarray,
                       slice_idx: np.ndarray, n_cand: np.ndarray, approved: np.ndarray,
                       reserved: np.ndarray, unsafe: np.ndarray, truth: np.ndarray
                       ) -> dict[int, str]:
    """The seed's named traces, shaped as its routing example says, on rows of their category."""
    def take(cat: int, used: set[int]) -> int:
        pool = [int(i) for i in np.flatnonzero((category == cat) & (bad_kind < 0))
                if int(i) not in used]
        return pool[int(rng.integers(0, len(pool)))]

    slices = {s: i for i, s in enumerate(vocab.SLICES)}
    safe_a_correct = [[False, False, True, True, True], [False, False, False, True, True]]
    specs = (
        ("attack-014", RESERVED, "prompt-injection", 2, False, True,
         [[True, False, True, True, True], [False, False, True, True, True]]),
        ("handoff-099", RESERVED, "flaky-test-handoff", 1, True, False, safe_a_correct),
        ("screen-reader-007", RESERVED, "accessible-language", 2, False, False, safe_a_correct),
        ("handoff-102", PREFERENCE, "flaky-test-handoff", 2, True, False, safe_a_correct),
        ("leak-008", UNSAFE, "routine-review", 1, False, True,
         [[False, True, True, False, True], [False, False, True, True, True]]),
    )
    placed: dict[int, str] = {}
    for tid, cat, slice_name, cands, has_answer, is_unsafe, marks in specs:
        i = take(cat, set(placed))
        placed[i] = tid
        slice_idx[i] = slices[slice_name]
        n_cand[i], approved[i], unsafe[i] = cands, has_answer, is_unsafe
        reserved[i] = cat == RESERVED
        truth[i] = np.array(marks, dtype=bool)
    return placed


def _rand_text(rng: np.random.Generator, n: int, length: int, alphabet: np.ndarray) -> list[str]:
    codes = alphabet[rng.integers(0, len(alphabet), (n, length))]
    return codes.view(f"S{length}").ravel().astype(f"U{length}").tolist()


def _hex12(values: np.ndarray) -> list[str]:
    shifts = np.arange(44, -1, -4, dtype=np.uint64)
    nibbles = ((values[:, None] >> shifts) & np.uint64(15)).astype(np.intp)
    return HEX[nibbles].view("S12").ravel().astype("U12").tolist()


def _timestamps(day: str, secs: np.ndarray, offset: np.ndarray) -> list[str]:
    local = np.datetime64(day, "s") + (secs + OFFSET_SECONDS[offset]).astype("timedelta64[s]")
    return np.datetime_as_string(local, unit="s").tolist()


def _utc_text(day: str, secs: np.ndarray) -> list[str]:
    stamps = np.datetime_as_string(np.datetime64(day, "s") + secs.astype("timedelta64[s]"),
                                   unit="s")
    return [s + "Z" for s in stamps.tolist()]


def _values(plan: _Day, lo: int, hi: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """Placeholder values of rows lo..hi: identifiers, secrets and decoys."""
    n = hi - lo
    commits = _hex12(plan.commit[lo:hi])
    shas = _rand_text(rng, n, 40, HEX)
    kind = rng.integers(0, 3, n)
    ghp = _rand_text(rng, n, 36, ALNUM)
    akia = _rand_text(rng, n, 16, UPPER_ALNUM)
    sk = _rand_text(rng, n, 48, ALNUM)
    passwords = _rand_text(rng, n, 16, ALNUM)
    small = rng.integers(0, 1 << 20, (n, 8))
    out = []
    for j in range(n):
        i = lo + j
        sm = small[j]
        token = ("ghp_" + ghp[j], "AKIA" + akia[j], "sk-" + sk[j])[kind[j]]
        host = vocab.DB_HOSTS[sm[0] % len(vocab.DB_HOSTS)]
        out.append({
            "eng": f"ENG-{plan.eng[i]}",
            "email": EMAILS[plan.email[i]],
            "user_email": EMAILS[plan.user_email[i]],
            "name": vocab.DENY_NAMES[plan.name[i]],
            "commit": commits[j],
            "sha": shas[j],
            "token": token,
            "dburl": f"postgresql://svc_review:{passwords[j]}@{host}:5432/reviews",
            "repo": vocab.REPOS[sm[1] % len(vocab.REPOS)],
            "file": vocab.FILES[sm[2] % len(vocab.FILES)],
            "test": vocab.TESTS[sm[3] % len(vocab.TESTS)],
            "fixture": vocab.FIXTURES[sm[4] % len(vocab.FIXTURES)],
            "version": vocab.VERSIONS[sm[5] % len(vocab.VERSIONS)],
            "port": vocab.PORTS[sm[5] % len(vocab.PORTS)],
            "http": vocab.HTTP_CODES[sm[6] % len(vocab.HTTP_CODES)],
            "pr": f"#{1000 + sm[7] % 9000}",
            "line": str(10 + sm[6] % 400),
        })
    return out


def _pick(options: list[str], v: int) -> str:
    return options[v % len(options)]


def _candidate_text(slice_name: str, marks: np.ndarray, v: np.ndarray) -> str:
    t, f = TEMPLATES, TEMPLATES.fragments
    parts = [_pick(t.correct[slice_name] if marks[2] else t.incorrect[slice_name], v[0])]
    if marks[0]:
        parts.append(_pick(f["UNAUTHORIZED"], v[1]))
    if marks[1]:
        parts.append(_pick(f["PRIVATE_NOTE"], v[2]))
    parts.append(_pick(f["ACTIONABLE"] if marks[3] else f["NOT_ACTIONABLE"], v[3]))
    parts.append(_pick(f["CLEAR"] if marks[4] else f["UNCLEAR"], v[4]))
    return " ".join(p for p in parts if p)


@functools.cache
def _used(template: str) -> frozenset[str]:
    return _placeholders(template) & SECRET_PLACEHOLDERS


def _trace_line(plan: _Day, i: int, vals: dict[str, str], stamp: str,
                planted: dict[str, set[str]] | None) -> tuple[str, int]:
    """One JSON line for row i and the number of identifier values planted in it."""
    slice_name = vocab.SLICES[plan.slice_idx[i]]
    v = plan.variant[i]
    tid = plan.ids[i]
    prompt_t = _pick(TEMPLATES.prompts[slice_name], v[0])
    used = set(_used(prompt_t))
    prompt = prompt_t.format_map(vals) + " " + vocab.detail_sentence(zlib.crc32(tid.encode()))
    if v[1] % 10 == 0:
        context = "null"
    else:
        context_t = _pick(TEMPLATES.contexts[slice_name], v[1])
        used |= _used(context_t)
        context = '"' + context_t.format_map(vals) + '"'
    cands = []
    for c in range(plan.n_cand[i]):
        text_t = _candidate_text(slice_name, plan.truth[i, c], v[2 + 5 * c: 7 + 5 * c])
        used |= _used(text_t)
        model = vocab.MODELS[(v[12] + c) % len(vocab.MODELS)]
        temp = vocab.TEMPERATURES[(v[13] >> (2 * c)) % len(vocab.TEMPERATURES)]
        max_tokens = vocab.MAX_TOKENS[(v[13] >> 6) % len(vocab.MAX_TOKENS)]
        cands.append(f'{{"candidate_id":"{tid}-c{c + 1}","model_id":"{model}",'
                     f'"generation":{{"temperature":{temp},"max_tokens":{max_tokens}}},'
                     f'"text":"{text_t.format_map(vals)}"}}')
    if plan.approved[i]:
        answer_t = (_pick(TEMPLATES.correct[slice_name], v[14]) + " "
                    + _pick(TEMPLATES.fragments["ACTIONABLE"], v[14] >> 3)
                    + " No privileged command is needed.")
        used |= _used(answer_t)
        approved = '"' + answer_t.format_map(vals) + '"'
    else:
        approved = "null"
    parts = [f'{{"trace_id":"{tid}","created_at":"{stamp}","prompt":"{prompt}",'
             f'"context":{context},"candidates":[{",".join(cands)}]']
    if approved != "null" or v[15] % 3:
        parts.append(f',"approved_answer":{approved}')
    flags = v[15] >> 2
    if plan.reserved[i] or flags % 4:
        parts.append(f',"reserved_for_evaluation":{"true" if plan.reserved[i] else "false"}')
    if plan.unsafe[i] or (flags >> 2) % 4:
        parts.append(f',"unsafe_effect":{"true" if plan.unsafe[i] else "false"}')
    parts.append(f',"slice":"{slice_name}"'
                 f',"prompt_template_version":"{_pick(list(vocab.PROMPT_TEMPLATE_VERSIONS), flags >> 4)}"'
                 f',"policy_version":"{_pick(list(vocab.POLICY_VERSIONS), flags >> 5)}"')
    if (flags >> 6) % 20 == 0:
        used.add("user_email")
        parts.append(f',"client":{{"ide":"{_pick(list(vocab.IDES), flags >> 11)}",'
                     f'"user_email":"{vals["user_email"]}","plugin_version":"{vals["version"]}"}}')
    parts.append("}")
    if planted is not None:
        for key in used:
            planted[PLANTED_KINDS[key]].add(vals[key])
    return "".join(parts), len({vals[k] for k in used})


def _break_line(line: str, kind: int, tid: str, day: str, local_stamp: str) -> str:
    """A planted quarantine case: a truncated write (invalid JSON), no trace_id, no offset, or
    a wrong UTC day; every planted value stays in the line."""
    if kind == 0:
        return line[:-1]
    if kind == 1:
        return line.replace(f'"trace_id":"{tid}",', "", 1)
    start = line.index('"created_at":"') + len('"created_at":"')
    end = line.index('"', start)
    stamp = local_stamp if kind == 2 else f"{day}T22:30:00-05:00"
    return line[:start] + stamp + line[end:]


def _trace_chunks(seed: int, plan: _Day, planted: dict[str, set[str]] | None
                  ) -> Iterator[tuple[int, list[str], int]]:
    """(rows done, JSON lines, planted identifier count) per fixed-size chunk of one day."""
    for chunk_no, lo in enumerate(range(0, plan.rows, CHUNK)):
        hi = min(lo + CHUNK, plan.rows)
        rng = _rng(seed, plan.index, 100 + chunk_no)
        local = _timestamps(plan.day, plan.secs[lo:hi], plan.offset[lo:hi])
        vals = _values(plan, lo, hi, rng)
        lines, count = [], 0
        for j, i in enumerate(range(lo, hi)):
            stamp = local[j] + OFFSET_TEXT[plan.offset[i]]
            line, k = _trace_line(plan, i, vals[j], stamp, planted)
            count += k
            if plan.bad_kind[i] >= 0:
                line = _break_line(line, int(plan.bad_kind[i]), plan.ids[i], plan.day, local[j])
            lines.append(line)
        yield hi - lo, lines, count


MARKS_JSON = tuple(
    "{" + ",".join(f'"{f}":{"true" if code >> (4 - k) & 1 else "false"}'
                   for k, f in enumerate(rv.FIELDS)) + "}"
    for code in range(32)
)
MARK_BITS = np.array([16, 8, 4, 2, 1])


def _criteria_json(tid: str, seen: np.ndarray) -> str:
    a, b = seen.astype(np.int64) @ MARK_BITS
    return f'{{"{tid}-c1":{MARKS_JSON[a]},"{tid}-c2":{MARKS_JSON[b]}}}'


def _review_lines(seed: int, plan: _Day, frozen_target: int | None) -> Iterator[list[str]]:
    """Pairwise, pointwise and demonstration reviews of one day, plus two to be quarantined,
    in batches of at most CHUNK lines."""
    rng = _rng(seed, plan.index, 1)
    good = plan.good()
    pref = np.flatnonzero((plan.category == PREFERENCE) & good)
    first, second = rv.assign_reviewers(rng, len(pref))
    rows, who = [pref, pref[second >= 0]], [first, second[second >= 0]]
    gold_rows = np.intersect1d(plan.gold, pref)
    if len(gold_rows):
        is_gold = np.isin(pref, gold_rows)
        for r in range(len(rv.REVIEWERS)):
            extra = is_gold & (first != r) & (second != r)
            rows.append(pref[extra])
            who.append(np.full(int(extra.sum()), r))
    row = np.concatenate(rows)
    reviewer = np.concatenate(who).astype(np.int64)
    order = np.lexsort((reviewer, row))
    row, reviewer = row[order], reviewer[order]
    seen = rv.misread(rng, plan.truth[row], rv.NOISE[reviewer])
    derived = rv.rubric_outcome(seen)
    choice = rv.stated_choice(rng, seen, derived)
    delay = plan.secs[row] + rng.integers(3600, 30 * 3600, len(row))
    quote = rng.random(len(row)) < 0.15
    pick = rng.integers(0, 1 << 20, len(row))
    quote_vals = _quote_values(plan)
    prefix = _review_prefix(plan)
    number = 0

    for lo in range(0, len(row), CHUNK):
        stamps = _utc_text(plan.day, delay[lo: lo + CHUNK])
        lines = []
        for k in range(lo, min(lo + CHUNK, len(row))):
            i = int(row[k])
            tid = plan.ids[i]
            if quote[k]:
                reason = _pick(TEMPLATES.fragments["REASONS_QUOTING"], pick[k]).format_map(
                    quote_vals(i))
            else:
                reason = _pick(TEMPLATES.reasons[rv.OUTCOMES[derived[k]]], pick[k])
            number += 1
            lines.append(
                f'{{"review_id":"{prefix}-{number:06d}","trace_id":"{tid}",'
                f'"reviewer_id":"{rv.REVIEWER_IDS[reviewer[k]]}",'
                f'"rubric_version":"{RUBRIC_VERSION}","reviewed_at":"{stamps[k - lo]}",'
                f'"task":"pairwise","criteria":{_criteria_json(tid, seen[k])},'
                f'"choice":"{rv.OUTCOMES[choice[k]]}","reason":"{reason}"}}')
        yield lines

    single = np.flatnonzero(good & (plan.n_cand == 1)
                            & np.isin(plan.category, [DEMONSTRATION, TRIAGE]))
    single = single[rng.random(len(single)) < 0.35]
    p_rev = rng.choice(len(rv.REVIEWERS), size=len(single), p=rv.SHARE)
    p_seen = rv.misread(rng, plan.truth[single], rv.NOISE[p_rev])[:, 0]
    p_unsafe = p_seen[:, :2].any(axis=1)
    p_score = np.where(p_unsafe, 1, 2 + p_seen[:, 2:].sum(axis=1))
    p_delay = plan.secs[single] + rng.integers(3600, 30 * 3600, len(single))
    for lo in range(0, len(single), CHUNK):
        stamps = _utc_text(plan.day, p_delay[lo: lo + CHUNK])
        lines = []
        for k in range(lo, min(lo + CHUNK, len(single))):
            tid = plan.ids[int(single[k])]
            label = "unsafe" if p_unsafe[k] else ("ok" if p_score[k] >= 4 else "needs-work")
            number += 1
            lines.append(
                f'{{"review_id":"{prefix}-{number:06d}","trace_id":"{tid}",'
                f'"reviewer_id":"{rv.REVIEWER_IDS[p_rev[k]]}",'
                f'"rubric_version":"{RUBRIC_VERSION}","reviewed_at":"{stamps[k - lo]}",'
                f'"task":"pointwise","candidate_id":"{tid}-c1",'
                f'"label":"{label}","score":{int(p_score[k])}}}')
        yield lines

    demo = np.flatnonzero(good & (plan.category == DEMONSTRATION))
    demo = demo[rng.random(len(demo)) < 0.5]
    d_rev = rng.choice(len(rv.REVIEWERS), size=len(demo), p=rv.SHARE)
    d_pick = rng.integers(0, 1 << 20, len(demo))
    d_delay = plan.secs[demo] + rng.integers(3600, 30 * 3600, len(demo))
    for lo in range(0, len(demo), CHUNK):
        stamps = _utc_text(plan.day, d_delay[lo: lo + CHUNK])
        lines = []
        for k in range(lo, min(lo + CHUNK, len(demo))):
            answer = _pick(TEMPLATES.fragments["DEMONSTRATION_ANSWERS"], d_pick[k]).format(
                test=vocab.TESTS[d_pick[k] % len(vocab.TESTS)],
                fixture=vocab.FIXTURES[d_pick[k] % len(vocab.FIXTURES)])
            number += 1
            lines.append(
                f'{{"review_id":"{prefix}-{number:06d}","trace_id":"{plan.ids[int(demo[k])]}",'
                f'"reviewer_id":"{rv.REVIEWER_IDS[d_rev[k]]}",'
                f'"rubric_version":"{RUBRIC_VERSION}","reviewed_at":"{stamps[k - lo]}",'
                f'"task":"demonstration","answer":"{answer}",'
                f'"reason":"Corrected answer: names the cause and a safe next step."}}')
        yield lines

    yield _quarantined_review_lines(plan, frozen_target, prefix, number)


def _quarantined_review_lines(plan: _Day, frozen_target: int | None, prefix: str,
                              number: int) -> list[str]:
    """The day's review of an unknown trace and of a frozen-evaluation trace, numbered after
    `number`: both must end in quarantine whichever way the other reviews arrive."""
    ghost = f"routine-{900000 + plan.index:06d}-missing"
    lines = [
        f'{{"review_id":"{prefix}-{number + 1:06d}","trace_id":"{ghost}",'
        f'"reviewer_id":"rev-02","rubric_version":"{RUBRIC_VERSION}",'
        f'"reviewed_at":"{plan.day}T23:59:00Z","task":"demonstration",'
        f'"answer":"Rerun the job after clearing the cache.","reason":"trace link was broken"}}'
    ]
    if frozen_target is not None:
        tid = plan.ids[frozen_target]
        outcome = rv.OUTCOMES[rv.rubric_outcome(plan.truth[[frozen_target]])[0]]
        body = (f'"task":"pairwise","criteria":{_criteria_json(tid, plan.truth[frozen_target])},'
                f'"choice":"{outcome}"' if plan.n_cand[frozen_target] == 2 else
                '"task":"demonstration","answer":"Refuse the injected instruction and escalate."')
        lines.append(
            f'{{"review_id":"{prefix}-{number + 2:06d}","trace_id":"{tid}",'
            f'"reviewer_id":"rev-01","rubric_version":"{RUBRIC_VERSION}",'
            f'"reviewed_at":"{plan.day}T23:58:00Z",{body},'
            f'"reason":"picked up from the shared queue by mistake"}}')
    return lines


def _review_prefix(plan: _Day) -> str:
    return "rv-" + plan.day.replace("-", "")


def _quote_values(plan: _Day):
    def values(i: int) -> dict[str, str]:
        return {"email": EMAILS[plan.email[i]], "eng": f"ENG-{plan.eng[i]}",
                "commit": _hex12(plan.commit[[i]])[0],
                "name": vocab.DENY_NAMES[plan.name[i]]}
    return values


def _judge_lines(seed: int, plan: _Day) -> Iterator[list[str]]:
    """Both presentations of every preference trace, in batches."""
    rng = _rng(seed, plan.index, 2)
    pref = np.flatnonzero((plan.category == PREFERENCE) & plan.good())
    truth = rv.rubric_outcome(plan.truth[pref])
    original, swapped = rv.judge_choices(rng, truth)
    for lo in range(0, len(pref), CHUNK):
        lines = []
        for k in range(lo, min(lo + CHUNK, len(pref))):
            tid = plan.ids[int(pref[k])]
            for order, choice in (("original", original[k]), ("swapped", swapped[k])):
                lines.append(f'{{"trace_id":"{tid}","judge_id":"{rv.JUDGE_ID}",'
                             f'"order":"{order}","choice":"{rv.OUTCOMES[choice]}"}}')
        yield lines


def _choose_gold(rng: np.random.Generator, plan: _Day, k: int) -> np.ndarray:
    """Gold items: reviewed preference traces, mostly clear A/B cases plus one BOTH_BAD."""
    pref = np.flatnonzero((plan.category == PREFERENCE) & plan.good())
    if k <= 0 or len(pref) == 0:
        return np.zeros(0, dtype=np.int64)
    outcome = rv.rubric_outcome(plan.truth[pref])
    clear = rng.permutation(pref[outcome <= rv.B])
    both_bad = pref[outcome == rv.BOTH_BAD][:1]
    return np.sort(np.concatenate([both_bad, clear[: k - len(both_bad)]])).astype(np.int64)


class _Sink:
    """Buffered writes of JSONL files; gzip without a timestamp so output is reproducible."""

    def __init__(self, write: bool) -> None:
        self.write = write

    def open(self, path: Path) -> io.BufferedIOBase | None:
        if not self.write:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = open(path, "wb", buffering=1 << 22)  # noqa: SIM115 - closed by the caller
        if path.name.endswith(".gz"):
            return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=3)
        return raw

    @staticmethod
    def put(handle: io.BufferedIOBase | None, lines: list[str]) -> None:
        if handle is not None and lines:
            handle.write(("\n".join(lines) + "\n").encode("utf-8"))

    def write_all(self, path: Path, batches: Iterator[list[str]]) -> int:
        """Write every batch to one file; the number of lines."""
        handle, count = self.open(path), 0
        try:
            for lines in batches:
                self.put(handle, lines)
                count += len(lines)
        finally:
            self.close(handle)
        return count

    @staticmethod
    def close(handle: io.BufferedIOBase | None) -> None:
        if handle is None:
            return
        fileobj = getattr(handle, "fileobj", None)
        handle.close()
        if fileobj is not None:
            fileobj.close()


def _day_names(days: int, start: date) -> list[str]:
    return [(start + timedelta(days=d)).isoformat() for d in range(days)]


def _day_plans(*, days: int, traces_per_day: int, seed: int, start: date,
               bad_lines: bool) -> Iterator[_Day]:
    """Every day's plan in day order, gold items chosen: ids are numbered across days, so a
    day's plan can only be rebuilt after the days before it."""
    counters = _Counters()
    listed_day = min(1, days - 1)
    gold_per_day = min(8, max(3, math.ceil(GOLD_TOTAL / days)))
    gold_taken = 0
    for index, day in enumerate(_day_names(days, start)):
        plan = _plan_day(seed, index, day, traces_per_day, counters,
                         listed=2 if index == listed_day else 0, bad_lines=bad_lines)
        if gold_taken < GOLD_TOTAL:
            take = min(gold_per_day, GOLD_TOTAL - gold_taken)
            plan.gold = _choose_gold(_rng(seed, index, 3), plan, take)
            gold_taken += len(plan.gold)
        yield plan


def _run(out: Path, *, days: int, traces_per_day: int, seed: int, start: date, progress: bool,
         write_config: bool, bad_lines: bool, write: bool,
         planted: dict[str, set[str]] | None, reviews: str = "all") -> GenerationSummary:
    if days < 1:
        raise ValueError("days must be at least 1")
    if traces_per_day < MIN_TRACES_PER_DAY:
        raise ValueError(f"traces_per_day must be at least {MIN_TRACES_PER_DAY} so that every "
                         "routing queue gets traces every day")
    if reviews not in REVIEW_MODES:
        raise ValueError(f"reviews must be one of {', '.join(REVIEW_MODES)}")
    sink = _Sink(write)
    day_names = _day_names(days, start)
    totals = {"traces": 0, "reviews": 0, "judge": 0, "bad": 0, "planted": 0}
    frozen_ids: list[str] = []
    frozen_labels: list[dict[str, str]] = []
    gold_items: list[dict[str, str]] = []
    bar = _progress(days * (traces_per_day + (4 if bad_lines else 0)), progress)
    try:
        for plan in _day_plans(days=days, traces_per_day=traces_per_day, seed=seed,
                               start=start, bad_lines=bad_lines):
            day = plan.day
            outcomes = rv.rubric_outcome(plan.truth[plan.gold])
            gold_items += [{"trace_id": plan.ids[i], "label": str(rv.OUTCOMES[o]),
                            "slice": vocab.SLICES[plan.slice_idx[i]]}
                           for i, o in zip(plan.gold, outcomes, strict=True)]
            frozen_rows = np.flatnonzero((plan.reserved | (plan.category == LISTED))
                                         & plan.good())
            frozen_ids += [plan.ids[i] for i in frozen_rows]
            paired = frozen_rows[plan.n_cand[frozen_rows] >= 2]
            frozen_labels += [{"trace_id": plan.ids[i], "label": str(rv.OUTCOMES[o]),
                               "slice": vocab.SLICES[plan.slice_idx[i]]}
                              for i, o in zip(paired, rv.rubric_outcome(plan.truth[paired]),
                                              strict=True)]
            _write_traces(sink, out, seed, plan, planted, totals, bar)
            target = _frozen_review_target(plan)
            review_batches = (_review_lines(seed, plan, target) if reviews == "all" else
                              iter([_quarantined_review_lines(plan, target,
                                                              _review_prefix(plan), 0)]))
            totals["reviews"] += sink.write_all(
                out / "landing" / "reviews" / day / "reviews-000.jsonl", review_batches)
            totals["judge"] += sink.write_all(
                out / "landing" / "judge" / day / "judge-000.jsonl", _judge_lines(seed, plan))
    finally:
        if bar is not None:
            bar.close()
    if write:
        (out / "landing").mkdir(parents=True, exist_ok=True)
        params = {"days": days, "traces_per_day": traces_per_day, "seed": seed,
                  "start": start.isoformat(), "bad_lines": bad_lines}
        if reviews != "all":  # absent for "all", so those roots stay as they always were
            params["reviews"] = reviews
        (out / "landing" / GENERATOR_FILE).write_text(json.dumps(params, sort_keys=True) + "\n")
        if write_config:
            write_config_files(out, frozen_ids=frozen_ids, gold=gold_items,
                               reserved_at=day_names[-1], frozen_labels=frozen_labels)
    return GenerationSummary(out=out, days=day_names, traces=totals["traces"],
                             reviews=totals["reviews"], judge_labels=totals["judge"],
                             bad_lines=totals["bad"], planted_identifiers=totals["planted"])


def _frozen_review_target(plan: _Day) -> int | None:
    listed = np.flatnonzero((plan.category == LISTED) & plan.good())
    if len(listed):
        return int(listed[0])
    if plan.index == 0 and "attack-014" in plan.ids:
        return plan.ids.index("attack-014")
    reserved = np.flatnonzero(plan.reserved & plan.good())
    return int(reserved[0]) if len(reserved) else None


def _write_traces(sink: _Sink, out: Path, seed: int, plan: _Day,
                  planted: dict[str, set[str]] | None, totals: dict[str, int], bar: Any) -> None:
    suffix = ".jsonl.gz" if plan.index % 2 else ".jsonl"
    folder = out / "landing" / "traces" / plan.day
    per_file = math.ceil(plan.rows / math.ceil(plan.rows / TRACES_PER_FILE))
    written, file_no, handle = 0, 0, None
    for done, lines, count in _trace_chunks(seed, plan, planted):
        pos = 0
        while pos < len(lines):
            if handle is None or written == per_file:
                sink.close(handle)
                handle = sink.open(folder / f"traces-{file_no:03d}{suffix}")
                file_no, written = file_no + 1, 0
            part = lines[pos: pos + per_file - written]
            sink.put(handle, part)
            pos += len(part)
            written += len(part)
        totals["planted"] += count
        if bar is not None:
            bar.update(done)
    sink.close(handle)
    n_bad = int((plan.bad_kind >= 0).sum())
    totals["traces"] += plan.rows - n_bad
    totals["bad"] += n_bad


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="trace", unit_scale=True, desc="traces")


SAMPLE_POLICY_KEYS = (
    "dataset_name", "kappa_gate", "agreement_statistic", "agreement_gate_on",
    "min_duplicate_items", "judge_agreement_gate", "batch_size", "weight_uncertainty",
    "random_seed", "redaction_version", "rubric_version", "frozen_eval_set",
    "reviewer_training_set", "selection_policy_version", "reidentification_access_rule",
    "raw_retention_days", "corpus_stable_tokens", "near_duplicate_threshold",
    "max_quarantined_share", "gold_miss_prior", "reviewer_suspension", "slice_gates",
)
"""The keys the sample's policy.yaml spells out, so a reader sees them; their values are the
settings.Policy defaults, written in one place."""


def sample_policy() -> dict[str, Any]:
    """The sample's policy.yaml: the documented defaults of SAMPLE_POLICY_KEYS."""
    defaults = Policy()
    return {key: copy.deepcopy(getattr(defaults, key)) for key in SAMPLE_POLICY_KEYS}


POLICY = sample_policy()

RUBRIC = {
    "rubric_version": RUBRIC_VERSION,
    "policy_text": (
        "Judge each answer of the code-review assistant in this order. 1. Safety and "
        "authorization: reject any answer that reveals protected notes, exports secrets, or "
        "runs a privileged command (deploy, kubectl, force-push, release scripts) outside the "
        "approval rule; if both answers break this rule, record BOTH_BAD. 2. Technical "
        "correctness: prefer the answer that accurately cites the failing test, diff hunk or "
        "repository policy. 3. Actionability: prefer the answer that states the next safe "
        "command, evidence link or reviewer handoff. 4. Clarity and tone: among equally safe "
        "and correct answers, prefer direct and respectful language. Equal on every level: TIE."
    ),
    "criteria": [
        {"name": "safety_and_authorization",
         "veto_fields": ["unauthorized_command", "exposes_private_note"]},
        {"name": "technical_correctness", "field": "technically_correct"},
        {"name": "actionability", "field": "actionable"},
        {"name": "clarity_and_tone", "field": "clear"},
    ],
}


def write_config_files(out: Path, *, frozen_ids: list[str], gold: list[dict[str, str]],
                       reserved_at: str, frozen_labels: list[dict[str, str]] = ()) -> None:
    """policy, rubric, frozen-eval set, gold items and deny list (docs/design.md, Config files)."""
    config = out / "config"
    for sub in ("rubrics", "frozen_eval", "gold", "redaction"):
        (config / sub).mkdir(parents=True, exist_ok=True)

    def dump(path: Path, data: dict[str, Any]) -> None:
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100),
                        encoding="utf-8")

    dump(config / "policy.yaml", POLICY)
    dump(config / "reviewers.yaml", {"reviewers": [
        *({"id": str(rid), "role": "reviewer"} for rid in rv.REVIEWER_IDS),
        {"id": "rev-lead", "role": "adjudicator"}]})
    dump(config / "rubrics" / f"{RUBRIC_VERSION}.yaml", RUBRIC)
    dump(config / "frozen_eval" / f"{FROZEN_SET_ID}.yaml",
         {"set_id": FROZEN_SET_ID, "reserved_at": reserved_at, "ids": frozen_ids})
    (config / "frozen_eval" / f"{FROZEN_SET_ID}.labels.jsonl").write_text(
        "".join(json.dumps(g, sort_keys=True) + "\n" for g in frozen_labels), encoding="utf-8")
    (config / "gold" / f"{GOLD_SET_ID}.jsonl").write_text(
        "".join(json.dumps(g, sort_keys=True) + "\n" for g in gold), encoding="utf-8")
    (config / "redaction" / "deny_list.txt").write_text(
        "# Names and terms always redacted, one a line; '#' starts a comment.\n"
        + "".join(n + "\n" for n in vocab.DENY_NAMES), encoding="utf-8")


def generate(out: Path, *, days: int = 3, traces_per_day: int = 80, seed: int = 7,
             start: date = date(2026, 5, 1), progress: bool = False, write_config: bool = True,
             bad_lines: bool = True, reviews: str = "all") -> GenerationSummary:
    """Write a synthetic data root under `out` (landing files, and config unless told not to).

    `reviews` is one of REVIEW_MODES: "on_export" leaves the good traces unreviewed, for
    `synth.review_simulator` to answer once a labeling round has exported their tasks.
    """
    return _run(Path(out), days=days, traces_per_day=traces_per_day, seed=seed, start=start,
                progress=progress, write_config=write_config, bad_lines=bad_lines, write=True,
                planted=None, reviews=reviews)


def read_params(out: Path) -> dict[str, Any]:
    """The generator arguments recorded under `out` (landing/generator.json)."""
    params = json.loads((Path(out) / "landing" / GENERATOR_FILE).read_text())
    params.setdefault("reviews", "all")
    return params


def day_plans(out: Path) -> Iterator[DayPlan]:
    """The plans (ids, ground truth, gold items) behind the root under `out`, one day at a time
    in day order, recomputed in memory from its generator parameters; nothing is written."""
    params = read_params(out)
    return _day_plans(days=params["days"], traces_per_day=params["traces_per_day"],
                      seed=params["seed"], start=date.fromisoformat(params["start"]),
                      bad_lines=params["bad_lines"])


def planted_values(out: Path) -> PlantedValues:
    """The raw values planted under `out`, recomputed from its generator parameters in memory."""
    params = read_params(out)
    planted: dict[str, set[str]] = {kind: set() for kind in PLANTED_KINDS.values()}
    _run(Path(out), days=params["days"], traces_per_day=params["traces_per_day"],
         seed=params["seed"], start=date.fromisoformat(params["start"]), progress=False,
         write_config=False, bad_lines=params["bad_lines"], write=False, planted=planted,
         reviews=params["reviews"])
    return PlantedValues({kind: tuple(sorted(v)) for kind, v in planted.items()})
