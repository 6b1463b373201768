"""``neo train``: catalog + SIDs -> stage 2 -> stage 3 -> bundle, within a time budget."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import random
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from neo_sdk._names import ALIGNMENT_TASKS, TASKS, Task
from neo_sdk.catalog import Catalog, Split, leave_one_out
from neo_sdk.decoding import build_decoder
from neo_sdk.encoding import ExampleEncoder
from neo_sdk.errors import ConfigError
from neo_sdk.model import DEFAULT_BASE, load_base_model, resolve_base
from neo_sdk.prompts import PromptSet, default_prompts_dir, load_prompts
from neo_sdk.sids import SIDTable
from neo_sdk.tasks import (
    GROUNDS_VERSION,
    MAX_HISTORY,
    CatalogFacts,
    InstructionConfig,
    LangChainTeacher,
    Teacher,
    build_alignment_examples,
    build_instruction_examples,
)
from neo_sdk.training._budget import (
    MAX_MINUTES,
    MIN_FEATURE_EXAMPLES,
    SAVE_RESERVE_SECONDS,
    fit_seconds,
    mean_length,
    plan_budget,
    seconds_per_token,
)
from neo_sdk.training._loop import LossPer, plot_losses
from neo_sdk.training._probe import (
    probe_next_item,
    probe_sid_to_type,
    probe_text_to_sid,
)
from neo_sdk.training.alignment import AlignConfig, align, fit_sample, sid_rows
from neo_sdk.training.instruction import InstructConfig, instruct
from neo_sdk.vocab import SIDVocab

log = logging.getLogger(__name__)

Stage = Literal["align", "instruct", "all"]
"""``align``: stage 2 only; ``instruct``: stage 3, continuing from a stage-2 bundle; ``all``: both."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything ``neo train`` can set; saved in the bundle manifest.

    Each default is read from where the concept lives (``InstructConfig`` and ``LoopConfig`` for
    the optimiser and LoRA, ``AlignConfig`` for the output fit, ``neo_sdk.tasks`` for the prompts,
    ``neo_sdk._names`` for the tasks, ``neo_sdk.training._budget`` for the budget). Every field is
    checked when the settings are made, so a bad value fails before a minute is spent
    (:class:`~neo_sdk.errors.ConfigError` naming the field and what it allows).

    ``neo train``'s flags are generated from these fields (:mod:`neo_sdk.cli._train`): the type
    gives the parser and choices, ``metadata["help"]`` the help; ``metadata["flag"]`` names the
    flag when it is not ``--field-name`` (a bool that defaults to true gets ``--no-field-name``),
    ``metadata["none"]`` is the command-line value that stands for ``None``, ``metadata["repeat"]``
    makes the flag repeatable and ``metadata["metavar"]`` names its value.
    """

    base: str = field(default=DEFAULT_BASE, metadata={"help": "base model alias or local HF folder"})
    num_hidden_layers: int | None = field(default=None, metadata={
        "help": "fast preset: keep only the first N layers of the base model", "flag": "--layers"})
    stage: Stage = field(default="all", metadata={
        "help": "align: stage 2 only; instruct: stage 3, continuing from the stage-2 bundle at --out; all: both"})
    max_minutes: float = field(default=MAX_MINUTES, metadata={
        "help": "budget for the whole run (loading, both stages, saving); the plan of what it buys is"
                " printed first; the quality probes run after it, timed apart"})
    align_share: float = field(default=0.25, metadata={
        "help": "largest share of the budget stage 2 may take (its feature pass shrinks to fit)"})
    max_steps: int | None = field(default=None, metadata={"help": "cap on stage 3 optimizer steps"})
    full: bool = field(default=False, metadata={"help": "full fine-tuning in stage 3 instead of LoRA"})
    lora_layers: int | None = field(default=InstructConfig.lora_layers, metadata={
        "help": "LoRA on the top N layers (0 on the command line, None in Python: every layer)", "none": 0})
    lora_r: int = field(default=InstructConfig.lora_r, metadata={"help": "LoRA rank of stage 3's adapters"})
    batch_size: int = field(default=InstructConfig.batch_size, metadata={
        "help": "stage 3 batch: at a CPU budget more updates beat bigger batches (8 beat 4 and 16 at"
                " 15 CPU minutes, bench/RESULTS.md)"})
    lr: float = field(default=InstructConfig.lr, metadata={
        "help": "stage 3 learning rate: 1e-3 beat 5e-4 at batch 8 and 15 CPU minutes"})
    max_history: int = field(default=MAX_HISTORY, metadata={
        "help": "history items in a stage 3 prompt (the most recent); the bundle records it for answering"})
    cuts_per_user: int = field(default=InstructionConfig.cuts_per_user, metadata={
        "help": "next-item examples per user (cut points in their history, the last one always)"})
    instruction_tasks: tuple[Task, ...] = field(default=TASKS, metadata={
        "help": "stage 3 tasks, comma-separated", "flag": "--tasks", "metavar": "TASK,..."})
    target_types: tuple[str, ...] = field(default=(), metadata={
        "help": "entity types the next-item probes target (repeatable or comma-separated; default: every"
                " type users interact with, in proportion to its share of the log)",
        "flag": "--type", "repeat": True, "metavar": "TYPE"})
    replay_share: float = field(default=0.2, metadata={
        "help": "stage 2 examples mixed into stage 3, as a share of its examples"})
    replay_weights: tuple[tuple[str, float], ...] = field(
        default=(("sid_to_type", 4.0), ("sid_to_text", 1.0), ("text_to_sid", 1.0)),
        metadata={"help": "relative share of each stage 2 task in the replay, split equally per entity type;"
                          " tasks left out are not replayed", "metavar": "TASK=WEIGHT,..."})
    loss_per: LossPer = field(default=InstructConfig.loss_per, metadata={
        "help": "stage 3 loss: the mean over tokens, or each example weighs the same"})
    history_loss: bool = field(default=True, metadata={
        "help": "next-item examples also supervise the SID codes of their history (ExampleEncoder)"})
    fit_steps: int = field(default=AlignConfig.fit_steps, metadata={
        "help": "AdamW steps of stage 2's output fit (SID output rows on cached features)"})
    probe_users: int = field(default=200, metadata={"help": "users sampled for the next-item probe"})
    probe_items: int = field(default=200, metadata={
        "help": "items sampled for the text -> SID and SID -> type probes"})
    teacher: str | None = field(default=None, metadata={
        "help": "a LangChain chat model, 'module:factory', that writes stage 3's explanations and profiles"
                " (answers cached in OUT.work/teacher.db); a label is kept only when the groundedness"
                " checker finds a claim and every claim true, else the catalog-facts template's is used",
        "metavar": "MODULE:FACTORY"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # types first: the rules below compare values
            object.__setattr__(self, f.name, _conform(f.name, getattr(self, f.name), _hints()[f.name]))
        unknown = sorted({task for task, _ in self.replay_weights} - set(ALIGNMENT_TASKS))
        rules = (  # field, holds, what it allows
            ("base", bool(self.base.strip()), "a non-empty model alias or folder"),
            ("num_hidden_layers", self.num_hidden_layers is None or self.num_hidden_layers >= 1,
             ">= 1, or None for every layer"),
            ("max_minutes", self.max_minutes > 0, "> 0"),
            ("align_share", 0 < self.align_share < 1, "in (0, 1)"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, ">= 1, or None (the budget decides)"),
            ("lora_layers", self.lora_layers is None or self.lora_layers >= 1, ">= 1, or None for every layer"),
            ("lora_r", self.lora_r >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("max_history", self.max_history >= 1, ">= 1"),
            ("cuts_per_user", self.cuts_per_user >= 1, ">= 1"),
            ("instruction_tasks", 0 < len(self.instruction_tasks) == len(set(self.instruction_tasks)),
             f"one or more of {', '.join(TASKS)}, each once"),
            ("target_types", all(t.strip() for t in self.target_types), "non-empty entity type names"),
            ("replay_share", 0 <= self.replay_share <= 1, "in [0, 1]"),
            ("replay_weights", not unknown,
             f"TASK=WEIGHT pairs of stage 2 tasks ({', '.join(ALIGNMENT_TASKS)}): unknown task(s) {unknown}"),
            ("replay_weights", all(w >= 0 for _, w in self.replay_weights), "weights >= 0"),
            ("replay_weights", len({t for t, _ in self.replay_weights}) == len(self.replay_weights),
             "one weight per task"),
            ("fit_steps", self.fit_steps >= 0, ">= 0"),
            ("probe_users", self.probe_users >= 1, ">= 1"),
            ("probe_items", self.probe_items >= 1, ">= 1"),
            ("teacher", self.teacher is None or all(p.strip() for p in self.teacher.partition(":")),
             "'module:factory', a function returning a LangChain chat model (or None: the template teacher)"),
        )
        for name, holds, allowed in rules:
            if not holds:
                raise ConfigError(f"{name} must be {allowed} (got {getattr(self, name)!r})")


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainSettings)


def _conform(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it is of type ``hint`` (a list where a tuple is due becomes one: JSON has no
    tuples), else :class:`ConfigError` naming the field and the type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            try:
                return _conform(name, value, inner[0])
            except ConfigError:
                pass
    elif origin is Literal:
        if value in args:
            return value
    elif origin is tuple and isinstance(value, (tuple, list)):
        items = args[:1] * len(value) if args[-1:] == (Ellipsis,) else args
        if len(items) == len(value):
            try:
                return tuple(_conform(name, v, t) for v, t in zip(value, items))
            except ConfigError:
                pass
    elif hint is str and isinstance(value, os.PathLike):  # base: a local folder
        return os.fspath(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise ConfigError(f"{name} must be {_describe(hint)} (got {value!r})")


_UNIONS = (typing.Union, types.UnionType)
_TYPE_WORDS = {int: "an int", float: "a number", str: "a str", bool: "a bool"}


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        return " or ".join("None" if a is type(None) else _describe(a) for a in args)
    if origin is Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin is tuple:
        if args[-1:] == (Ellipsis,):
            return f"a tuple of ({_describe(args[0])})"
        return f"a pair ({', '.join(_describe(a) for a in args)})"
    return _TYPE_WORDS.get(hint, hint.__name__)


def balanced_sample(examples: list[Any], n: int, rng: random.Random, *, key: Any,
                    weight: Any = None) -> list[Any]:
    """About ``n`` examples, shared among the groups ``key`` makes in proportion to ``weight(group)``
    (default: equal shares); a group smaller than its share gives all it has, its slack going to the rest.

    Replay is drawn this way so each (task, entity type) is rehearsed on purpose: drawn in proportion,
    people (70% of the demo's items) crowded out movies and SID -> type answered "person" for
    10 of 16 movies.
    """
    weight = weight or (lambda group: 1.0)
    groups: dict[Any, list[Any]] = {}
    for example in examples:
        groups.setdefault(key(example), []).append(example)
    weights = {g: float(weight(g)) for g in groups}  # >= 0: TrainSettings checks replay_weights
    out: list[Any] = []
    remaining, weight_left = n, sum(weights.values())
    # groups that fill up soonest relative to their share go first; their slack goes to the rest
    for g in sorted(groups, key=lambda g: len(groups[g]) / weights[g] if weights[g] else 0.0):
        share = remaining * weights[g] / weight_left if weight_left else 0.0
        take = min(len(groups[g]), int(share))
        out += rng.sample(groups[g], take)
        remaining -= take
        weight_left -= weights[g]
    return out


def _teacher(spec: str | None, catalog: Catalog, split: Split, prompts: PromptSet, work: Path) -> Teacher | None:
    """The stage-3 teacher ``--teacher`` names, its labels checked against the training facts."""
    if spec is None:
        return None
    from neo_sdk.retrieval import GroundednessChecker

    checker = GroundednessChecker(CatalogFacts(catalog, prompts, split.train))
    return LangChainTeacher(spec, cache=work / "teacher.db", check=checker)


def train(db: str | Path, out: str | Path, settings: TrainSettings, *, resume: bool = False,
          probes: bool = True) -> dict[str, Any]:
    """Train a bundle from a catalog with SIDs. Returns the metrics written to the manifest.

    ``settings.max_minutes`` bounds everything but the probes: the plan of what it buys is logged
    before training (``neo_sdk.training._budget``) and saved in the metrics as ``budget``.
    """
    from neo_sdk.bundle import load_bundle, save_bundle
    from neo_sdk.training._loop import process_state

    state = process_state()  # CPU-aware: N processes without GPUs form one CPU (gloo) group
    main_process = state.is_main_process  # under `accelerate launch`, one writer
    probes = probes and main_process
    started = time.perf_counter()
    deadline = started + settings.max_minutes * 60
    out = Path(out)
    work = out.with_name(out.name + ".work")
    catalog = Catalog(db)
    table = SIDTable.load(catalog)
    types = catalog.target_types(settings.target_types)  # checked before any minutes are spent
    work.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts()
    metrics: dict[str, Any] = {"stage": settings.stage, "target_types": types}
    curves: dict[str, list[float]] = {}
    torch.manual_seed(settings.seed)
    run_align, run_instruct = settings.stage in ("align", "all"), settings.stage in ("instruct", "all")

    if settings.stage == "instruct":  # continue from a stage-2 bundle at `out`
        contents = load_bundle(out, catalog=catalog, merge=False)
        if contents.manifest["kind"] != "rows":
            raise ConfigError(f"{out} already holds a stage-3 model ({contents.manifest['kind']});"
                              " --stage instruct continues from a stage-2 bundle (--stage align)")
        model, tokenizer, vocab = contents.model, contents.tokenizer, contents.vocab
        metrics.update(contents.manifest.get("metrics", {}))
    else:
        device = str(state.device) if state.device.type == "cuda" else None  # one GPU per process
        model, tokenizer = load_base_model(settings.base, num_hidden_layers=settings.num_hidden_layers,
                                           device=device)
        vocab = SIDVocab.from_table(table)
        vocab.attach(tokenizer)
        vocab.resize_model(model, seed=settings.seed)
    encoder = ExampleEncoder(tokenizer, vocab, system=prompts.system)
    facts = CatalogFacts(catalog, prompts)
    pad_id = encoder.pad_id

    # ---- every example first, so the plan can say what the budget buys before training starts
    align_config = AlignConfig(seed=settings.seed, fit_steps=settings.fit_steps)
    align_examples = build_alignment_examples(catalog, prompts, seed=settings.seed, facts=facts) if run_align else []
    split = leave_one_out(catalog) if run_instruct else None
    encoded: list[Any] = []
    if run_instruct:
        assert split is not None
        teacher = _teacher(settings.teacher, catalog, split, prompts, work)
        examples = build_instruction_examples(
            catalog, split, prompts, seed=settings.seed, tasks=settings.instruction_tasks,
            max_history=settings.max_history, cuts_per_user=settings.cuts_per_user, teacher=teacher,
        )
        if isinstance(teacher, LangChainTeacher):
            metrics["teacher"] = {"name": teacher.name, "model_calls": teacher.calls,
                                  "labels_kept": teacher.kept, "labels_replaced": teacher.replaced}
            log.info("teacher %s: %d labels kept, %d replaced by the template's (a claim false or none)",
                     teacher.name, teacher.kept, teacher.replaced)
            teacher.close()
        # Replay stage 2 so the adapters keep it: without replay a GPU run never learned SID -> type.
        # Two and four times the SID -> type examples took it from 0.80 to 0.97 and 0.987; three
        # times the text -> SID examples did not keep text -> SID, which the adapters erase
        # (bench/RESULTS.md).
        replay_weights = {task: w for task, w in settings.replay_weights if w > 0}
        replay = build_alignment_examples(catalog, prompts, seed=settings.seed + 1, facts=facts,
                                          tasks=tuple(replay_weights), queries_per_item=1) if replay_weights else []
        rng = random.Random(settings.seed)
        examples += balanced_sample(replay, int(len(examples) * settings.replay_share), rng,
                                    key=lambda e: (e.task, facts.type_of(e.meta["item"]) if "item" in e.meta else None),
                                    weight=lambda group: replay_weights[group[0]])
        train_encoder = ExampleEncoder(tokenizer, vocab, system=prompts.system,
                                       history_loss=("next_item",) if settings.history_loss else ())
        encoded = [train_encoder.encode(e) for e in examples]

    # ---- the plan: measured forward passes, then the split of what is left
    wanted = len(fit_sample(align_examples, align_examples, align_config))  # the feature pass's examples
    align_sample = [encoder.encode(e) for e in random.Random(settings.seed).sample(
        align_examples, min(200, len(align_examples)))]
    per_token = seconds_per_token(model, align_sample or encoded, pad_id=pad_id)
    plan = plan_budget(
        total_seconds=settings.max_minutes * 60, spent_seconds=time.perf_counter() - started,
        align_share=settings.align_share, stages=settings.stage,
        feature_seconds_per_example=per_token * mean_length(align_sample),
        feature_examples_wanted=wanted, instruct_examples=len(encoded),
        output_fit_seconds=fit_seconds(
            steps=align_config.fit_steps if run_align else 0, positions=wanted * 8,  # supervised tokens: a SID span or a short text
            new_tokens=len(sid_rows(vocab)), hidden=int(model.config.hidden_size)),
        batch_seconds=per_token * mean_length(encoded) * settings.batch_size,
        batch_size=settings.batch_size, full=settings.full, max_steps=settings.max_steps,
    )
    log.info("%s", plan.describe())
    metrics["budget"] = dataclasses.asdict(plan) | {"epochs": round(plan.epochs, 3)}

    probe_seconds = 0.0  # the probes evaluate; the budget is for training
    if run_align:
        if plan.align_examples < wanted:  # the budget is short: fewer text -> SID queries
            fit_items = int(plan.align_examples * (1 - align_config.fit_other_share))
            align_config = dataclasses.replace(
                align_config, fit_items=max(1, fit_items), fit_output=fit_items >= MIN_FEATURE_EXAMPLES)
        titles = {i: facts.label(i) for t in facts.by_type for i in facts.by_type[t]}
        result = align(model, tokenizer, vocab, table, align_examples, align_config,
                       titles=titles, encoder=encoder, checkpoint_dir=work / "align", resume=resume,
                       deadline=time.perf_counter() + plan.align, fit_seconds=plan.align_fit)
        metrics["align"] = result.to_json() | {"examples": len(align_examples),
                                               "fit_items": align_config.fit_items if align_config.fit_output else 0}
        curves["stage 2 output fit"] = result.fit_losses
        if probes:
            # No SID -> type probe here: the frozen model never answers with a type word (0.0 in
            # every run); it would take ~45 s. Stage 3 probes it.
            probe_started = time.perf_counter()
            decoder = build_decoder(model, encoder)
            metrics["align"]["text_to_sid"] = probe_text_to_sid(decoder, facts, prompts, n=settings.probe_items)
            log.info("stage 2 probe: text_to_sid %s", metrics["align"]["text_to_sid"])
            probe_seconds += time.perf_counter() - probe_started

    if run_instruct:
        assert split is not None
        # Stage 3 gets what is left of the budget (less the save reserve). It is compute-bound on a
        # CPU (0.4 of an epoch in 15 minutes on 2 cores; one GPU epoch scored next item 1.93x
        # popularity, bench/RESULTS.md), so the probes do not take their minutes from it.
        left = deadline + probe_seconds - time.perf_counter() - SAVE_RESERVE_SECONDS
        config = InstructConfig(
            full=settings.full, lora_layers=settings.lora_layers, lora_r=settings.lora_r,
            max_minutes=max(left, 1.0) / 60,
            max_steps=settings.max_steps, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
            loss_per=settings.loss_per,
        )
        model, loop = instruct(model, encoded, config, new_rows=sid_rows(vocab), pad_id=pad_id,
                               checkpoint_dir=work / "instruct", resume=resume)
        curves["stage 3"] = loop.losses
        metrics["instruct"] = {"loop": {k: v for k, v in loop.to_json().items() if k != "losses"},
                               "examples": len(encoded), "config": dataclasses.asdict(config)}
        if probes:
            probe_started = time.perf_counter()
            decoder = build_decoder(model, encoder)
            metrics["instruct"]["next_item_valid"] = probe_next_item(
                decoder, split, prompts, entity_types=types, n=settings.probe_users,
                max_history=settings.max_history, facts=facts)
            metrics["instruct"]["text_to_sid"] = probe_text_to_sid(
                decoder, facts, prompts, n=max(1, settings.probe_items // 2))
            metrics["instruct"]["sid_to_type"] = probe_sid_to_type(
                decoder, facts, prompts, n=max(1, settings.probe_items // 2))
            log.info("stage 3 probes: %s", {k: metrics["instruct"][k]
                                            for k in ("next_item_valid", "text_to_sid", "sid_to_type")})
            probe_seconds += time.perf_counter() - probe_started
    if not main_process:
        catalog.close()
        return metrics
    png = plot_losses(curves, work / "loss.png") if any(curves.values()) else None
    save_started = time.perf_counter()
    metrics["seconds"] = round(save_started - started, 1)  # saving not included: bench/train_budget.py times it
    metrics["train_seconds"] = round(metrics["seconds"] - probe_seconds, 1)
    metrics["probe_seconds"] = round(probe_seconds, 1)
    save_bundle(
        out, model=model, tokenizer=tokenizer, vocab=vocab, table=table, base_ref=settings.base,
        base_folder=resolve_base(settings.base), prompts_dir=default_prompts_dir(), catalog_path=str(db),
        training={**dataclasses.asdict(settings), "grounds": GROUNDS_VERSION}, metrics=json.loads(json.dumps(metrics)),
        kind="rows" if settings.stage == "align" else ("full" if settings.full else "lora"),
        num_hidden_layers=settings.num_hidden_layers,
        extra_files={"loss.png": png} if png else None,
    )
    log.info("bundle saved in %.1f s; training took %.0f s of a %.0f s budget; probes %.0f s apart",
             time.perf_counter() - save_started, metrics["train_seconds"], settings.max_minutes * 60, probe_seconds)
    catalog.close()
    return metrics
