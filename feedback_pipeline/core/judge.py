"""Holding an LLM judge to account against human gold (seed listing 09).

A judge is shown each pair in its original order and swapped. Swapped choices are mapped back to
the original orientation; a case whose two answers disagree is order-sensitive. Auto-accepting
judge labels is allowed only when every judge meets the declared agreement gate on gold, has
been checked in both orders on every gold item, and never flips.

Several judge_ids are calibrated separately (`by_judge`); the headline `agreement` pools all
(judge, gold item) pairs and `auto_accept_enabled` requires every judge to pass on its own, so
one good judge cannot vouch for a bad one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedback_pipeline.core.contract import curated_json_lines

JUDGE_CHOICES = ("A", "B", "TIE")
ORDERS = ("original", "swapped")
INCONSISTENT = "INCONSISTENT"
_SWAP = {"A": "B", "B": "A", "TIE": "TIE"}


LABEL_KEY = ["trace_id", "judge_id", "order"]


@dataclass(frozen=True)
class JudgeRepeats:
    """What `one_label_per_key` found among a day's judge labels."""

    dropped: int  # identical repeats dropped
    contradicted: int  # (trace, judge, order) keys whose labels name different choices


def one_label_per_key(labels: pd.DataFrame) -> tuple[pd.DataFrame, JudgeRepeats]:
    """The rule for a (trace_id, judge_id, order) labelled more than once in a day:

    - the same choice again (a re-delivery, such as one file landed twice, in any file): the
      first in arrival order is kept, the repeats are dropped and counted;
    - a different choice: every label is kept and the key is counted as contradicted. The
      judge contradicted itself, so calibration reads the item as INCONSISTENT (it never
      agrees with gold and counts as an order flip) and no pre-label is made from it
      (`prelabels_of`); dropping or quarantining either label would hide that from the gate.

    A label is thus never two votes, and nothing is dropped unreported."""
    if labels.empty:
        return labels, JudgeRepeats(0, 0)
    repeat = labels.duplicated([*LABEL_KEY, "choice"], keep="first").to_numpy()
    kept = labels[~repeat].reset_index(drop=True) if repeat.any() else labels
    clash = kept.duplicated(LABEL_KEY, keep="first").to_numpy()
    contradicted = int(kept[clash][LABEL_KEY].drop_duplicates().shape[0]) if clash.any() else 0
    return kept, JudgeRepeats(int(repeat.sum()), contradicted)


def map_back(choice: str, order: str) -> str:
    """A choice made on the swapped presentation, expressed in the original A/B orientation."""
    if choice not in _SWAP:
        raise ValueError(f"judge choice must be one of {JUDGE_CHOICES}, got {choice!r}")
    if order == "original":
        return choice
    if order == "swapped":
        return _SWAP[choice]
    raise ValueError(f"judge order must be one of {ORDERS}, got {order!r}")


def map_back_frame(judge: pd.DataFrame) -> pd.DataFrame:
    """Judge rows with `mapped_choice` (original orientation) added; rejects unknown values.

    A frame with no rows is accepted whatever its columns, as when no judge file has landed.
    """
    out = judge.copy()
    for column in ("trace_id", "judge_id", "order", "choice"):
        if column in out.columns:
            continue
        if len(out):
            raise ValueError(f"judge labels need a {column!r} column")
        out[column] = pd.Series(dtype="string")
    order = out["order"].astype("string")
    choice = out["choice"].astype("string")
    bad_order = ~order.isin(ORDERS).fillna(False)
    bad_choice = ~choice.isin(JUDGE_CHOICES).fillna(False)
    if bad_order.any() or bad_choice.any():
        raise ValueError(
            f"{int(bad_order.sum())} judge rows have an order outside {ORDERS} and "
            f"{int(bad_choice.sum())} a choice outside {JUDGE_CHOICES}"
        )
    swapped = order == "swapped"
    out["mapped_choice"] = choice.where(~swapped, choice.map(_SWAP)).astype("string")
    return out


@dataclass
class JudgeCalibration:
    """Whether judge labels may be accepted without a human, and the evidence for it."""

    agreement: float | None
    n_gold: int
    order_sensitive: list[str]
    auto_accept_enabled: bool
    by_slice: pd.DataFrame
    rows: pd.DataFrame
    reason: str
    gate: float = 0.9
    by_judge: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> dict:
        """Flat, JSON-ready figures for asset metadata and check results."""
        return {
            "agreement": self.agreement,
            "gate": self.gate,
            "n_gold": self.n_gold,
            "n_judges": int(len(self.by_judge)),
            "order_sensitive": list(self.order_sensitive),
            "n_order_sensitive": len(self.order_sensitive),
            "auto_accept_enabled": self.auto_accept_enabled,
            "reason": self.reason,
        }


def _one_choice(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per group: its one mapped choice, INCONSISTENT when repeats differ; groups with no
    choice are absent (vectorised: nunique and first, no Python call per group)."""
    grouped = frame.dropna(subset=["mapped_choice"]).groupby(keys, sort=True)["mapped_choice"]
    first = grouped.first().astype(object)
    return first.where(grouped.nunique() == 1, INCONSISTENT)


def _isin(values: pd.Series, allowed: pd.Series) -> np.ndarray:
    """values.isin(allowed) through Arrow: pandas 3 makes one Arrow scalar per allowed value,
    which is slow for the many ids of a large day."""
    def arrow(series: pd.Series) -> pa.Array:
        data = pa.Array.from_pandas(series.astype("string"))
        if isinstance(data, pa.ChunkedArray):
            data = data.combine_chunks()
        return data.cast(pa.large_string())

    found = pc.is_in(arrow(values), value_set=arrow(allowed))
    return np.asarray(found.fill_null(False), dtype=bool)


def _rate(matches: pd.Series) -> float | None:
    return float(matches.mean()) if len(matches) else None


def calibrate_judge(judge: pd.DataFrame, gold: pd.DataFrame, gate: float = 0.9) -> JudgeCalibration:
    """Agreement with human gold in original order, order flips, per judge and per slice.

    Each judge is scored on every gold item: an item it never judged in original order, or one
    whose gold label is BOTH_BAD (a judge cannot say that), counts as a disagreement, as in the
    seed where agreement is divided by the number of gold items. Repeated labels of one
    (judge, item, order) that differ become INCONSISTENT, which never agrees and counts as a flip.
    """
    if not 0 <= gate <= 1:
        raise ValueError("gate must be between 0 and 1")
    for column in ("trace_id", "label"):
        if column not in gold.columns:
            raise ValueError(f"gold needs a {column!r} column")
    gold = gold.drop_duplicates("trace_id", keep="last").copy()
    if "slice" not in gold.columns:
        gold["slice"] = pd.NA
    gold["slice"] = gold["slice"].astype("string").fillna("(none)")
    mapped = map_back_frame(judge)
    judges = sorted(mapped["judge_id"].astype(str).unique())
    mapped = mapped[_isin(mapped["trace_id"], gold["trace_id"])]

    per_order = (
        _one_choice(mapped, ["judge_id", "trace_id", "order"])
        .unstack("order")
        .reindex(columns=list(ORDERS))
    )
    grid = pd.MultiIndex.from_product(
        [judges, gold["trace_id"].tolist()], names=["judge_id", "trace_id"]
    )
    rows = per_order.reindex(grid).reset_index()
    rows = rows.rename(
        columns={"original": "judge_original", "swapped": "judge_swapped_mapped_back"}
    )
    rows = rows.merge(gold[["trace_id", "label", "slice"]], on="trace_id", how="left")
    rows = rows.rename(columns={"label": "gold_label"})
    original = rows["judge_original"].astype("string")
    swapped = rows["judge_swapped_mapped_back"].astype("string")
    rows["agrees"] = (original == rows["gold_label"].astype("string")).fillna(False).astype(bool)
    rows["checked_both_orders"] = (original.notna() & swapped.notna()).astype(bool)
    rows["order_sensitive"] = (
        rows["checked_both_orders"]
        & ((original != swapped) | (original == INCONSISTENT)).fillna(False)
    ).astype(bool)

    n_gold = int(len(gold))
    by_judge = (
        rows.groupby("judge_id", sort=True)
        .agg(
            n_gold=("trace_id", "size"),
            n_judged=("judge_original", "count"),
            agreement=("agrees", "mean"),
            n_order_sensitive=("order_sensitive", "sum"),
            n_unchecked=("checked_both_orders", lambda s: int((~s).sum())),
        )
        .reset_index()
    )
    by_judge["passed"] = (
        (by_judge["agreement"] >= gate)
        & (by_judge["n_order_sensitive"] == 0)
        & (by_judge["n_unchecked"] == 0)
    )
    by_slice = (
        rows.groupby("slice", sort=True)
        .agg(
            n_gold=("trace_id", "nunique"),
            n_judgements=("trace_id", "size"),
            agreement=("agrees", "mean"),
            n_order_sensitive=("order_sensitive", "sum"),
        )
        .reset_index()
    )
    order_sensitive = sorted(rows.loc[rows["order_sensitive"], "trace_id"].astype(str).unique())
    agreement = _rate(rows["agrees"]) if n_gold and judges else None

    reasons: list[str] = []
    if n_gold == 0:
        reasons.append("no gold items to calibrate against")
    elif not judges:
        reasons.append("no judge labels on gold items")
    else:
        for record in by_judge.itertuples(index=False):
            if record.agreement < gate:
                reasons.append(
                    f"judge {record.judge_id}: agreement {record.agreement:.2f} below gate {gate:.2f}"
                )
            if record.n_order_sensitive:
                reasons.append(
                    f"judge {record.judge_id}: {int(record.n_order_sensitive)} order-sensitive cases"
                )
            if record.n_unchecked:
                reasons.append(
                    f"judge {record.judge_id}: {int(record.n_unchecked)} gold items not judged in "
                    "both orders"
                )
    enabled = not reasons
    if enabled:
        reasons.append(f"every judge meets agreement gate {gate:.2f} with no order-sensitive cases")
    return JudgeCalibration(
        agreement=agreement,
        n_gold=n_gold,
        order_sensitive=order_sensitive,
        auto_accept_enabled=enabled,
        by_slice=by_slice,
        rows=rows,
        reason="; ".join(reasons),
        gate=float(gate),
        by_judge=by_judge,
    )


def judge_preferences(judge: pd.DataFrame, calibration: JudgeCalibration) -> pd.DataFrame:
    """Judge labels that may stand in for human preferences: none unless auto-accept is on.

    Only labels from judges that passed calibration count, and only items every such judge
    labelled the same way in every order they saw are returned, in the original orientation.
    """
    columns = ["trace_id", "choice", "n_judges"]
    if not calibration.auto_accept_enabled:
        return pd.DataFrame(
            {c: pd.Series(dtype="string" if c != "n_judges" else np.int64) for c in columns}
        )
    mapped = map_back_frame(judge)
    passed = calibration.by_judge.loc[calibration.by_judge["passed"], "judge_id"].astype(str)
    mapped = mapped[mapped["judge_id"].astype(str).isin(set(passed))]
    per_item = pd.DataFrame({
        "choice": _one_choice(mapped, ["trace_id"]),
        "n_judges": mapped.groupby("trace_id", sort=True)["judge_id"].nunique(),
    })
    per_item = per_item[per_item["choice"].notna() & (per_item["choice"] != INCONSISTENT)]
    return per_item.reset_index()[columns].astype({"trace_id": "string", "choice": "string"})


# --- Calibration on a declared, held-out human gold set -------------------------------------

GOLD_LABELS = ("A", "B", "TIE", "BOTH_BAD")
"""The pairwise review vocabulary (core.rubric.PAIRWISE_OUTCOMES): a gold label is what a human
pairwise review would say; the judge can only say A, B or TIE, so a BOTH_BAD gold item is one it
always gets wrong."""
DEFAULT_MIN_KAPPA = 0.6
DEFAULT_MAX_SWAP_INCONSISTENCY = 0.1
DEFAULT_MIN_GOLD_ITEMS = 20
NO_GOLD_SET = "no held-out gold set"


def parse_judge_gold(text: str, source: str) -> pd.DataFrame:
    """The judge's held-out gold set: JSON Lines, one object per item,
    `{"trace_id": str, "label": "A"|"B"|"TIE"|"BOTH_BAD", "slice": str (optional)}`, labels in
    the original candidate order (candidate A = the trace's first candidate, as the judge's
    `original` presentation). Blank lines are skipped; a bad line or a repeated trace_id is a
    ValueError naming `source:line` (a gold set is curated by hand, so nothing is guessed)."""
    items: list[dict[str, str | None]] = []
    seen: set[str] = set()
    for number, item in curated_json_lines(text, source):
        trace_id, label = item.get("trace_id"), item.get("label")
        if not isinstance(trace_id, str) or not trace_id:
            raise ValueError(f"{source}:{number}: trace_id must be a non-empty string")
        if label not in GOLD_LABELS:
            raise ValueError(f"{source}:{number}: label must be one of {', '.join(GOLD_LABELS)}")
        if trace_id in seen:
            raise ValueError(f"{source}:{number}: trace_id {trace_id!r} appears twice")
        seen.add(trace_id)
        slice_ = item.get("slice")
        items.append({"trace_id": trace_id, "label": label,
                      "slice": str(slice_) if slice_ not in (None, "") else None})
    return pd.DataFrame(items, columns=["trace_id", "label", "slice"]).astype("string")


def load_judge_gold(path) -> pd.DataFrame | None:
    """The gold set at `path` (a Path or storage path), or None when there is no such file."""
    if not path.exists():
        return None
    return parse_judge_gold(path.read_text(encoding="utf-8"), str(path))


def cohens_kappa(first: pd.Series, second: pd.Series) -> float | None:
    """Cohen's kappa of two aligned label series (every label value its own category, so an
    INCONSISTENT judge answer is a category of its own); None when undefined (no items, or
    both sides always give one and the same label)."""
    a = np.asarray(first.astype(str), dtype=object)
    b = np.asarray(second.astype(str), dtype=object)
    if len(a) == 0:
        return None
    observed = float(np.mean(a == b))
    chance = sum(float(np.mean(a == label)) * float(np.mean(b == label))
                 for label in set(a) | set(b))
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


@dataclass
class GoldCalibration:
    """A judge measured against the held-out gold set: whether it may pre-label review tasks.

    Figures are over the gold items each judge labelled in both orders (`n_items`); the headline
    pools every (judge, item) pair and `passed` needs every judge to pass on its own.
    """

    passed: bool
    reason: str
    gold_set: str | None
    n_gold: int
    n_items: int
    kappa: float | None
    accuracy: float | None
    swap_inconsistency: float | None
    gold_in_training: int
    min_kappa: float
    max_swap_inconsistency: float
    min_gold_items: int
    by_judge: pd.DataFrame = field(default_factory=pd.DataFrame)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    leaked_ids: list[str] = field(default_factory=list)

    @property
    def passed_judges(self) -> list[str]:
        if not self.passed or self.by_judge.empty:
            return []
        return sorted(self.by_judge.loc[self.by_judge["passed"], "judge_id"].astype(str))

    def summary(self) -> dict:
        """Flat, JSON-ready figures for asset metadata (re-measured every day)."""
        return {
            "passed": self.passed, "reason": self.reason, "gold_set": self.gold_set,
            "n_gold": self.n_gold, "n_items": self.n_items, "kappa": self.kappa,
            "accuracy": self.accuracy, "swap_inconsistency": self.swap_inconsistency,
            "gold_in_training": self.gold_in_training, "n_judges": int(len(self.by_judge)),
            "min_kappa": self.min_kappa, "max_swap_inconsistency": self.max_swap_inconsistency,
            "min_gold_items": self.min_gold_items,
        }


_BY_JUDGE_COLUMNS = ["judge_id", "n_gold", "n_items", "kappa", "accuracy",
                     "swap_inconsistency", "passed"]


def _scored(rows: pd.DataFrame) -> tuple[int, float | None, float | None, float | None]:
    """(n_items, kappa, accuracy, swap inconsistency) over the rows checked in both orders."""
    both = rows[rows["checked_both_orders"]]
    if both.empty:
        return 0, None, None, None
    return (int(len(both)), cohens_kappa(both["judge_original"], both["gold_label"]),
            float(both["agrees"].mean()), float(both["order_sensitive"].mean()))


def calibrate_on_gold(judge: pd.DataFrame, gold: pd.DataFrame | None, *,
                      min_kappa: float = DEFAULT_MIN_KAPPA,
                      max_swap_inconsistency: float = DEFAULT_MAX_SWAP_INCONSISTENCY,
                      min_gold_items: int = DEFAULT_MIN_GOLD_ITEMS,
                      training_ids: pd.Series | None = None,
                      gold_set: str | None = None) -> GoldCalibration:
    """Score each judge's labels of the held-out gold items (matched by trace_id) against gold.

    A judge passes when it labelled at least `min_gold_items` gold items in both orders, its
    Cohen's kappa with gold (original order) is at least `min_kappa`, and the share of those
    items whose swapped answer, mapped back, differs from the original (or whose repeats
    disagree) is at most `max_swap_inconsistency`. Calibration passes when every judge passes
    and no gold trace id is among `training_ids` (the held-out property: a gold item that is
    also a training row is not held out). `gold` None means the set is missing: nothing passes.
    """
    thresholds = {"min_kappa": float(min_kappa),
                  "max_swap_inconsistency": float(max_swap_inconsistency),
                  "min_gold_items": int(min_gold_items)}
    if gold is None:
        return GoldCalibration(passed=False, reason=NO_GOLD_SET, gold_set=gold_set, n_gold=0,
                               n_items=0, kappa=None, accuracy=None, swap_inconsistency=None,
                               gold_in_training=0, **thresholds,
                               by_judge=pd.DataFrame(columns=_BY_JUDGE_COLUMNS))
    base = calibrate_judge(judge, gold, gate=0.0)
    rows = base.rows
    leaked: list[str] = []
    if training_ids is not None and len(gold):
        training = pd.Series(training_ids).dropna().astype("string")
        in_training = _isin(gold["trace_id"], training)
        leaked = sorted(gold.loc[in_training, "trace_id"].astype(str))

    records = []
    for judge_id, own in rows.groupby("judge_id", sort=True):
        n_items, kappa, accuracy, swaps = _scored(own)
        ok = (n_items >= min_gold_items and kappa is not None and kappa >= min_kappa
              and swaps is not None and swaps <= max_swap_inconsistency)
        records.append({"judge_id": str(judge_id), "n_gold": int(len(own)), "n_items": n_items,
                        "kappa": kappa, "accuracy": accuracy, "swap_inconsistency": swaps,
                        "passed": bool(ok)})
    by_judge = pd.DataFrame(records, columns=_BY_JUDGE_COLUMNS)
    n_items, kappa, accuracy, swaps = _scored(rows)

    reasons: list[str] = []
    if base.n_gold == 0:
        reasons.append("the held-out gold set has no items")
    elif by_judge.empty:
        reasons.append("no judge labels on the day")
    for r in by_judge.itertuples(index=False):
        if r.n_items < min_gold_items:
            reasons.append(f"judge {r.judge_id}: {r.n_items} gold items judged in both orders, "
                           f"fewer than {min_gold_items}")
            continue
        if r.kappa is None or r.kappa < min_kappa:
            shown = "undefined" if r.kappa is None else f"{r.kappa:.2f}"
            reasons.append(f"judge {r.judge_id}: kappa with gold {shown} below {min_kappa:.2f}")
        if r.swap_inconsistency > max_swap_inconsistency:
            reasons.append(f"judge {r.judge_id}: swap inconsistency {r.swap_inconsistency:.2f} "
                           f"above {max_swap_inconsistency:.2f}")
    if leaked:
        reasons.append(f"{len(leaked)} gold trace id(s) appear in training rows: the gold set "
                       "is not held out")
    passed = not reasons
    if passed:
        reasons.append(f"every judge reaches kappa {min_kappa:.2f} on at least {min_gold_items} "
                       f"held-out gold items with swap inconsistency at most "
                       f"{max_swap_inconsistency:.2f}")
    return GoldCalibration(passed=passed, reason="; ".join(reasons), gold_set=gold_set,
                           n_gold=base.n_gold, n_items=n_items, kappa=kappa, accuracy=accuracy,
                           swap_inconsistency=swaps, gold_in_training=len(leaked), **thresholds,
                           by_judge=by_judge, rows=rows, leaked_ids=leaked)


def judge_prelabels(judge: pd.DataFrame, calibration: GoldCalibration) -> pd.DataFrame:
    """Per (trace, passing judge): its label in the original orientation, for review tasks
    to show as a Label Studio prediction (`prelabels_of` with this calibration's passing
    judges and gold items)."""
    gold = calibration.rows["trace_id"] if len(calibration.rows) else pd.Series(dtype="string")
    return prelabels_of(judge, calibration.passed_judges, gold)


def prelabels_of(judge: pd.DataFrame, passed_judges: list[str],
                 gold_ids: pd.Series) -> pd.DataFrame:
    """The labels of `passed_judges` (none unless calibration passed); an item a judge
    answered differently across orders or repeats is left out (no pre-label beats a
    coin flip). Gold items are left out too, so a pre-label never hints at the gold answer.
    These are suggestions to a human reviewer, never preferences by themselves."""
    columns = ["trace_id", "judge_id", "choice"]
    empty = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
    if not passed_judges or judge.empty:
        return empty
    mapped = map_back_frame(judge)
    mapped = mapped[mapped["judge_id"].astype(str).isin(set(passed_judges))]
    if len(gold_ids):
        mapped = mapped[~_isin(mapped["trace_id"], gold_ids)]
    if mapped.empty:
        return empty
    choice = _one_choice(mapped, ["trace_id", "judge_id"])
    choice = choice[choice != INCONSISTENT]
    return choice.rename("choice").reset_index()[columns].astype("string")
