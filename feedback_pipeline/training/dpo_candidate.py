"""The DPO policy candidate: train a small policy with TRL's DPOTrainer on base data plus one
arm, then score it on the frozen fixtures' expected checks from the answers it generates.

Where the preference model asks "does the model agree with reviewers on A vs B", this asks "does
a policy trained on these pairs behave as the fixtures require" (refuses the injected
instruction, cites the file, ...). Credit per frozen item is 1.0 when the greedy answer passes
every check of that item, 0.0 when it fails one, NaN for items without checks.

Without a model path (argument or FEEDBACK_DPO_MODEL) the policy is a tiny model built locally
(feedback_pipeline.training.tiny_model), its tokenizer fitted on the frozen items' texts and its
weights initialised from the seed: it exercises the whole path on a CPU but measures little.
With a path to a local small instruct model, and a GPU, the same code gives a meaningful
comparison. Nothing is fetched from a model hub: paths must be local.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_pipeline.core.fixtures import as_checks, check_answer

MODEL_ENV = "FEEDBACK_DPO_MODEL"
STEPS_ENV = "FEEDBACK_DPO_STEPS"
DEFAULT_STEPS = 8
# A freshly initialised tiny model needs a large step to move in a few updates; a pretrained
# model is fine-tuned at the usual DPO scale.
TINY_LEARNING_RATE = 5e-3
PRETRAINED_LEARNING_RATE = 5e-6
# DPO only moves the policy relative to its reference. A pretrained model already writes fluent
# answers, so that is enough; a randomly initialised one has no such prior, and the added
# negative log-likelihood on the chosen answer (TRL's "sft" loss, as in RPO) is what makes it
# write the chosen answers at all.
TINY_LOSS = ("sigmoid", "sft")
PRETRAINED_LOSS = ("sigmoid",)
TRAIN_COLUMNS = ("prompt", "chosen", "rejected")
EVAL_COLUMNS = ("prompt", "checks")
MAX_LENGTH = 1024  # prompt + answer tokens seen in training; longer prompts keep their end


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def _steps_from_env() -> int:
    raw = os.environ.get(STEPS_ENV, "").strip()
    if not raw:
        return DEFAULT_STEPS
    try:
        steps = int(raw)
    except ValueError as err:
        raise ValueError(f"{STEPS_ENV} must be a positive integer, got {raw!r}") from err
    if steps < 1:
        raise ValueError(f"{STEPS_ENV} must be a positive integer, got {raw!r}")
    return steps


class DpoPolicyCandidate:
    """A candidate (see feedback_pipeline.core.candidates) that trains a DPO policy and credits
    it on fixture checks."""

    name = "dpo_policy"

    def __init__(
        self,
        model_path: str | None = None,
        steps: int | None = None,
        max_new_tokens: int = 48,
        work_dir: Path | None = None,
        *,
        learning_rate: float | None = None,
        beta: float = 0.1,
        batch_size: int = 4,
        loss_type: Sequence[str] | None = None,
    ) -> None:
        """`model_path` None reads FEEDBACK_DPO_MODEL, and without it builds a tiny model;
        `steps` None reads FEEDBACK_DPO_STEPS (default 8); `learning_rate` and `loss_type`
        (TRL DPO loss names) None pick values for the kind of model."""
        path = model_path if model_path is not None else os.environ.get(MODEL_ENV) or None
        if path is not None and not Path(path).is_dir():
            raise ValueError(f"DPO model path {path!r} is not a local model directory")
        self.model_path = path
        self.steps = _steps_from_env() if steps is None else int(steps)
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.max_new_tokens = int(max_new_tokens)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        default_rate = TINY_LEARNING_RATE if path is None else PRETRAINED_LEARNING_RATE
        self.learning_rate = float(learning_rate) if learning_rate is not None else default_rate
        self.beta = float(beta)
        default_loss = TINY_LOSS if path is None else PRETRAINED_LOSS
        self.loss_type = tuple(loss_type) if loss_type is not None else default_loss
        if not self.loss_type:
            raise ValueError("loss_type needs at least one TRL DPO loss name")
        self.batch_size = int(batch_size)
        self.last_failures: list[list[str] | None] = []

    def credit(self, train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> np.ndarray:
        """Credit in {0.0, 1.0} per evaluation row from the trained policy's greedy answer; NaN
        for rows without checks. Zero train rows score the untrained base model."""
        missing = [c for c in TRAIN_COLUMNS if c not in train.columns]
        if missing and len(train):
            raise ValueError(f"train lacks columns {missing}")
        missing = [c for c in EVAL_COLUMNS if c not in evaluation.columns]
        if missing:
            raise ValueError(f"evaluation lacks columns {missing}")
        checks = [as_checks(c) for c in evaluation["checks"]]
        credit = np.full(len(evaluation), np.nan, dtype=np.float64)
        self.last_failures = [None] * len(evaluation)
        scored = [i for i, c in enumerate(checks) if c]
        if not scored:
            return credit
        prompts = [_text(p) for p in evaluation["prompt"]]

        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dpo-candidate-", dir=self.work_dir) as tmp:
            model, tokenizer = self._policy(train, evaluation, int(seed), Path(tmp))
            answers = _generate(model, tokenizer, [prompts[i] for i in scored],
                                self.max_new_tokens)
        for i, answer in zip(scored, answers, strict=True):
            passed, failed = check_answer(answer, checks[i])
            credit[i] = 1.0 if passed else 0.0
            self.last_failures[i] = failed
        return credit

    def _policy(self, train: pd.DataFrame, evaluation: pd.DataFrame, seed: int,
                tmp: Path) -> tuple[Any, Any]:
        """The base model, trained with DPO on `train` when it has rows, ready for generation."""
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
        except ImportError as err:  # pragma: no cover - depends on the installed extra
            raise ImportError(
                "the dpo_policy candidate needs the train extra: pip install -e '.[train]'"
            ) from err

        set_seed(seed)
        path = self.model_path
        if path is None:
            from feedback_pipeline.training.tiny_model import build_tiny_causal_lm

            path = str(build_tiny_causal_lm(_tokenizer_texts(evaluation), tmp / "base", seed))
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        cuda = torch.cuda.is_available()

        def load() -> Any:
            return AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, dtype=torch.float32
            )

        model = load()
        rows = _training_rows(train, chat=bool(tokenizer.chat_template))
        if rows:
            from datasets import Dataset
            from transformers.trainer_callback import PrinterCallback
            from trl import DPOConfig, DPOTrainer

            args = DPOConfig(
                output_dir=str(tmp / "dpo"),
                max_steps=self.steps,
                per_device_train_batch_size=min(self.batch_size, len(rows)),
                gradient_accumulation_steps=1,
                learning_rate=self.learning_rate,
                lr_scheduler_type="constant",
                warmup_steps=0,
                beta=self.beta,
                loss_type=list(self.loss_type),
                loss_weights=[1.0] * len(self.loss_type),
                max_length=MAX_LENGTH,
                seed=seed,
                data_seed=seed,
                use_cpu=not cuda,
                bf16=bool(cuda and torch.cuda.is_bf16_supported()),
                activation_checkpointing=False,
                report_to=[],
                logging_strategy="no",
                save_strategy="no",
                disable_tqdm=True,
                dataloader_num_workers=0,
            )
            trainer = DPOTrainer(
                model=model,
                ref_model=load(),
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
            )
            trainer.remove_callback(PrinterCallback)  # the closing metrics would go to stdout
            trainer.train()
            model = trainer.model
        elif cuda:
            model = model.to("cuda")
        model.eval()
        return model, tokenizer


def _tokenizer_texts(evaluation: pd.DataFrame) -> list[str]:
    """What a locally built tokenizer is fitted on: the frozen items' texts, which are the same
    for the baseline and both arms, so every candidate of a round starts from the same base
    model (the arm's own pairs would give each arm its own vocabulary and initialisation). Only
    the vocabulary sees them; byte-level BPE still encodes any other text, in more tokens."""
    columns = [c for c in ("prompt", "text_a", "text_b") if c in evaluation.columns]
    return [t for c in columns for t in map(_text, evaluation[c]) if t]


def _training_rows(train: pd.DataFrame, chat: bool) -> list[dict[str, Any]]:
    """TRL preference rows; conversational when the tokenizer has a chat template, so an instruct
    model is trained on the turns it is prompted with at generation."""
    if not len(train):
        return []
    rows = []
    for prompt, chosen, rejected in zip(*(train[c] for c in TRAIN_COLUMNS), strict=True):
        prompt, chosen, rejected = _text(prompt), _text(chosen), _text(rejected)
        if not chosen or not rejected or chosen == rejected:
            continue
        if chat:
            rows.append({
                "prompt": [{"role": "user", "content": prompt}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            })
        else:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def _generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy answers, one prompt at a time (no padding to get wrong), new tokens only."""
    import torch

    device = next(model.parameters()).device
    limit = max(1, MAX_LENGTH - max_new_tokens)
    answers = []
    for prompt in prompts:
        if tokenizer.chat_template:
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
            )["input_ids"]
        else:
            ids = tokenizer(prompt)["input_ids"]
        ids = list(ids)[-limit:]
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        answers.append(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
    return answers
