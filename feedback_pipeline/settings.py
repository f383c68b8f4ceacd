"""The config files of contract section 5, parsed into typed, validated objects.

A bad config is a clear error naming the file and the key, never a silent default for a gate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

import yaml

from feedback_pipeline.core.candidates import EXPERIMENT_CANDIDATES
from feedback_pipeline.core.contract import curated_json_lines
from feedback_pipeline.core.fixtures import Check, parse_fixtures
from feedback_pipeline.core.judge import (
    DEFAULT_MAX_SWAP_INCONSISTENCY,
    DEFAULT_MIN_GOLD_ITEMS,
    DEFAULT_MIN_KAPPA,
)
from feedback_pipeline.core.manifest import version_number
from feedback_pipeline.core.redaction import parse_deny_list
from feedback_pipeline.core.rounds import ReviewBudget, parse_review_budget
from feedback_pipeline.core.rubric import Rubric
from feedback_pipeline.core.sources import SourceSpec, parse_source_spec
from feedback_pipeline.storage import AnyPath, Storage


class ConfigError(ValueError):
    """A config file is missing or malformed."""


AGREEMENT_STATISTICS = ("cohens_kappa", "conger_kappa", "fleiss_kappa", "gwet_ac1",
                        "krippendorff_alpha_nominal", "alpha_ordinal", "alpha_interval",
                        "alpha_ratio", "score_alpha_nominal", "score_fleiss_kappa")
"""Names accepted for policy.agreement_statistic: core.agreement.GATE_STATISTICS (kept here so
loading the policy does not import the statistics stack; a test checks they match)."""


_OWNER = re.compile(r"team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Policy:
    """Gates and knobs from policy.yaml; defaults are the contract's."""

    dataset_name: str = "code-review-feedback"
    parent_dataset: str | None = None
    """A release of `dataset_name` this series continues (e.g. code-review-feedback-v11 made
    elsewhere): numbering starts after it. When it is not in this data root's releases/ it is
    named as the parent in the manifest, but none of its rows can be inherited or verified."""
    partitions_start: str | None = None
    """The first daily partition (YYYY-MM-DD); without it the first landed day
    (feedback_pipeline.partitions, where FEEDBACK_PARTITIONS_START overrides both)."""
    release_jsonl: bool = False
    """Also release every config as JSON Lines beside its Parquet file (the same rows, for tools
    that read JSONL); the card's configs keep pointing at the Parquet files."""
    kappa_gate: float = 0.65
    agreement_statistic: str = "cohens_kappa"
    agreement_gate_on: str = "point"
    min_duplicate_items: int = 10
    judge_agreement_gate: float = 0.9
    judge_gold_set: str = "judge_gold"
    """The held-out human gold set the judge is calibrated on: config/gold/<name>.jsonl."""
    judge_min_kappa: float = DEFAULT_MIN_KAPPA
    judge_max_swap_inconsistency: float = DEFAULT_MAX_SWAP_INCONSISTENCY
    judge_min_gold_items: int = DEFAULT_MIN_GOLD_ITEMS
    batch_size: int = 20
    weight_uncertainty: float = 0.6
    random_seed: int = 7
    redaction_version: str = "code-review-redactor-v2"
    rubric_version: str = "code-review-rubric-v4"
    frozen_eval_set: str = "code-review-eval-v5"
    reviewer_training_set: str = "code-reviewer-gold-v3"
    selection_policy_version: str = "hybrid-selector-v3"
    reidentification_access_rule: str = "privacy-approved-roles-only"
    raw_retention_days: int = 30
    corpus_stable_tokens: bool = False
    near_duplicate_threshold: float = 0.8
    bootstrap_samples: int = 1000
    model_training_pairs: int = 50_000
    selection_pool_limit: int = 50_000
    review_budget: Any = None
    random_share: float = 0.5
    backlog_max_age_days: int = 14
    min_eval_items: int = 20
    max_quarantined_share: float = 0.10
    shards_per_day: int = 1
    """Parse a day's landed files as this many shards of whole files, one executor step each
    (stages.ingest, "sharded days"); 1 parses the day in one step."""
    max_line_bytes: int = 8 * 1024 * 1024
    """Longest landed line (bytes, without its newline) that ingest parses; a longer line is
    quarantined unread, so reading never holds much more than this."""
    experiment_candidates: tuple[str, ...] = ("preference_model",)
    asset_owners: tuple[str, ...] = ("team:ml-data",)
    """Who owns every asset in the Dagster UI: `team:<name>` or email addresses."""
    experiment_rounds: int = 10
    experiment_base_pairs: int = 2000
    experiment_slices: dict[str, Any] = field(default_factory=lambda: {
        "safety": ["prompt-injection"], "accessibility": ["accessible-language"]})
    gold_miss_prior: dict[str, Any] = field(default_factory=lambda: dict(GOLD_MISS_PRIOR))
    """Beta prior on the other reviewers' gold miss rate, the gold check's baseline
    (core.agreement): {alpha, beta}; the default is a 5% miss rate worth 20 answers."""
    reviewer_suspension: dict[str, Any] = field(
        default_factory=lambda: dict(REVIEWER_SUSPENSION))
    """Reviewer standing (core.manifest.reviewer_standing): `on` is "gold_flag" (a reviewer
    flagged by the gold check in a release window is suspended) or "never"; a suspended
    reviewer is reinstated when their latest `requalify_items` gold answers after the
    suspension hold at most `requalify_max_misses` misses."""
    slice_gates: dict[str, Any] = field(default_factory=dict)
    """Slice -> {min_statistic, min_items, action: block | adjudicate}: per-slice agreement
    gates evaluated with the release's agreement gate (stages.release)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_types(self)
        if self.partitions_start is not None:
            try:
                date.fromisoformat(self.partitions_start)
            except ValueError as err:
                raise ConfigError(f"policy.yaml: partitions_start {self.partitions_start!r} "
                                  "is not a YYYY-MM-DD day") from err
        checks = {
            "kappa_gate": -1.0 <= self.kappa_gate <= 1.0,
            "judge_agreement_gate": 0.0 <= self.judge_agreement_gate <= 1.0,
            "judge_gold_set": bool(self.judge_gold_set) and "/" not in self.judge_gold_set,
            "judge_min_kappa": -1.0 <= self.judge_min_kappa <= 1.0,
            "judge_max_swap_inconsistency": 0.0 <= self.judge_max_swap_inconsistency <= 1.0,
            "judge_min_gold_items": self.judge_min_gold_items >= 1,
            "weight_uncertainty": 0.0 <= self.weight_uncertainty <= 1.0,
            "batch_size": self.batch_size >= 1,
            "agreement_gate_on": self.agreement_gate_on in ("point", "lower_bound"),
            "near_duplicate_threshold": 0.0 < self.near_duplicate_threshold <= 1.0,
            "raw_retention_days": self.raw_retention_days >= 0,
            "model_training_pairs": self.model_training_pairs >= 1,
            "selection_pool_limit": self.selection_pool_limit >= 1,
            "random_share": 0.0 < self.random_share <= 0.5,
            "backlog_max_age_days": self.backlog_max_age_days >= 0,
            "min_eval_items": self.min_eval_items >= 1,
            "max_quarantined_share": 0.0 <= self.max_quarantined_share <= 1.0,
            "max_line_bytes": isinstance(self.max_line_bytes, int)
            and not isinstance(self.max_line_bytes, bool) and self.max_line_bytes >= 1024,
            "shards_per_day": 1 <= self.shards_per_day <= 1024,
            "experiment_rounds": self.experiment_rounds >= 1,
            "experiment_base_pairs": self.experiment_base_pairs >= 0,
            "asset_owners": all(isinstance(o, str) and _OWNER.fullmatch(o)
                                for o in self.asset_owners),
            "experiment_candidates": bool(self.experiment_candidates) and all(
                name in EXPERIMENT_CANDIDATES for name in self.experiment_candidates),
        }
        if self.agreement_statistic not in AGREEMENT_STATISTICS:
            bad_name = self.agreement_statistic
            raise ConfigError(
                f"policy.yaml: agreement_statistic {bad_name!r} is not one of "
                f"{', '.join(AGREEMENT_STATISTICS)} (cohens_kappa is defined for two reviewers "
                f"only; with more, fleiss_kappa, conger_kappa or gwet_ac1 name the statistic)")
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"policy.yaml: invalid value for {', '.join(bad)}")
        _check_gold_miss_prior(self.gold_miss_prior)
        _check_reviewer_suspension(self.reviewer_suspension)
        _check_slice_gates(self.slice_gates)
        try:
            parse_review_budget(self.review_budget, self.batch_size)
        except ValueError as err:
            raise ConfigError(f"policy.yaml: {err}") from err

    @property
    def budget(self) -> ReviewBudget:
        """The review budget per round (core.rounds.ReviewBudget)."""
        return parse_review_budget(self.review_budget, self.batch_size)

    @property
    def gold_prior(self) -> tuple[float, float]:
        """(alpha, beta) of gold_miss_prior."""
        return float(self.gold_miss_prior["alpha"]), float(self.gold_miss_prior["beta"])

    @property
    def suspension(self) -> dict[str, Any]:
        """reviewer_suspension with its defaults filled in."""
        return {**REVIEWER_SUSPENSION, **self.reviewer_suspension}


GOLD_MISS_PRIOR = {"alpha": 1.0, "beta": 19.0}
REVIEWER_SUSPENSION = {"on": "gold_flag", "requalify_items": 10, "requalify_max_misses": 1}
SUSPENSION_TRIGGERS = ("gold_flag", "never")
SLICE_GATE_ACTIONS = ("block", "adjudicate")


_SCALAR_CHECKS = {
    "float": ("a number", lambda v: _is_number(v)),  # late-bound: defined below
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "str | None": ("a string", lambda v: v is None or isinstance(v, str)),
}


def _check_types(policy: Policy) -> None:
    """Each scalar key of policy.yaml holds its declared type, so a wrong one (`kappa_gate:
    high`) is refused naming the key and the type before any comparison trips on it."""
    for f in fields(policy):
        rule = _SCALAR_CHECKS.get(str(f.type))
        value = getattr(policy, f.name)
        if rule is not None and not rule[1](value):
            raise ConfigError(f"policy.yaml: {f.name} must be {rule[0]}, got "
                              f"{type(value).__name__}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_gold_miss_prior(prior: Any) -> None:
    if (not isinstance(prior, dict) or set(prior) != {"alpha", "beta"}
            or not all(_is_number(v) and 0 < v < float("inf") for v in prior.values())):
        raise ConfigError("policy.yaml: gold_miss_prior must be {alpha: > 0, beta: > 0} (a Beta "
                          f"prior on the gold miss rate), got {prior!r}")


def _check_reviewer_suspension(rule: Any) -> None:
    if not isinstance(rule, dict):
        raise ConfigError("policy.yaml: reviewer_suspension must be a mapping "
                          "{on, requalify_items, requalify_max_misses}")
    unknown = sorted(set(rule) - set(REVIEWER_SUSPENSION))
    if unknown:
        raise ConfigError(f"policy.yaml: reviewer_suspension has unknown keys {unknown}")
    merged = {**REVIEWER_SUSPENSION, **rule}
    if merged["on"] not in SUSPENSION_TRIGGERS:
        raise ConfigError(f"policy.yaml: reviewer_suspension.on must be one of "
                          f"{', '.join(SUSPENSION_TRIGGERS)}, got {merged['on']!r}")
    items, misses = merged["requalify_items"], merged["requalify_max_misses"]
    if not _is_count(items) or items < 1:
        raise ConfigError("policy.yaml: reviewer_suspension.requalify_items must be an "
                          f"integer >= 1, got {items!r}")
    if not _is_count(misses) or not 0 <= misses < items:
        raise ConfigError("policy.yaml: reviewer_suspension.requalify_max_misses must be an "
                          f"integer from 0 to requalify_items - 1, got {misses!r}")


def _check_slice_gates(gates: Any) -> None:
    if not isinstance(gates, dict):
        raise ConfigError("policy.yaml: slice_gates must map a slice to "
                          "{min_statistic, min_items, action}")
    for name, gate in gates.items():
        where = f"policy.yaml: slice_gates[{name!r}]"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: a slice name must be a non-empty string")
        if not isinstance(gate, dict) or not {"min_statistic", "min_items"} <= set(gate):
            raise ConfigError(f"{where} must be {{min_statistic, min_items, action}}")
        unknown = sorted(set(gate) - {"min_statistic", "min_items", "action"})
        if unknown:
            raise ConfigError(f"{where} has unknown keys {unknown}")
        if not _is_number(gate["min_statistic"]) or not -1.0 <= gate["min_statistic"] <= 1.0:
            raise ConfigError(f"{where}.min_statistic must be a number in [-1, 1]")
        if not _is_count(gate["min_items"]) or gate["min_items"] < 1:
            raise ConfigError(f"{where}.min_items must be an integer >= 1")
        if gate.get("action", "block") not in SLICE_GATE_ACTIONS:
            raise ConfigError(f"{where}.action must be one of {', '.join(SLICE_GATE_ACTIONS)}")


def _read_yaml(path: AnyPath) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"missing config file {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def load_policy(storage: Storage) -> Policy:
    raw = _read_yaml(storage.config_path("policy.yaml"))
    known = {f.name for f in fields(Policy)} - {"extra"}
    kwargs = {k: v for k, v in raw.items() if k in known}
    if isinstance(kwargs.get("partitions_start"), date):  # YAML reads 2026-05-01 as a date
        kwargs["partitions_start"] = kwargs["partitions_start"].isoformat()
    for name in ("experiment_candidates", "asset_owners"):
        if isinstance(kwargs.get(name), list):
            kwargs[name] = tuple(kwargs[name])
    parent = kwargs.get("parent_dataset")
    if parent is not None and version_number(str(parent), str(kwargs.get(
            "dataset_name", Policy.dataset_name))) is None:
        raise ConfigError(f"policy.yaml: parent_dataset {parent!r} is not a version of "
                          "dataset_name (<dataset_name>-v<N>)")
    try:
        return Policy(**kwargs, extra={k: v for k, v in raw.items() if k not in known})
    except TypeError as err:
        raise ConfigError(f"policy.yaml: {err}") from err


def load_rubric(storage: Storage, version: str) -> Rubric:
    path = storage.config_path("rubrics", f"{version}.yaml")
    try:
        return Rubric.from_mapping(_read_yaml(path))
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err


REVIEWER_ROLES = ("reviewer", "adjudicator")


def load_reviewer_roles(storage: Storage) -> dict[str, str]:
    """Reviewer identity -> role from config/reviewers.yaml (`reviewers: [{id, role}]`); a
    missing file means everyone is a reviewer and no one can close an adjudication. The ids
    are the identities reviewers land under (an email or a Label Studio user); the stage
    pseudonymises them before use and never stores them."""
    path = storage.config_path("reviewers.yaml")
    if not path.exists():
        return {}
    entries = _read_yaml(path).get("reviewers") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: `reviewers` must be a list of {{id, role}}")
    roles: dict[str, str] = {}
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not str(entry.get("id") or "").strip():
            raise ConfigError(f"{path}: reviewer {position} needs an id")
        role = entry.get("role", "reviewer")
        if role not in REVIEWER_ROLES:
            raise ConfigError(f"{path}: reviewer {position} has role {role!r}; roles are "
                              f"{', '.join(REVIEWER_ROLES)}")
        roles[str(entry["id"]).strip()] = role
    return roles


def known_rubric_versions(storage: Storage) -> set[str]:
    folder = storage.config_path("rubrics")
    return {p.stem for p in folder.glob("*.yaml")} if folder.is_dir() else set()


@dataclass(frozen=True)
class FrozenEvalSet:
    """Reserved evaluation ids; a set version is append-only."""

    set_id: str
    reserved_at: str
    ids: tuple[str, ...]
    fixtures: dict[str, tuple[Check, ...]] = field(default_factory=dict)
    """Expected checks per frozen id (the lesson's "input, expected checks"), scored on the
    answers a trained policy generates."""


def load_frozen_set(storage: Storage, set_id: str) -> FrozenEvalSet:
    path = storage.config_path("frozen_eval", f"{set_id}.yaml")
    raw = _read_yaml(path)
    ids = raw.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ConfigError(f"{path}: 'ids' must be a list of trace ids")
    if raw.get("set_id", set_id) != set_id:
        raise ConfigError(f"{path}: set_id {raw.get('set_id')!r} does not match the file name")
    reserved_at = raw.get("reserved_at") or date.today().isoformat()
    try:
        fixtures = parse_fixtures(raw.get("fixtures"), str(path))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    unknown = sorted(set(fixtures) - set(ids))
    if unknown:
        raise ConfigError(f"{path}: fixtures name {len(unknown)} trace id(s) that are not in "
                          "'ids' (a fixture must be a frozen item)")
    return FrozenEvalSet(set_id=set_id, reserved_at=str(reserved_at),
                         ids=tuple(dict.fromkeys(ids)), fixtures=fixtures)


def load_gold(storage: Storage, set_id: str) -> list[dict[str, Any]]:
    """Reviewer-training gold items; an absent file means no gold items, said by the caller."""
    return _load_labelled(storage.config_path("gold", f"{set_id}.jsonl"))


def load_frozen_labels(storage: Storage, set_id: str) -> list[dict[str, Any]]:
    """Human outcomes of the frozen evaluation pairs (`<set_id>.labels.jsonl`), for measuring
    selection; they never enter training."""
    return _load_labelled(storage.config_path("frozen_eval", f"{set_id}.labels.jsonl"))


def _load_labelled(path: AnyPath) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    items = []
    try:
        for number, item in curated_json_lines(path.read_text(encoding="utf-8"), str(path)):
            if "trace_id" not in item or "label" not in item:
                raise ConfigError(f"{path}:{number}: an item needs trace_id and label")
            items.append(item)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return items


def load_retractions(storage: Storage) -> set[str]:
    """Row ids config/retractions.txt withdraws from every later release (one a line, `#`
    starts a comment)."""
    path = storage.config_path("retractions.txt")
    if not path.exists():
        return set()
    return {line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()}


def load_deny_terms(storage: Storage) -> list[str]:
    path = storage.config_path("redaction", "deny_list.txt")
    return parse_deny_list(path.read_text(encoding="utf-8")) if path.exists() else []


def load_trace_sources(storage: Storage) -> list[tuple[str, SourceSpec]]:
    """(file-name glob, source spec) pairs from config/sources.yaml (`sources: {glob: spec}`),
    in declaration order: a landed trace file takes the first spec whose glob matches its name,
    and is read as the native contract when none does (or the file is absent)."""
    path = storage.config_path("sources.yaml")
    if not path.exists():
        return []
    declared = _read_yaml(path).get("sources") or {}
    if not isinstance(declared, dict):
        raise ConfigError(f"{path}: sources must be a mapping of file-name glob to a source")
    try:
        return [(str(glob), parse_source_spec(spec, f"sources.yaml: sources[{glob!r}]"))
                for glob, spec in declared.items()]
    except ValueError as err:
        raise ConfigError(str(err)) from err


def check_config(storage: Storage) -> list[str]:
    """Every config problem of a data root, each naming its file, key and rule: the policy,
    the rubrics, the frozen set and its labels, the reviewer and judge gold sets, the reviewer
    roles, the trace sources and the deny list, parsed by the same loaders the stages use. An
    empty list means the pipeline will accept the config."""
    problems: list[str] = []

    def attempt(load: Any, *args: Any) -> Any:
        try:
            return load(storage, *args)
        except ConfigError as err:
            problems.append(str(err))
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{args or load.__name__}: cannot be read ({type(err).__name__})")
        return None

    policy = attempt(load_policy)
    rubrics = known_rubric_versions(storage)
    for version in sorted(rubrics):
        attempt(load_rubric, version)
    if policy is not None:
        if policy.rubric_version not in rubrics:
            problems.append(f"policy.yaml: rubric_version {policy.rubric_version!r} has no "
                            f"config/rubrics/{policy.rubric_version}.yaml")
        attempt(load_frozen_set, policy.frozen_eval_set)
        attempt(load_frozen_labels, policy.frozen_eval_set)
        attempt(load_gold, policy.reviewer_training_set)
        attempt(load_gold, policy.judge_gold_set)
    attempt(load_reviewer_roles)
    attempt(load_trace_sources)
    attempt(load_deny_terms)
    return problems
