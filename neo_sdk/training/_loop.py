"""The budgeted training loop shared by both stages, on accelerate.

* Budgets: ``max_steps`` and/or ``max_minutes`` (whichever ends first). The learning rate follows
  a linear warm-up then a cosine decay over the budget's *progress* (the larger of the step
  fraction and the time fraction), so a time-budgeted run still ends at a low rate.
* Checkpoints every ``checkpoint_every`` optimizer steps (and at the end): the trainable tensors
  and the AdamW state in safetensors, the loop position and loss history in JSON, written to a
  temporary folder and renamed into place. ``resume=True`` continues from the last checkpoint:
  same batches, same schedule position. Nothing is pickled.
* accelerate places the model (CPU, one GPU, or many with ``accelerate launch``), uses bf16 on GPU
  (fp32 on CPU: bf16 autocast measured 0.6x speed there) and accumulates gradients.
* Several processes (``accelerate launch --multi_gpu --num_processes N -m neo_sdk train ...``; on a
  machine without GPUs the same command runs N CPU processes over gloo, see :func:`process_state`)
  share one run: every process walks the same shuffled batch order and takes one batch of each
  consecutive group of ``world_size`` (a tail shorter than a group is left for the next epoch, so
  every process takes as many batches as the others and the gradient all-reduces always pair up).
  The main process decides when to stop and the others follow: after each optimizer step one small
  all-reduce carries the main process's clock and budget progress with the mean loss and the example
  count, so a time budget ends every process at the same step (a process stopping alone would
  leave the others waiting in an all-reduce) and the learning rate is the same everywhere (each
  process's own budget may differ: the main process's rules).
  Only the main process writes checkpoints. ``LoopResult.processes`` records what each process
  trained on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, get_args

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from neo_sdk._files import replace_dir
from neo_sdk.encoding import Encoded
from neo_sdk.errors import ConfigError
from neo_sdk.training._format import length_grouped_batches

log = logging.getLogger(__name__)

LossPer = Literal["token", "example"]
"""``token``: the mean over completion tokens; ``example``: each example weighs the same."""
LOSS_PER: tuple[str, ...] = get_args(LossPer)


@dataclass(frozen=True)
class LoopConfig:
    """Budget and optimiser settings of one training stage.

    Its ``batch_size``, ``lr`` and ``loss_per`` are the defaults of stage 3 (``InstructConfig``) and
    of ``neo train`` (``TrainSettings``), which read them from here.
    """

    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 8  # at a CPU budget more updates beat bigger batches: 8 beat 4 and 16 (bench/RESULTS.md)
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 10
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 5
    loss_per: LossPer = "token"

    def __post_init__(self) -> None:
        if self.max_steps is None and self.max_minutes is None:
            raise ConfigError("give a budget: max_steps and/or max_minutes")
        if (self.max_steps is not None and self.max_steps < 1) or (
            self.max_minutes is not None and self.max_minutes <= 0
        ):
            raise ConfigError("max_steps must be >= 1 and max_minutes > 0")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.loss_per not in LOSS_PER:
            raise ConfigError(f"loss_per must be one of {', '.join(LOSS_PER)} (got {self.loss_per!r})")


@dataclass
class LoopResult:
    """What a loop did. ``examples`` counts every process's; ``losses`` are per-step means over the
    processes; ``processes`` (one entry per process, rank order) holds the batches and examples each
    trained on and the indices of its first batches in the shared order (disjoint across processes)."""

    steps: int
    examples: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    world_size: int = 1
    processes: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def use_cpu() -> bool:
    """Whether training runs on the CPU: no CUDA device, or ``ACCELERATE_USE_CPU`` set (the
    variable ``accelerate launch --cpu`` sets)."""
    flag = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes")
    return flag or not torch.cuda.is_available()


def process_state() -> Any:
    """The process's accelerate state (rank, world size, device), created CPU-aware.

    accelerate only forms a CPU process group when asked for the CPU on the first call; a plain
    ``PartialState()`` under a multi-process launch on a machine without GPUs makes every process
    believe it runs alone (each then trains on everything and writes the bundle). Call this before
    anything else touches accelerate.
    """
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


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
        Steps taken, examples seen (all processes), wall seconds, the per-step loss history and,
        under several processes, what each one trained on.
    """
    from accelerate import Accelerator

    if not examples:
        raise ConfigError(f"{name}: no training examples")
    process_state()  # CPU-aware first, so a multi-process launch without GPUs forms a gloo group
    accelerator = accelerator or Accelerator(
        gradient_accumulation_steps=config.grad_accum, cpu=use_cpu(),
        mixed_precision="bf16" if torch.cuda.is_available() and not use_cpu() else "no",
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched != world:  # every process would train alone on everything and write the same files
        raise ConfigError(f"{name}: launched as {launched} processes but accelerate runs {world}: the"
                          " accelerate state was created before neo_sdk.training._loop.process_state() (CPU-aware)")
    torch.manual_seed(config.seed)
    named = dict(params)
    optimizer = torch.optim.AdamW(list(named.values()), lr=config.lr, betas=config.betas, weight_decay=0.0)
    state = {"step": 0, "epoch": 0, "batch": 0, "elapsed": 0.0, "examples": 0, "losses": []}
    if resume and checkpoint_dir is not None and (checkpoint_dir / "loop.json").exists():
        state = _load_checkpoint(checkpoint_dir, named, optimizer)
        log.info("%s: resuming at step %d", name, state["step"])
    resumed_from = int(state["step"])
    per_example = config.loss_per == "example"
    if world == 1:
        model, optimizer = accelerator.prepare(model, optimizer)
        trained = model
    else:  # DDP wraps the loss itself: its forward is the cheap completion loss, not full-vocabulary logits
        trained, optimizer = accelerator.prepare(_CompletionLoss(model, per_example), optimizer)
    trained.train()
    start = time.perf_counter() - float(state["elapsed"])
    total = config.max_steps
    bar = tqdm(total=total, initial=int(state["step"]), desc=name, unit="step",
               disable=not accelerator.is_main_process)
    mine: dict[str, Any] = {"rank": rank, "batches": 0, "examples": 0, "first_batches": []}  # this process's share
    pending = 0  # examples of this process since the last optimizer step
    shared_progress = _progress(int(state["step"]), float(state["elapsed"]), config)  # replaced by the main's
    done = False
    while not done:
        batches = length_grouped_batches(
            examples, config.batch_size, seed=config.seed, pad_id=pad_id, epoch=int(state["epoch"])
        )
        taken = 0
        for index, batch in _shard(batches, world, rank):
            taken += 1
            if index < int(state["batch"]):
                continue
            with accelerator.accumulate(trained):
                if world == 1:
                    loss = completion_loss(model, batch, accelerator.device, per_example=per_example)
                else:
                    loss = trained(batch.input_ids.to(accelerator.device), batch.attention_mask.to(accelerator.device),
                                   batch.labels.to(accelerator.device))
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(list(named.values()), config.clip)
                    # one schedule for every process: the main process's progress, as last shared
                    progress = (_progress(int(state["step"]), time.perf_counter() - start, config) if world == 1
                                else shared_progress)
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * _lr_factor(int(state["step"]), progress, config)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state["batch"] = (index // world + 1) * world  # resume after this process group
            mine["batches"] += 1
            mine["examples"] += len(batch.input_ids)
            if len(mine["first_batches"]) < 8:
                mine["first_batches"].append(index)
            pending += len(batch.input_ids)
            if not accelerator.sync_gradients:
                continue
            step = int(state["step"]) + 1
            if after_step is not None:
                after_step(step)
            elapsed = time.perf_counter() - start
            progress = _progress(step, elapsed, config)
            loss_value = float(loss.detach())
            if world > 1:  # the main process's clock and budget progress, everyone's loss and examples
                loss_value, pending, elapsed, progress = _share(accelerator, loss_value, pending, elapsed, progress)
                shared_progress = progress
            stop = progress >= 1.0
            state["step"] = step
            state["examples"] = int(state["examples"]) + pending
            pending = 0
            state["losses"].append(round(loss_value, 5))
            state["elapsed"] = elapsed
            bar.update(1)
            if step % config.log_every == 0:
                recent = state["losses"][-config.log_every :]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
            if checkpoint_dir is not None and step % config.checkpoint_every == 0:
                _save_checkpoint(checkpoint_dir, named, optimizer, state, accelerator)
            if stop:
                done = True
                break
        else:
            if taken == 0:
                raise ConfigError(f"{name}: {len(examples)} examples make fewer batches of {config.batch_size}"
                                  f" than the {world} processes; use fewer processes or a smaller batch")
            state["epoch"] = int(state["epoch"]) + 1
            state["batch"] = 0
    bar.close()
    trained.eval()
    model.eval()
    processes = _gather_shares(accelerator, mine) if world > 1 else [mine]
    if world > 1:
        log.info("%s: %d processes, batches per process %s", name, world, [p["batches"] for p in processes])
    state["elapsed"] = time.perf_counter() - start if world == 1 else float(state["elapsed"])
    if checkpoint_dir is not None:
        _save_checkpoint(checkpoint_dir, named, optimizer, state, accelerator)
    return LoopResult(int(state["step"]), int(state["examples"]), float(state["elapsed"]),
                      list(state["losses"]), resumed_from, world, processes)


def _shard(batches: Iterable[Any], world: int, rank: int) -> Iterator[tuple[int, Any]]:
    """``(index, batch)`` of this process: one batch of each full group of ``world`` consecutive
    batches (the ``rank``-th). A last group with fewer than ``world`` batches is dropped, so every
    process gets the same number of batches (one process with an extra batch would wait forever in
    its gradient all-reduce)."""
    group: list[tuple[int, Any]] = []
    for index, batch in enumerate(batches):
        group.append((index, batch))
        if len(group) == world:
            yield group[rank]
            group = []


def _share(accelerator: Any, loss: float, examples: int, elapsed: float,
           progress: float) -> tuple[float, int, float, float]:
    """One all-reduce after an optimizer step: the mean loss, the examples of every process, and
    the main process's clock and budget progress (the others contribute zeros). The progress sets
    every process's learning rate and, at 1, stops them all: each process's own budget may differ
    (it is what the pipeline left after that process's own stage 2), the main process's rules."""
    main = accelerator.is_main_process
    values = torch.tensor([loss, float(examples), elapsed if main else 0.0, progress if main else 0.0],
                          dtype=torch.float64, device=accelerator.device)
    torch.distributed.all_reduce(values)
    total_loss, total_examples, shared_elapsed, shared_progress = values.tolist()
    return total_loss / accelerator.num_processes, int(total_examples), shared_elapsed, shared_progress


def _gather_shares(accelerator: Any, mine: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process's ``{batches, examples, first_batches}``, in rank order (a collective).

    Each process fills its own row, shifted by one so the zeros of the other rows add nothing
    (``-1`` marks an unused batch slot)."""
    slots = 8
    rows = torch.zeros((accelerator.num_processes, 2 + slots), dtype=torch.float64, device=accelerator.device)
    first = list(mine["first_batches"])[:slots]
    own = [mine["batches"], mine["examples"], *first, *([-1] * (slots - len(first)))]
    rows[accelerator.process_index] = torch.tensor(own, dtype=torch.float64, device=accelerator.device) + 1
    torch.distributed.all_reduce(rows)
    out = []
    for rank, row in enumerate((rows - 1).tolist()):
        out.append({"rank": rank, "batches": int(row[0]), "examples": int(row[1]),
                    "first_batches": [int(v) for v in row[2:] if v >= 0]})
    return out


class _CompletionLoss(torch.nn.Module):
    """:func:`completion_loss` as a module, so DistributedDataParallel wraps the loss itself (its
    forward must run for the gradient all-reduce) and keeps the cheap output head."""

    def __init__(self, model: torch.nn.Module, per_example: bool) -> None:
        super().__init__()
        self.model = model
        self.per_example = per_example

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch = SimpleNamespace(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        return completion_loss(self.model, batch, input_ids.device, per_example=self.per_example)


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
    """Write a loss-curve PNG (one line per stage, smoothed over 10 steps).

    Draws on its own Agg canvas: no pyplot, so a notebook's backend and figures are left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
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
    return path
