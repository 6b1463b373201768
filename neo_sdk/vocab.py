"""The SID vocabulary: typed token names, tokenizer extension, and the SID span <-> item codec.

Token naming (per entity type ``t`` with ``M`` levels, ``K`` codes, ``D`` disambiguation codes):

* span delimiters ``<|sid|>`` (opener) and ``<|/sid|>`` (closer);
* level tokens ``<|t_m_c|>`` for level ``m`` in ``0..M-1`` and code ``c`` in ``0..K-1``
  (e.g. ``<|movie_0_17|>``);
* disambiguation tokens ``<|t_d_c|>`` for ``c`` in ``0..D-1`` (the last SID position).

So every SID token belongs to exactly one (type, position), and the type is decidable from the first
token after the opener. A span is ``<|sid|> <|t_0_a|> ... <|t_{M-1}_b|> <|t_d_c|> <|/sid|>``:
always ``M + 3`` tokens.

The tokens are added as *special* added tokens, so the tokenizer never splits them. Because text that
literally contains ``<|movie_0_17|>`` would otherwise be matched as the token, encode untrusted text
with :meth:`SIDVocab.encode_text` (``split_special_tokens=True``): plain text then never produces
a SID token.

New embedding rows (:meth:`SIDVocab.resize_model`) are initialised as ``mean + noise * std * N(0, 1)``
of the existing rows (per dimension, seeded ``torch.Generator``): the mean keeps the new tokens in
the region the model already reads, the small noise breaks the symmetry between them. Untied output
heads get the same treatment on their own rows (bias rows, if any, start at 0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from neo_sdk.errors import ConfigError, VocabError

if TYPE_CHECKING:
    from neo_sdk.sids import SIDTable

SID_OPEN = "<|sid|>"
SID_CLOSE = "<|/sid|>"
DISAMBIGUATION = "d"
_TYPE_NAME = re.compile(r"^[a-z0-9_]+$")


def token_name(entity_type: str, level: int, code: int) -> str:
    """Name of a level token, e.g. ``token_name("movie", 0, 17) == "<|movie_0_17|>"``."""
    return f"<|{entity_type}_{level}_{code}|>"


def disambiguation_token_name(entity_type: str, code: int) -> str:
    """Name of a disambiguation token, e.g. ``"<|movie_d_0|>"``."""
    return f"<|{entity_type}_{DISAMBIGUATION}_{code}|>"


@dataclass(frozen=True)
class TypeSpec:
    """The SID shape of one entity type: ``levels`` M, ``codes`` K, ``disambiguation`` D."""

    entity_type: str
    levels: int
    codes: int
    disambiguation: int

    def __post_init__(self) -> None:
        if not _TYPE_NAME.match(self.entity_type):
            raise ConfigError(f"entity type {self.entity_type!r} must be lowercase letters, digits or '_'")
        if self.levels < 1 or self.codes < 1 or self.disambiguation < 1:
            raise ConfigError(f"{self.entity_type}: levels, codes and disambiguation must be >= 1, got {self}")

    @property
    def length(self) -> int:
        """Codes per SID (``M + 1``)."""
        return self.levels + 1

    def tokens(self) -> list[str]:
        """Token names, level-major then disambiguation."""
        names = [token_name(self.entity_type, m, c) for m in range(self.levels) for c in range(self.codes)]
        return names + [disambiguation_token_name(self.entity_type, c) for c in range(self.disambiguation)]


class SIDVocab:
    """Typed SID tokens for a set of entity types, and their ids once added to a tokenizer.

    Args:
        specs: one :class:`TypeSpec` per entity type.
        table: optional :class:`~neo_sdk.sids.SIDTable` for item-level encoding/parsing.

    Example:
        >>> vocab = SIDVocab.from_table(table)
        >>> vocab.attach(tokenizer)                 # adds the tokens (idempotent)
        >>> vocab.resize_model(model, seed=0)
        >>> span = vocab.encode_item("movie:1")     # [<|sid|>, <|movie_0_12|>, <|movie_1_40|>, <|movie_d_0|>, <|/sid|>]
        >>> vocab.item_of_span(span)
        'movie:1'
    """

    def __init__(self, specs: Iterable[TypeSpec], *, table: SIDTable | None = None) -> None:
        self.specs = {s.entity_type: s for s in sorted(specs, key=lambda s: s.entity_type)}
        if not self.specs:
            raise ConfigError("a SID vocabulary needs at least one entity type")
        self.table = table
        self.type_names: tuple[str, ...] = tuple(self.specs)
        names = self.tokens()
        if len(set(names)) != len(names):  # cannot happen with valid type names; cheap to check
            raise ConfigError("SID token names collide; rename the entity types")
        self._ids: dict[str, np.ndarray] | None = None  # type -> (M + 1, max(K, D)) token ids, -1 padded
        self.opener_id = -1
        self.closer_id = -1
        self._info: np.ndarray | None = None  # (V, 3): type index, position, code; -1 where not a SID token

    # ------------------------------------------------------------ construction
    @classmethod
    def from_table(cls, table: SIDTable) -> SIDVocab:
        """A vocabulary sized for every type of a SID table (and able to encode its items)."""
        specs = []
        for name in table.entity_types:
            t = table.by_type(name)
            specs.append(TypeSpec(name, t.levels, t.codes_per_level, t.disambiguation))
        return cls(specs, table=table)

    def to_json(self) -> dict[str, Any]:
        """The vocabulary config (what a bundle stores next to the tokenizer)."""
        return {
            "opener": SID_OPEN, "closer": SID_CLOSE,
            "types": {n: {"levels": s.levels, "codes": s.codes, "disambiguation": s.disambiguation}
                      for n, s in self.specs.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str, *, table: SIDTable | None = None) -> SIDVocab:
        obj = json.loads(data) if isinstance(data, str) else data
        try:
            specs = [TypeSpec(n, int(v["levels"]), int(v["codes"]), int(v["disambiguation"]))
                     for n, v in obj["types"].items()]
        except (KeyError, TypeError, ValueError) as exc:
            raise VocabError(f"malformed SID vocabulary config: {exc}") from exc
        return cls(specs, table=table)

    def tokens(self) -> list[str]:
        """Every token name: opener, closer, then each type's tokens (types sorted)."""
        out = [SID_OPEN, SID_CLOSE]
        for spec in self.specs.values():
            out.extend(spec.tokens())
        return out

    def __len__(self) -> int:
        return len(self.tokens())

    # --------------------------------------------------------------- tokenizer
    def attach(self, tokenizer: Any) -> int:
        """Add the SID tokens to a HF tokenizer (as special added tokens) and record their ids.

        Idempotent: tokens already present are not added again (e.g. a saved extended tokenizer).

        Returns:
            The number of tokens newly added.
        """
        names = self.tokens()
        vocab = tokenizer.get_vocab()
        missing = [n for n in names if n not in vocab]
        added = int(tokenizer.add_tokens(missing, special_tokens=True)) if missing else 0
        ids = tokenizer.convert_tokens_to_ids(names)
        unk = getattr(tokenizer, "unk_token_id", None)
        if any(i is None or (unk is not None and i == unk) for i in ids):
            raise VocabError("the tokenizer did not accept the SID tokens; is it a HF tokenizer?")
        lookup = dict(zip(names, ids, strict=True))
        self.opener_id, self.closer_id = lookup[SID_OPEN], lookup[SID_CLOSE]
        size = max(len(tokenizer), max(ids) + 1)
        info = np.full((size, 3), -1, dtype=np.int32)
        table: dict[str, np.ndarray] = {}
        for ti, (name, spec) in enumerate(self.specs.items()):
            grid = np.full((spec.length, max(spec.codes, spec.disambiguation)), -1, dtype=np.int64)
            for m in range(spec.levels):
                for c in range(spec.codes):
                    grid[m, c] = lookup[token_name(name, m, c)]
            for c in range(spec.disambiguation):
                grid[spec.levels, c] = lookup[disambiguation_token_name(name, c)]
            for pos in range(spec.length):
                row = grid[pos][grid[pos] >= 0]
                info[row, 0] = ti
                info[row, 1] = pos
                info[row, 2] = np.arange(row.size)
            table[name] = grid
        self._ids = table
        self._info = info
        return added

    @property
    def attached(self) -> bool:
        return self._ids is not None

    def _need_ids(self) -> dict[str, np.ndarray]:
        if self._ids is None:
            raise VocabError("the SID vocabulary is not attached to a tokenizer; call vocab.attach(tokenizer) first")
        return self._ids

    @property
    def token_info(self) -> np.ndarray:
        """Per-token lookup over the whole tokenizer: Shape: (V, 3) int32 columns
        ``(type index into type_names, position 0..M (M = disambiguation), code)``; -1 rows are not
        SID code tokens (text tokens and the delimiters)."""
        self._need_ids()
        assert self._info is not None
        return self._info

    def code_token_ids(self, entity_type: str) -> np.ndarray:
        """Token ids of one type. Shape: (M + 1, max(K, D)) int64, ``[position, code]``; -1 pads."""
        ids = self._need_ids()
        if entity_type not in ids:
            raise VocabError(f"unknown entity type {entity_type!r} (vocabulary has: {', '.join(self.type_names)})")
        return ids[entity_type]

    def sid_token_ids(self) -> np.ndarray:
        """Every SID code token id (delimiters excluded), sorted. Shape: (T,)."""
        return np.flatnonzero(self.token_info[:, 0] >= 0)

    def encode_text(self, tokenizer: Any, text: str, **kwargs: Any) -> list[int]:
        """Tokenize untrusted text so that it can never produce SID tokens or delimiters."""
        ids = list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True, **kwargs))
        if self.attached and self._is_sid(ids):
            raise VocabError("the tokenizer produced SID tokens from plain text; upgrade transformers")
        return ids

    def _is_sid(self, ids: Sequence[int]) -> bool:
        info = self.token_info
        return any(
            i in (self.opener_id, self.closer_id) or (0 <= i < info.shape[0] and info[i, 0] >= 0) for i in ids
        )

    # ------------------------------------------------------------------ codec
    def encode_codes(self, entity_type: str, codes: Sequence[int]) -> list[int]:
        """A full span ``[opener, position tokens..., closer]`` for a SID."""
        grid = self.code_token_ids(entity_type)
        spec = self.specs[entity_type]
        if len(codes) != spec.length:
            raise VocabError(f"a {entity_type} SID has {spec.length} codes, got {len(codes)}: {tuple(codes)}")
        out = [self.opener_id]
        for pos, code in enumerate(codes):
            limit = spec.codes if pos < spec.levels else spec.disambiguation
            if not 0 <= int(code) < limit:
                raise VocabError(f"{entity_type} code {code} at position {pos} is out of range 0..{limit - 1}")
            out.append(int(grid[pos, int(code)]))
        out.append(self.closer_id)
        return out

    def encode_item(self, item_id: str) -> list[int]:
        """The span of a catalog item (needs the vocabulary built :meth:`from_table`)."""
        sid = self._need_table().sid_of(item_id)
        return self.encode_codes(sid.entity_type, sid.codes)

    def parse_span(self, ids: Sequence[int]) -> tuple[str, tuple[int, ...]]:
        """``(entity_type, codes)`` from a full span ``[opener, ..., closer]``.

        Raises:
            VocabError: missing delimiters, wrong length, a non-SID token, a token of another type
                or of the wrong position.
        """
        info = self.token_info
        ids = [int(i) for i in ids]
        if len(ids) < 3 or ids[0] != self.opener_id or ids[-1] != self.closer_id:
            raise VocabError(f"a SID span must start with {SID_OPEN} and end with {SID_CLOSE}; got ids {ids[:8]}")
        body = ids[1:-1]
        for i in body:
            if not 0 <= i < info.shape[0] or info[i, 0] < 0:
                raise VocabError(f"token id {i} inside a SID span is not a SID code token")
        etype = self.type_names[info[body[0], 0]]
        spec = self.specs[etype]
        if len(body) != spec.length:
            raise VocabError(f"a {etype} SID span holds {spec.length} code tokens, got {len(body)}")
        codes = []
        for pos, i in enumerate(body):
            t, p, c = info[i]
            if self.type_names[t] != etype:
                raise VocabError(f"SID span mixes types: {etype} then {self.type_names[t]} at position {pos}")
            if p != pos:
                raise VocabError(f"{etype} token for position {p} found at position {pos}")
            codes.append(int(c))
        return etype, tuple(codes)

    def item_of_span(self, ids: Sequence[int]) -> str:
        """The catalog item a span names (SIDError if no item holds that SID)."""
        etype, codes = self.parse_span(ids)
        return self._need_table().item_of(etype, codes)

    def _need_table(self) -> SIDTable:
        if self.table is None:
            raise VocabError("this vocabulary has no SID table; build it with SIDVocab.from_table(table)")
        return self.table

    # ------------------------------------------------------------------ model
    def resize_model(self, model: Any, *, seed: int = 0, noise: float = 0.02) -> int:
        """Grow a model's input embeddings (and untied output head) to cover the SID tokens.

        New SID rows = per-dimension mean of the existing (non-SID) rows + ``noise * std * N(0, 1)``,
        drawn from ``torch.Generator().manual_seed(seed)``: deterministic for a seed.

        Returns:
            The number of rows added to the input embeddings.
        """
        import torch

        self._need_ids()
        sid_ids = np.r_[self.opener_id, self.closer_id, self.sid_token_ids()]
        first = int(sid_ids.min())
        emb = model.get_input_embeddings()
        old_rows = int(emb.weight.shape[0])
        needed = int(sid_ids.max()) + 1
        if needed > old_rows:
            model.resize_token_embeddings(needed, mean_resizing=False)
        gen = torch.Generator().manual_seed(seed)
        idx = torch.as_tensor(sid_ids, dtype=torch.long)

        def init(weight: torch.Tensor) -> None:
            with torch.no_grad():
                base = weight[:first].float()
                mean = base.mean(0)  # Tensor.std(0) takes 10 s on a 262k-row vocabulary on CPU
                std = (base - mean).pow_(2).sum(0).div_(base.shape[0] - 1).sqrt_()
                fresh = mean + noise * std * torch.randn((idx.numel(), weight.shape[1]), generator=gen).to(weight.device)
                weight[idx] = fresh.to(weight.dtype)

        in_w = model.get_input_embeddings().weight
        init(in_w)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != in_w.data_ptr():
            init(out.weight)
            if getattr(out, "bias", None) is not None:
                with torch.no_grad():
                    out.bias[idx] = 0
        return max(0, needed - old_rows)
