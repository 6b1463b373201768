"""Stage 3 — multi-task instruction tuning. Reads top to bottom.

Default: LoRA (peft) on the attention and MLP projections of the **top** ``lora_layers`` layers,
plus the SID rows of the (untied) output head. Nothing below the lowest adapted layer needs a
gradient, so backpropagation stops there: on CPU a step costs little more than a forward pass
(measured in ``bench/RESULTS.md``). ``lora_layers=None`` adapts every layer; ``full=True``
fine-tunes every weight (LR about 1e-4 as in the paper). SID input rows are trained in stage 2;
set ``train_input_rows`` to keep them learning here (gradient then flows through every layer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neo_sdk.encoding import Encoded
from neo_sdk.errors import ConfigError
from neo_sdk.training._budget import MAX_MINUTES
from neo_sdk.training._loop import LoopConfig, LoopResult, LossPer, train_loop
from neo_sdk.training._rows import RowMask

log = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class InstructConfig:
    """Stage 3 settings; ``TrainSettings`` reads its LoRA defaults from here, and its optimiser
    defaults come from :class:`LoopConfig`."""

    full: bool = field(default=False, metadata={"help": "full fine-tuning instead of LoRA"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = 32
    lora_layers: int | None = field(default=8, metadata={"help": "adapt only the top N layers (None: all)"})
    train_output_rows: bool = True
    train_input_rows: bool = False
    max_steps: int | None = None
    max_minutes: float | None = MAX_MINUTES
    batch_size: int = LoopConfig.batch_size
    lr: float = LoopConfig.lr
    seed: int = 0
    grad_accum: int = 1
    loss_per: LossPer = field(default=LoopConfig.loss_per, metadata={"help": "token or example (see completion_loss)"})

    def __post_init__(self) -> None:
        if self.lora_r < 1:
            raise ConfigError("lora_r must be >= 1")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise ConfigError("lora_layers must be >= 1 or None (all layers)")


def add_lora(model: torch.nn.Module, config: InstructConfig) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (peft) on the top ``lora_layers`` layers."""
    from peft import LoraConfig, get_peft_model

    n_layers = int(model.config.num_hidden_layers)
    layers = None
    if config.lora_layers is not None:
        top = min(config.lora_layers, n_layers)
        layers = list(range(n_layers - top, n_layers))
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, bias="none",
        target_modules=list(LORA_TARGETS), layers_to_transform=layers, task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def trainable_parameters(
    model: torch.nn.Module, config: InstructConfig, new_rows: Sequence[int]
) -> tuple[list[tuple[str, torch.nn.Parameter]], RowMask | None]:
    """The named parameters stage 3 updates, and the row mask guarding the old vocabulary."""
    if config.full:
        for param in model.parameters():
            param.requires_grad_(True)
        return [(n, p) for n, p in model.named_parameters()], None
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # LoRA weights
    weights = []
    if config.train_output_rows:
        weights.append(("lm_head", model.get_output_embeddings().weight))
    if config.train_input_rows:
        weights.append(("embed_tokens", model.get_input_embeddings().weight))
    mask = RowMask([w for _, w in weights], new_rows) if weights else None
    return named + weights, mask


def instruct(
    model: torch.nn.Module,
    encoded: Sequence[Encoded],
    config: InstructConfig,
    *,
    new_rows: Sequence[int],
    pad_id: int,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
) -> tuple[torch.nn.Module, LoopResult]:
    """Run stage 3. Returns the (LoRA-wrapped unless ``full``) model and the loop result."""
    for param in model.parameters():
        param.requires_grad_(False)
    if not config.full:
        model = add_lora(model, config)
    params, mask = trainable_parameters(model, config, new_rows)
    loop = LoopConfig(
        max_steps=config.max_steps, max_minutes=config.max_minutes, batch_size=config.batch_size,
        lr=config.lr, warmup_steps=10, seed=config.seed, grad_accum=config.grad_accum, loss_per=config.loss_per,
    )
    try:
        result = train_loop(model, params, encoded, loop, pad_id=pad_id, checkpoint_dir=checkpoint_dir,
                            resume=resume, name="stage 3")
    finally:
        if mask is not None:
            mask.remove()
        for param in model.parameters():
            param.requires_grad_(False)
    return model, result
