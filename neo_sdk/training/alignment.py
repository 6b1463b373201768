"""Stage 2 — domain grounding with a frozen backbone. Reads top to bottom.

Only the new SID token rows change; every backbone weight and every old vocabulary row stays
bitwise unchanged (tested). Three steps, each measured on 2 CPU cores (``bench/RESULTS.md``):

1. **Initialise the rows from the catalog** (:func:`anchor_words`, :func:`init_input_rows`): each
   code token starts as a distinct real word (a k-means code takes the most frequent title word of
   its items that is still free), plus the centred embedding of the entity-type word, and its output
   row starts equal to its input row. The frozen model then treats a code like a word it knows,
   and its copy heads already favour codes that occur in the prompt: on next-item prompts, after
   the stage-2 fit, the top level-1 code was one from the user's history for 52% of users (22
   distinct codes), against one code for everyone with averaged-title rows (``bench/RESULTS.md``).
   ``anchor_words=False`` gives the older start: the vocabulary mean plus the centred mean title
   embedding of the code's items.
2. **Row training by backpropagation** (optional budget, ``row_minutes``/``row_steps``): the paper's
   stage 2 — AdamW (β 0.9/0.95), LR 1e-3, cosine with warm-up — on every alignment task, with a
   gradient mask so only SID rows learn. It is the slow part on CPU (every step backpropagates
   through all layers), so the default budget is short.
3. **Fit the output rows on cached features** (:func:`fit_output_rows`): the output head is untied;
   one frozen forward pass records, for every supervised position, the final hidden state, the
   old vocabulary's log-sum-exp and the target; then only the SID output rows are fitted with the
   exact full-vocabulary cross-entropy, no backpropagation through the model. Positions whose
   target is text are included, so SID tokens do not start to win where text should follow.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from neo_sdk.encoding import Encoded, ExampleEncoder
from neo_sdk.errors import ConfigError
from neo_sdk.model import untie_output_head
from neo_sdk.sids import SIDTable
from neo_sdk.tasks._example import Example
from neo_sdk.training._format import collate
from neo_sdk.training._loop import LoopConfig, LoopResult, train_loop
from neo_sdk.training._rows import RowMask, row_weights
from neo_sdk.vocab import SIDVocab

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignConfig:
    """Stage 2 settings (defaults chosen by measurement on ML-100k, 2 CPU cores)."""

    init_from_catalog: bool = field(default=True, metadata={"help": "text- and type-derived input rows"})
    anchor_words: bool = field(default=True, metadata={
        "help": "start each code as a distinct real word, output row = input row (see align)"})
    row_steps: int = field(default=0, metadata={"help": "backprop steps on SID rows (0: skip)"})
    row_minutes: float | None = field(default=None, metadata={"help": "time budget for row training"})
    row_batch_size: int = 32
    row_lr: float = 1e-3
    fit_output: bool = field(default=True, metadata={"help": "fit SID output rows on cached features"})
    fit_steps: int = field(default=300, metadata={"help": "AdamW steps of the output fit (~1/32 of the positions each)"})
    fit_lr: float = 3e-3
    fit_batch: int = 32
    fit_items: int | None = field(default=2100, metadata={
        "help": "items whose text -> SID query enters the feature pass (None: every item)"})
    fit_other_share: float = field(default=0.3, metadata={
        "help": "share of other stage 2 tasks in the feature pass"})
    seed: int = 0

    def __post_init__(self) -> None:
        if self.row_steps < 0 or self.fit_steps < 0:
            raise ConfigError("row_steps and fit_steps must be >= 0")
        if not 0 <= self.fit_other_share < 1:
            raise ConfigError("fit_other_share must be in [0, 1)")
        if self.fit_items is not None and self.fit_items < 1:
            raise ConfigError("fit_items must be >= 1 or None (every item)")


@dataclass
class AlignResult:
    rows: LoopResult | None
    fit_losses: list[float]
    seconds: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "row_training": self.rows.to_json() if self.rows else None,
            "fit_losses": self.fit_losses[:: max(1, len(self.fit_losses) // 50)],
            "seconds": self.seconds,
        }


def sid_rows(vocab: SIDVocab) -> list[int]:
    """Every new token id: delimiters and codes."""
    return [vocab.opener_id, vocab.closer_id, *vocab.sid_token_ids().tolist()]


_WORD = re.compile(r"[a-z]{4,}")
_WORD_START = ("\u0120", "\u2581")  # a leading space: Ġ in byte-level BPE, ▁ in SentencePiece


def anchor_words(tokenizer: Any, vocab: SIDVocab, table: SIDTable, titles: dict[str, str]) -> dict[int, int]:
    """A distinct real word token for every used SID code token: ``{sid token id: word token id}``.

    A k-means code takes the most frequent title word of its items that no other code has taken
    yet (so a code of horror films may start as " horror"); codes without one, and the last
    (ranking) position, take unused words from the vocabulary in id order. Words are whole
    single tokens of 4+ lowercase letters with a leading space.
    """
    first_new = min(sid_rows(vocab))
    pool: dict[str, int] = {}
    for token_id, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(first_new)))):
        if piece and piece[0] in _WORD_START and _WORD.fullmatch(piece[1:]):
            pool.setdefault(piece[1:], token_id)
    spare = iter(sorted(pool.values()))
    taken: set[int] = set()
    anchors: dict[int, int] = {}

    def next_spare() -> int:
        for token_id in spare:
            if token_id not in taken:
                return token_id
        raise ConfigError("the base vocabulary has too few whole-word tokens to anchor every SID code")

    for etype in table.entity_types:
        sids = table.by_type(etype)
        grid = vocab.code_token_ids(etype)
        words = [Counter(w for w in _WORD.findall(titles.get(str(i), "").lower()) if w in pool)
                 for i in sids.item_ids]
        for position in range(sids.codes.shape[1]):
            ranking = position == sids.codes.shape[1] - 1  # the last code ranks: no title word
            counts: dict[int, Counter[str]] = {}
            for code, item_words in zip(sids.codes[:, position].tolist(), words, strict=True):
                counts.setdefault(code, Counter()).update(() if ranking else item_words)
            for code in sorted(counts):
                choice = next((pool[w] for w, _ in counts[code].most_common() if pool[w] not in taken), None)
                choice = choice if choice is not None else next_spare()
                taken.add(choice)
                anchors[int(grid[position, code])] = choice
    return anchors


@torch.no_grad()
def init_input_rows(
    model: torch.nn.Module, tokenizer: Any, vocab: SIDVocab, table: SIDTable,
    titles: dict[str, str], *, scale: float = 1.0, anchors: dict[int, int] | None = None,
) -> None:
    """Catalog-derived input rows (step 1). Output rows are left as they are.

    With ``anchors`` (:func:`anchor_words`) a code's row is its anchor word's embedding plus the
    centred type-word vector; otherwise the vocabulary mean plus the centred mean title embedding
    of the items using the code, plus the type vector.
    """
    embed = model.get_input_embeddings().weight
    first_new = min(sid_rows(vocab))
    base = embed[:first_new]
    mean = base.mean(0)

    def text_vector(text: str) -> torch.Tensor:
        ids = vocab.encode_text(tokenizer, " " + text)
        return base[torch.as_tensor(ids, dtype=torch.long, device=base.device)].mean(0) if ids else mean

    for etype in table.entity_types:
        sids = table.by_type(etype)
        type_vec = text_vector(etype) - mean
        item_vecs = None if anchors else torch.stack(
            [text_vector(titles.get(str(i), str(i))) for i in sids.item_ids]) - mean
        grid = vocab.code_token_ids(etype)
        for position in range(sids.codes.shape[1]):
            codes = torch.as_tensor(sids.codes[:, position].astype(np.int64), device=embed.device)
            for code in torch.unique(codes).tolist():
                row = int(grid[position, code])
                if anchors:
                    embed[row] = base[anchors[row]] + type_vec
                else:
                    embed[row] = mean + scale * item_vecs[codes == code].mean(0) + type_vec
    embed[vocab.opener_id] = mean + (text_vector("item:") - mean)
    embed[vocab.closer_id] = mean + (text_vector(".") - mean)


def train_rows(
    model: torch.nn.Module, encoded: Sequence[Encoded], vocab: SIDVocab, config: AlignConfig, *,
    pad_id: int, checkpoint_dir: Path | None, resume: bool,
) -> LoopResult:
    """Step 2: backprop training of the SID rows only (input and, if untied, output)."""
    for param in model.parameters():
        param.requires_grad_(False)
    weights = row_weights(model)
    mask = RowMask(weights, sid_rows(vocab))
    loop = LoopConfig(
        max_steps=config.row_steps or None, max_minutes=config.row_minutes,
        batch_size=config.row_batch_size, lr=config.row_lr, warmup_steps=20, seed=config.seed,
    )
    names = ["embed_tokens", "lm_head"][: len(weights)]
    try:
        return train_loop(model, list(zip(names, weights)), encoded, loop, pad_id=pad_id,
                          checkpoint_dir=checkpoint_dir, resume=resume, name="stage 2 rows")
    finally:
        mask.remove()
        for weight in weights:
            weight.requires_grad_(False)


@torch.no_grad()
def cache_features(
    model: torch.nn.Module, encoded: Sequence[Encoded], *, pad_id: int, first_new: int,
    batch_size: int = 32, deadline: float | None = None, seed: int = 0,
) -> dict[str, torch.Tensor]:
    """One frozen pass: per supervised position, hidden state, old-vocab LSE and target.

    Only the backbone runs over whole sequences; the output head is applied to the supervised
    positions alone (most positions are prompt). Examples go in a random order, sorted by length
    only within chunks of 8 batches, so a pass stopped at ``deadline`` (``time.perf_counter()``
    seconds) has covered a random part of them. A batch is not started when it would end past the
    deadline (as long as the previous one took), so what follows keeps its reserved time.

    Shapes: ``hidden`` (P, H), ``lse_old`` (P,), ``target`` (P,), ``target_logit_old`` (P,)
    (the old-vocabulary logit of the target; unused where the target is a SID token).
    """
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    head_old = model.get_output_embeddings().weight[:first_new]
    device = head_old.device
    hidden, lse, target, target_logit = [], [], [], []
    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    chunk = 8 * batch_size
    order = [k for c in range(0, len(order), chunk)
             for k in sorted(order[c : c + chunk], key=lambda k: len(encoded[k].input_ids))]
    last = 0.0  # seconds of the previous batch: a batch that would end past the deadline is not started
    for start in tqdm(range(0, len(order), batch_size), desc="stage 2 features", unit="batch"):
        began = time.perf_counter()
        if deadline is not None and start and began + last > deadline:
            log.warning("stage 2 feature pass stopped at its budget after %d of %d examples", start, len(order))
            break
        batch = collate([encoded[k] for k in order[start : start + batch_size]], pad_id)
        h = body(input_ids=batch.input_ids.to(device),
                 attention_mask=batch.attention_mask.to(device)).last_hidden_state
        labels = batch.labels[:, 1:].to(device)  # position p predicts token p + 1
        keep = labels != -100
        h_sel = h[:, :-1][keep].float()  # (P, H)
        old_logits = h_sel @ head_old.float().T  # (P, V_old)
        tgt = labels[keep]
        hidden.append(h_sel)
        lse.append(torch.logsumexp(old_logits, -1))
        target.append(tgt)
        target_logit.append(old_logits.gather(1, tgt.clamp(max=first_new - 1)[:, None])[:, 0])
        last = time.perf_counter() - began
    return {"hidden": torch.cat(hidden), "lse_old": torch.cat(lse), "target": torch.cat(target),
            "target_logit_old": torch.cat(target_logit)}


def fit_sample(examples: Sequence[Example], encoded: Sequence[Any], config: AlignConfig) -> list[Any]:
    """The examples of the feature pass: one text -> SID query for each of ``fit_items`` items
    (``None``: every item), then ``fit_other_share`` of other tasks, whose text-target positions
    keep SID tokens from winning where text should follow. Returns the chosen elements of
    ``encoded`` (anything with a ``task``, aligned with ``examples``: pass ``examples`` twice to
    choose before encoding).

    The last code of a SID ranks items inside a bucket and carries no content, so the output rows
    place well only items whose query they were fitted on (hit@10 0.31 on unseen phrasings against
    0.017 for the others). Covering every item of the demo still is not the default: it made the
    frozen pass 330 s instead of 136 s for hit@10 0.085 instead of 0.07 (``bench/RESULTS.md``),
    time that stage 3 needs more.
    """
    rng = random.Random(config.seed)
    queries: dict[str, list[Any]] = {}
    other: list[Any] = []
    for example, enc in zip(examples, encoded, strict=True):
        if enc.task == "text_to_sid":
            queries.setdefault(str(example.meta.get("item")), []).append(enc)
        else:
            other.append(enc)
    items = sorted(queries)
    if config.fit_items is not None and config.fit_items < len(items):
        items = rng.sample(items, config.fit_items)
    sid = [rng.choice(queries[item]) for item in items]
    n_other = min(len(other), round(len(sid) * config.fit_other_share / (1 - config.fit_other_share)))
    return sid + rng.sample(other, n_other)


def fit_output_rows(
    model: torch.nn.Module, features: dict[str, torch.Tensor], vocab: SIDVocab, config: AlignConfig,
    *, deadline: float | None = None,
) -> list[float]:
    """Step 3: fit the SID rows of the (untied) output head on cached features (stops early at
    ``deadline``, a ``time.perf_counter()`` value)."""
    head = model.get_output_embeddings().weight
    new = torch.as_tensor(sorted(sid_rows(vocab)), dtype=torch.long)
    first_new, last_new = int(new.min()), int(new.max())
    if last_new - first_new + 1 != len(new):
        raise ConfigError("SID tokens must occupy one contiguous id range in the tokenizer")
    weight = torch.nn.Parameter(head[first_new : last_new + 1].detach().clone().float())
    optimizer = torch.optim.AdamW([weight], lr=config.fit_lr, betas=(0.9, 0.95), weight_decay=0.0)
    h, lse_old = features["hidden"], features["lse_old"]
    target, logit_old = features["target"], features["target_logit_old"]
    is_new = target >= first_new
    new_index = (target - first_new).clamp(min=0)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    n = len(target)
    batch = max(1024, n // max(1, config.fit_batch))
    for step in tqdm(range(config.fit_steps), desc="stage 2 output fit", unit="step"):
        if deadline is not None and step and time.perf_counter() > deadline:
            log.warning("stage 2 output fit stopped at its budget after %d of %d steps", step, config.fit_steps)
            break
        idx = torch.randint(0, n, (min(batch, n),), generator=generator)
        logits_new = h[idx] @ weight.T  # (b, n_new)
        lse = torch.logaddexp(lse_old[idx], torch.logsumexp(logits_new, -1))
        tgt_logit = torch.where(is_new[idx], logits_new.gather(1, new_index[idx][:, None])[:, 0], logit_old[idx])
        loss = (lse - tgt_logit).mean()
        optimizer.zero_grad()
        loss.backward()
        lr_scale = 0.5 * (1 + np.cos(np.pi * step / max(1, config.fit_steps)))
        for group in optimizer.param_groups:
            group["lr"] = config.fit_lr * (0.1 + 0.9 * lr_scale)
        optimizer.step()
        losses.append(round(float(loss.detach()), 5))
    with torch.no_grad():
        head[first_new : last_new + 1] = weight.to(head.dtype)
    return losses


def align(
    model: torch.nn.Module,
    tokenizer: Any,
    vocab: SIDVocab,
    table: SIDTable,
    examples: Sequence[Example],
    config: AlignConfig,
    *,
    titles: dict[str, str],
    encoder: ExampleEncoder,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    deadline: float | None = None,
    fit_seconds: float = 0.0,
) -> AlignResult:
    """Run stage 2 on a model whose tokenizer and embeddings already hold the SID vocabulary.

    ``deadline`` (a ``time.perf_counter()`` value) ends the output fit early, and the feature pass
    ``fit_seconds`` before it, so the fit always gets its time.
    """
    seconds: dict[str, float] = {}
    pad_id = int(encoder.pad_id)
    for param in model.parameters():
        param.requires_grad_(False)
    t0 = time.perf_counter()
    untie_output_head(model)  # first: output rows keep the neutral mean start
    if config.init_from_catalog:
        anchors = anchor_words(tokenizer, vocab, table, titles) if config.anchor_words else None
        init_input_rows(model, tokenizer, vocab, table, titles, anchors=anchors)
        if anchors:  # tied start: the base model's copy heads then already favour codes seen in the prompt
            with torch.no_grad():
                rows = torch.as_tensor(sorted(anchors), dtype=torch.long)
                model.get_output_embeddings().weight[rows] = model.get_input_embeddings().weight[rows]
    seconds["init"] = time.perf_counter() - t0
    rows = None
    if config.row_steps or config.row_minutes:
        t0 = time.perf_counter()
        rows = train_rows(model, [encoder.encode(e) for e in examples], vocab, config, pad_id=pad_id,
                          checkpoint_dir=checkpoint_dir, resume=resume)
        seconds["row_training"] = time.perf_counter() - t0
    fit_losses: list[float] = []
    if config.fit_output:
        t0 = time.perf_counter()
        model.eval()
        sample = [encoder.encode(e) for e in fit_sample(examples, examples, config)]  # only what the pass reads
        features = cache_features(model, sample, pad_id=pad_id, first_new=min(sid_rows(vocab)),
                                  deadline=None if deadline is None else deadline - fit_seconds, seed=config.seed)
        seconds["feature_pass"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit_losses = fit_output_rows(model, features, vocab, config, deadline=deadline)
        seconds["output_fit"] = time.perf_counter() - t0
    model.eval()
    return AlignResult(rows, fit_losses, seconds)
