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

JUDGE_CHOICES = ("A", "B", "TIE")
ORDERS = ("original", "swapped")
INCONSISTENT = "INCONSISTENT"
_SWAP = {"A": "B", "B": "A", "TIE": "TIE"}


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
    """values.isin(allowed) through Arrow: pandas 3 makes one Arrow scalar per allowed value
    (2 s for the half million gold ids of a 10^6-trace day)."""
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
