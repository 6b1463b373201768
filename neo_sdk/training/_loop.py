"""The budgeted training loop shared by both stages, on accelerate.

* Budgets: ``max_steps`` and/or ``max_minutes`` (whichever ends first). The learning rate follows
  a linear warm-up then a cosine decay over the budget's *progress* (the larger of the step
  fraction and the time fraction), so a time-budgeted run still ends at a low rate.
* Checkpoints every ``checkpoint_every`` optimizer steps (and at the end): the trainable tensors
  and the AdamW state in safetensors, the loop position and loss history in JSON, written to a
  temporary folder and renamed into place. ``resume=True`` continues from the last checkpoint:
  same batches, same schedule position. Nothing is pickled.
* accelerate places the model (CPU, one GPU, or many with ``accelerate launch``), uses bf16 on GPU
  (fp32 on CPU: bf16 autocast measured 0.6x speed there) and accumulates gradients. Each process
  takes every ``world_size``-th batch.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from neo_sdk._files import replace_dir
from neo_sdk.errors import ConfigError
from neo_sdk.training._format import Encoded, length_grouped_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    """Budget and optimiser settings of one training stage."""

    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 10
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 5
    loss_per: str = "token"  # "token": mean over completion tokens; "example": each example weighs the same

    def __post_init__(self) -> None:
        if self.max_steps is None and self.max_minutes is None:
            raise ConfigError("give a budget: max_steps and/or max_minutes")
        if (self.max_steps is not None and self.max_steps < 1) or (
            self.max_minutes is not None and self.max_minutes <= 0
        ):
            raise ConfigError("max_steps must be >= 1 and max_minutes > 0")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.loss_per not in ("token", "example"):
            raise ConfigError(f"loss_per must be 'token' or 'example' (got {self.loss_per!r})")


@dataclass
class LoopResult:
    steps: int
    examples: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _progress(step: int, elapsed: float, config: LoopConfig) -> float:
    parts = []
    if config.max_steps:
        parts.append(step / config.max_steps)
    if config.max_minutes:
        parts.append(elapsed / (60 * config.max_minutes))
    return min(1.0, max(parts))


def _lr_factor(step: int, progress: float, config: LoopConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train_loop(
    model: torch.nn.Module,
    params: Sequence[tuple[str, torch.nn.Parameter]],
    examples: Sequence[Encoded],
    config: LoopConfig,
    *,
    pad_id: int,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    name: str = "train",
    accelerator: Any = None,
    after_step: Callable[[int], None] | None = None,
) -> LoopResult:
    """Train ``params`` (named, trainable) on ``examples`` within the budget.

    Returns:
        Steps taken, examples seen, wall seconds and the per-step loss history.
    """
    from accelerate import Accelerator

    if not examples:
        raise ConfigError(f"{name}: no training examples")
    accelerator = accelerator or Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
    )
    torch.manual_seed(config.seed)
    named = dict(params)
    optimizer = torch.optim.AdamW(list(named.values()), lr=config.lr, betas=config.betas, weight_decay=0.0)
    state = {"step": 0, "epoch": 0, "batch": 0, "elapsed": 0.0, "examples": 0, "losses": []}
    if resume and checkpoint_dir is not None and (checkpoint_dir / "loop.json").exists():
        state = _load_checkpoint(checkpoint_dir, named, optimizer)
        log.info("%s: resuming at step %d", name, state["step"])
    resumed_from = int(state["step"])
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    start = time.perf_counter() - float(state["elapsed"])
    world, rank = accelerator.num_processes, accelerator.process_index
    total = config.max_steps
    bar = tqdm(total=total, initial=int(state["step"]), desc=name, unit="step",
               disable=not accelerator.is_main_process)
    done = False
    while not done:
        batches = length_grouped_batches(
            examples, config.batch_size, seed=config.seed, pad_id=pad_id, epoch=int(state["epoch"])
        )
        for index, batch in enumerate(batches):
            if index < int(state["batch"]) or index % world != rank:
                continue
            with accelerator.accumulate(model):
                if world == 1:
                    loss = completion_loss(model, batch, accelerator.device, per_example=config.loss_per == "example")
                else:  # DDP needs its own forward; the model computes full-sequence logits
                    loss = model(
                        input_ids=batch.input_ids.to(accelerator.device),
                        attention_mask=batch.attention_mask.to(accelerator.device),
                        labels=batch.labels.to(accelerator.device),
                    ).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(list(named.values()), config.clip)
                    progress = _progress(int(state["step"]), time.perf_counter() - start, config)
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * _lr_factor(int(state["step"]), progress, config)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state["batch"] = index + 1
            state["examples"] = int(state["examples"]) + len(batch.input_ids) * world
            if not accelerator.sync_gradients:
                continue
            state["step"] = int(state["step"]) + 1
            state["losses"].append(round(float(loss.detach()), 5))
            bar.update(1)
            if int(state["step"]) % config.log_every == 0:
                recent = state["losses"][-config.log_every :]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
            if after_step is not None:
                after_step(int(state["step"]))
            elapsed = time.perf_counter() - start
            state["elapsed"] = elapsed
            if checkpoint_dir is not None and int(state["step"]) % config.checkpoint_every == 0:
                _save_checkpoint(checkpoint_dir, named, optimizer, state, accelerator)
            if _progress(int(state["step"]), elapsed, config) >= 1.0:
                done = True
                break
        else:
            state["epoch"] = int(state["epoch"]) + 1
            state["batch"] = 0
    bar.close()
    model.eval()
    state["elapsed"] = time.perf_counter() - start
    if checkpoint_dir is not None:
        _save_checkpoint(checkpoint_dir, named, optimizer, state, accelerator)
    return LoopResult(int(state["step"]), int(state["examples"]), float(state["elapsed"]),
                      list(state["losses"]), resumed_from)


def completion_loss(model: torch.nn.Module, batch: Any, device: Any, *, per_example: bool = False) -> torch.Tensor:
    """Cross-entropy on completion tokens, applying the output head only where a label exists.

    Most positions are prompt: computing the 50k-way head on them all (what ``model(labels=...)``
    does) was the largest single cost of a CPU step. Same value as the model's own loss.

    ``per_example``: average within each example first, then over examples, so a 5-token id
    completion weighs as much as a 40-token explanation (token averaging lets long text
    completions dominate a multi-task batch).
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = inner.get_decoder()
    hidden = body(input_ids=batch.input_ids.to(device),
                  attention_mask=batch.attention_mask.to(device)).last_hidden_state
    labels = batch.labels[:, 1:].to(device)  # position p predicts token p + 1
    keep = labels != -100
    logits = inner.get_output_embeddings()(hidden[:, :-1][keep])
    if not per_example:
        return torch.nn.functional.cross_entropy(logits.float(), labels[keep])
    token_loss = torch.nn.functional.cross_entropy(logits.float(), labels[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    per_row = torch.zeros(keep.shape[0], device=token_loss.device).index_add_(0, rows, token_loss)
    counts = keep.sum(1)
    has = counts > 0
    return (per_row[has] / counts[has]).mean()


def _save_checkpoint(
    directory: Path, named: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer,
    state: dict[str, Any], accelerator: Any,
) -> None:
    if not accelerator.is_main_process:
        return
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in named.items()}, str(tmp / "params.safetensors"))
    opt_state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, slots in opt_state["state"].items():
        for slot, value in slots.items():
            tensors[f"{index}.{slot}"] = torch.as_tensor(value).detach().cpu().contiguous()
    if tensors:
        save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "loop.json").write_text(json.dumps({**state, "param_names": list(named)}, sort_keys=True))
    replace_dir(tmp, directory)


def _load_checkpoint(
    directory: Path, named: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    state = json.loads((directory / "loop.json").read_text())
    if state.pop("param_names") != list(named):
        raise ConfigError(f"checkpoint {directory} was written for other trainable parameters; "
                          "start without --resume")
    saved = load_file(str(directory / "params.safetensors"))
    with torch.no_grad():
        for key, param in named.items():
            param.copy_(saved[key])
    if (directory / "optimizer.safetensors").exists():
        tensors = load_file(str(directory / "optimizer.safetensors"))
        opt_state = optimizer.state_dict()
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            index, slot = key.split(".", 1)
            slots.setdefault(int(index), {})[slot] = value
        opt_state["state"] = slots
        optimizer.load_state_dict(opt_state)
    return state


def plot_losses(curves: dict[str, Sequence[float]], path: Path) -> Path:
    """Write a loss-curve PNG (one line per stage, smoothed over 10 steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    offset = 0
    for label, losses in curves.items():
        if not losses:
            continue
        window = 10
        smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
                  for i in range(len(losses))]
        ax.plot(range(offset, offset + len(losses)), smooth, label=label)
        offset += len(losses)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (10-step mean)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
