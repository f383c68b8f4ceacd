"""Smoke-train TRL's trainers on a written release, loaded the way a consumer loads it.

A release folder (`<root>/releases/<version>/`) is meant to be consumed with
`datasets.load_dataset(<folder>, name=<config>)` and fed straight to TRL. Checking the parquet
schemas alone does not prove that: TRL decides per example whether a row is conversational, and
only then applies the tokenizer's chat template, so a wrongly nested `prompt` silently trains as
plain text. This loads every config the card declares, runs DPO / SFT / KTO for a few CPU steps
on a tiny local model (feedback_pipeline.training.tiny_model) and returns, per config, the loss
history and the decoded first training example, which shows whether the chat template's role
markers were rendered.

Loading goes through `load_release_config`, which passes the card's data files explicitly. In
datasets 5.2 the cache key of a local folder with YAML `configs` is
`<cache_dir>/<folder name>/<config name>/0.0.0/<hash of the YAML's relative data_files patterns
and dataset_info>`: neither the folder's absolute path nor the files' contents or mtimes enter
it, and neither does a `fingerprint` key (top level or inside a config entry). Two releases with
the same version name under different roots therefore share one cache entry, and the second load
returns the first one's rows. Explicit `data_files` makes datasets add a hash of the resolved
absolute paths and their mtimes to the config id, so each release gets its own entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROLE_MARKERS = ("<|user|>", "<|assistant|>")
"""What the tiny model's chat template renders around every conversation (a system turn only
when the row has one)."""
MAX_LENGTH = 768
"""Tokens per example. A released prompt holds the conversation and the context the reviewers
saw (a CI log, a diff hunk): a few hundred tokens, and SFT truncates from the right, so at 256
a prompt/completion row loses its whole completion and TRL has nothing to train on."""
BATCH_SIZE = 2  # KTO needs a per-device batch above 1: its KL term pairs neighbours in a batch
LEARNING_RATE = 1e-3
README = "README.md"


@dataclass(frozen=True)
class ConfigSpec:
    """How one release config is trained: the TRL trainer, the columns it consumes (everything
    else, i.e. provenance, is dropped first) and whether rows are conversational."""

    trainer: str
    columns: tuple[str, ...]
    conversational: bool


CONFIG_SPECS: dict[str, ConfigSpec] = {
    "preference": ConfigSpec("dpo", ("prompt", "chosen", "rejected"), True),
    "preference_text": ConfigSpec("dpo", ("prompt", "chosen", "rejected"), False),
    "sft": ConfigSpec("sft", ("messages",), True),
    "sft_text": ConfigSpec("sft", ("prompt", "completion"), False),
    "unpaired": ConfigSpec("kto", ("prompt", "completion", "label"), True),
    "unpaired_text": ConfigSpec("kto", ("prompt", "completion", "label"), False),
}


def read_card_configs(release_dir: Path) -> dict[str, dict[str, str]]:
    """Config name -> {split: data file path relative to the release} from the README.md YAML
    header, because the card, not a file naming convention, is what `load_dataset` follows."""
    text = (Path(release_dir) / README).read_text(encoding="utf-8")
    if not text.startswith("---"):
        raise ValueError(f"{release_dir / README} has no YAML header")
    header = text.split("---", 2)[1]
    meta = yaml.safe_load(header) or {}
    configs: dict[str, dict[str, str]] = {}
    for entry in meta.get("configs") or []:
        files = entry.get("data_files") or []
        if isinstance(files, str):
            files = [{"split": "train", "path": files}]
        configs[str(entry["config_name"])] = {str(f["split"]): str(f["path"]) for f in files}
    return configs


def load_release_config(release_dir: Path, config: str, cache_dir: Path | None = None) -> Any:
    """The train split of one config, keyed in the datasets cache by the release's own files.

    The data files are passed explicitly (as the card lists them) so two releases with the same
    folder name cannot share a cache entry; see the module docstring."""
    from datasets import load_dataset

    release_dir = Path(release_dir).resolve()
    files = read_card_configs(release_dir).get(config)
    if not files or "train" not in files:
        raise ValueError(f"{release_dir / README} declares no train split for config {config!r}")
    return load_dataset(
        str(release_dir),
        name=config,
        data_files={"train": str(release_dir / files["train"])},
        split="train",
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a row value (plain text or lists of messages), for the tokenizer."""
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _ensure_model(model_dir: Path, datasets: dict[str, Any], seed: int) -> Path:
    """A model directory to train from: an existing one is used as is, otherwise a tiny model is
    built there with its tokenizer fitted on the release texts, so they encode in few tokens."""
    model_dir = Path(model_dir)
    if (model_dir / "config.json").is_file():
        return model_dir
    from feedback_pipeline.training.tiny_model import build_tiny_causal_lm

    texts = [
        text
        for name, ds in datasets.items()
        for column in CONFIG_SPECS[name].columns
        if column != "label"
        for value in ds[column]
        for text in _strings(value)
    ]
    return build_tiny_causal_lm(texts, model_dir, seed)


def _common_args(out_dir: Path, steps: int, seed: int) -> dict[str, Any]:
    """Trainer settings shared by DPO, SFT and KTO: CPU, fp32, a handful of logged steps and
    nothing saved. TRL's configs default bf16 to True and gradient checkpointing to on, both
    wrong for a tiny CPU run, so they are set explicitly (`activation_checkpointing` is the
    transformers 5 name; `gradient_checkpointing` is its deprecated alias)."""
    return {
        "output_dir": str(out_dir),
        "max_steps": steps,
        "per_device_train_batch_size": BATCH_SIZE,
        "gradient_accumulation_steps": 1,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "max_length": MAX_LENGTH,
        "seed": seed,
        "data_seed": seed,
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "activation_checkpointing": False,
        "report_to": [],
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "no",
        "eval_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _first_example_text(trainer: Any, tokenizer: Any, kind: str) -> str:
    """The first processed training example decoded with special tokens, i.e. what the model
    actually sees, so a caller can check the chat template was rendered."""
    row = trainer.train_dataset[0]
    if kind == "dpo":
        ids = list(row["prompt_ids"]) + list(row["chosen_ids"])
    elif kind == "kto":
        ids = list(row["prompt_ids"]) + list(row["completion_ids"])
    else:
        ids = list(row["input_ids"])
    return tokenizer.decode(ids, skip_special_tokens=False)


def _train_one(
    name: str, dataset: Any, model_dir: Path, out_dir: Path, steps: int, seed: int
) -> dict[str, Any]:
    """Train one config for `steps` steps and summarise what happened."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.trainer_callback import PrinterCallback

    spec = CONFIG_SPECS[name]
    missing = [c for c in spec.columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"config {name!r} lacks columns {missing}")
    dropped = [c for c in dataset.column_names if c not in spec.columns]
    dataset = dataset.remove_columns(dropped) if dropped else dataset

    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)

    def load() -> Any:
        return AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32
        )

    common = _common_args(out_dir / name, steps, seed)
    trainer_args: dict[str, Any]
    if spec.trainer == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer_args = {}
        trainer = DPOTrainer(
            model=load(),
            ref_model=load(),
            args=DPOConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    elif spec.trainer == "sft":
        from trl import SFTConfig, SFTTrainer

        # Conversational rows: loss on assistant turns only, via the template's
        # {% generation %} markers. Prompt/completion rows: loss on the completion (TRL default).
        trainer_args = {"assistant_only_loss": spec.conversational}
        trainer = SFTTrainer(
            model=load(),
            args=SFTConfig(**common, **trainer_args),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    else:
        from trl import KTOConfig, KTOTrainer

        trainer_args = {}
        trainer = KTOTrainer(
            model=load(),
            ref_model=load(),
            args=KTOConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    trainer.remove_callback(PrinterCallback)  # per-step logs would go to stdout
    first_example = _first_example_text(trainer, tokenizer, spec.trainer)
    trainer.train()

    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return {
        "trainer": type(trainer).__name__,
        "rows": len(dataset),
        "columns": list(spec.columns),
        "columns_dropped": dropped,
        "trainer_args": trainer_args,
        "steps": int(trainer.state.global_step),
        "losses": losses,
        "losses_finite": bool(losses) and all(math.isfinite(x) for x in losses),
        "first_example": first_example,
        "chat_template_applied": all(m in first_example for m in ROLE_MARKERS),
        "conversational": spec.conversational,
    }


def train_on_release(
    release_dir: Path,
    model_dir: Path,
    out_dir: Path,
    steps: int = 2,
    cache_dir: Path | None = None,
    *,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Run DPO / SFT / KTO for `steps` CPU steps on every known config the release card declares,
    so a format change is caught by the trainers that consume it rather than by a schema check.

    `model_dir` is used as is when it holds a model, else a tiny model is built there (tokenizer
    fitted on the release texts). Returns, per config: trainer name, rows, consumed and dropped
    columns, extra trainer arguments, steps run, logged losses, the decoded first training
    example and whether it carries the chat template's role markers."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    release_dir = Path(release_dir)
    out_dir = Path(out_dir)
    declared = read_card_configs(release_dir)
    unknown = sorted(set(declared) - set(CONFIG_SPECS))
    if unknown:
        raise ValueError(f"release declares configs this smoke test does not know: {unknown}")
    datasets = {
        name: load_release_config(release_dir, name, cache_dir)
        for name in CONFIG_SPECS
        if name in declared
    }
    if not datasets:
        raise ValueError(f"{release_dir / README} declares no configs")
    model_path = _ensure_model(model_dir, datasets, seed)
    return {
        name: _train_one(name, ds, model_path, out_dir, steps, seed)
        for name, ds in datasets.items()
    }
