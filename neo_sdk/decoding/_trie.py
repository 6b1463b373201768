"""A compact, typed prefix trie over SID token sequences, stored as flat arrays (CSR).

Items are sorted lexicographically by their token sequence, so every trie node covers a
contiguous range ``[lo, hi)`` of sorted item positions. That gives request-time filters for
free: a filter is a boolean mask over items; its prefix sum answers "does this subtree hold an
allowed item?" in O(1) per child, with no rebuild. Layout, for ``E`` edges and ``N`` items::

    node_child_start  (nodes + 1,) int32   CSR offsets into the edge arrays
    edge_token        (E,)  int32          token id of each edge, sorted within a node
    edge_child        (E,)  int32          node the edge leads to
    node_lo, node_hi  (nodes,) int32       range of sorted item positions under a node
    leaf_item         (nodes,) int32       sorted item position at a leaf, -1 elsewhere

Node 0 is the root; its children are the first tokens of every type (type tokens are disjoint,
so a type filter is a filter on root edges). Memory is about ``E * 8 + nodes * 16`` bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neo_sdk.errors import DecodingError


@dataclass(frozen=True)
class _Group:
    """Internal nodes of one entity type at one depth (tokens consumed), contiguous in id space."""

    type_index: int
    depth: int  # tokens consumed from the SID (1 .. length - 1)
    node_base: int  # first node id
    num_nodes: int  # real nodes (a sentinel node follows them)
    edge_base: int  # first edge of the group's children
    child_base: int  # first child node id (depth + 1 group) or first item position (leaves)
    leaf_children: bool


@dataclass(frozen=True)
class SIDTrie:
    """Prefix trie over the token sequences of every item, all entity types in one structure.

    Every SID of one entity type has the same length (the disambiguation code makes it so).
    Items are sorted by (type, token sequence); node ``n``'s items are the sorted positions
    ``[node_lo[n], node_lo[n + 1])`` (each group of nodes ends with a sentinel to make that hold).
    Leaves are not stored: a leaf-parent's k-th edge is item ``node_lo[n] + k``. Node 0 is the
    root, whose edges (the first tokens of every type) carry explicit targets.

    Shapes: ``node_child_start`` (nodes + 1,), ``node_lo`` (nodes + 1,), ``edge_token`` (E,),
    ``root_target`` (root edges,), all int32.
    """

    node_child_start: np.ndarray
    node_lo: np.ndarray
    edge_token: np.ndarray
    root_target: np.ndarray
    groups: tuple[_Group, ...]
    group_node_base: np.ndarray  # (G,) for searchsorted: node id -> group
    item_ids: Sequence[str]  # sorted position -> item id
    item_types: np.ndarray  # (N,) int16, sorted position -> index into ``types``
    types: tuple[str, ...]
    type_lengths: tuple[int, ...]
    first_token_type: dict[int, str]

    # ----------------------------------------------------------------- build
    @classmethod
    def build(
        cls, sequences: Mapping[str, Sequence[Sequence[int]] | np.ndarray],
        item_ids: Mapping[str, Sequence[str]],
    ) -> SIDTrie:
        """Build from per-type token sequences (each item's SID as token ids, no delimiters).

        Vectorised with numpy: 10M items build in seconds.

        Raises:
            DecodingError: ragged lengths within a type, duplicate SIDs, or a first token shared
                between two types (the type must be decidable from the first token).
        """
        types = tuple(sorted(t for t in sequences if len(sequences[t])))
        if not types:
            raise DecodingError("cannot build a trie with no items")
        sorted_ids: list[Any] = []
        type_col: list[np.ndarray] = []
        groups: list[_Group] = []
        child_counts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        node_lo: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]  # root
        edge_tokens: list[np.ndarray] = []
        root_tok: list[np.ndarray] = []
        root_tgt: list[np.ndarray] = []
        lengths: list[int] = []
        first_token_type: dict[int, str] = {}
        pos_base, node_base = 0, 1
        pending_edges: list[np.ndarray] = []
        for t_index, etype in enumerate(types):
            try:
                seqs = np.asarray(sequences[etype], dtype=np.int64)
            except ValueError as exc:
                raise DecodingError(f"type {etype!r}: SIDs must all have the same length") from exc
            ids = item_ids[etype]
            if seqs.ndim != 2 or seqs.shape[1] < 1:
                raise DecodingError(f"type {etype!r}: expected a (items, length) array of token ids")
            if len(ids) != len(seqs):
                raise DecodingError(f"type {etype!r}: {len(seqs)} sequences but {len(ids)} item ids")
            n, length = seqs.shape
            order = np.lexsort(seqs.T[::-1])
            seqs = seqs[order]
            same = np.all(seqs[1:] == seqs[:-1], axis=1)
            if same.any():
                k = int(np.flatnonzero(same)[0])
                raise DecodingError(
                    f"type {etype!r}: duplicate SID {seqs[k].tolist()}; every item needs a unique SID"
                )
            for tok in np.unique(seqs[:, 0]).tolist():
                owner = first_token_type.setdefault(int(tok), etype)
                if owner != etype:
                    raise DecodingError(
                        f"token {tok} starts SIDs of both {owner!r} and {etype!r}; the entity type"
                        " must be decidable from the first token"
                    )
            sorted_ids.extend(ids[int(k)] for k in order) if not isinstance(ids, np.ndarray) else sorted_ids.append(ids[order])
            type_col.append(np.full(n, t_index, dtype=np.int16))
            lengths.append(length)
            # starts[d]: local positions where the prefix of length d (d >= 1) changes
            changed = np.zeros(n, dtype=bool)
            changed[0] = True
            starts: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
            for d in range(1, length):
                changed[1:] |= seqs[1:, d - 1] != seqs[:-1, d - 1]
                starts.append(np.flatnonzero(changed))
            starts.append(np.arange(n))  # depth == length: the items themselves
            first_nodes = starts[1]
            root_tok.append(seqs[first_nodes, 0])
            root_tgt.append(node_base + np.arange(len(first_nodes)))
            for d in range(1, length):
                nodes = starts[d]
                kids = starts[d + 1]
                counts = np.diff(np.searchsorted(kids, np.append(nodes, n)))
                leaf_children = d == length - 1
                groups.append(_Group(
                    type_index=t_index, depth=d, node_base=node_base, num_nodes=len(nodes),
                    edge_base=-1, child_base=(pos_base if leaf_children else node_base + len(nodes) + 1),
                    leaf_children=leaf_children,
                ))
                node_lo.append(pos_base + np.append(nodes, n))  # + sentinel
                child_counts.append(np.append(counts, 0))
                pending_edges.append(seqs[kids, d])
                node_base += len(nodes) + 1
            pos_base += n
        # Edge layout: root edges first (sorted by token), then each group's edges in node order.
        root_tokens = np.concatenate(root_tok)
        root_targets = np.concatenate(root_tgt)
        root_order = np.argsort(root_tokens, kind="stable")
        child_counts[0] = np.asarray([len(root_tokens)])
        counts_all = np.concatenate(child_counts)
        child_start = np.zeros(len(counts_all) + 1, dtype=np.int64)
        np.cumsum(counts_all, out=child_start[1:])
        edge_tokens = [root_tokens[root_order], *pending_edges]
        fixed = [
            _Group(g.type_index, g.depth, g.node_base, g.num_nodes, int(child_start[g.node_base]),
                   g.child_base, g.leaf_children)
            for g in groups
        ]
        all_ids: Sequence[Any]
        if sorted_ids and isinstance(sorted_ids[0], np.ndarray):
            all_ids = np.concatenate(sorted_ids)
        else:
            all_ids = tuple(sorted_ids)
        return cls(
            node_child_start=child_start.astype(np.int32),
            node_lo=np.concatenate(node_lo).astype(np.int32),
            edge_token=np.concatenate(edge_tokens).astype(np.int32),
            root_target=root_targets[root_order].astype(np.int32),
            groups=tuple(fixed),
            group_node_base=np.asarray([g.node_base for g in fixed], dtype=np.int64),
            item_ids=all_ids,
            item_types=np.concatenate(type_col),
            types=types,
            type_lengths=tuple(lengths),
            first_token_type=first_token_type,
        )

    # --------------------------------------------------------------- queries
    @property
    def num_items(self) -> int:
        return len(self.item_types)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays used while decoding (not the item id strings)."""
        return int(
            self.node_child_start.nbytes + self.node_lo.nbytes + self.edge_token.nbytes
            + self.root_target.nbytes + self.item_types.nbytes
        )

    def _group(self, node: int) -> _Group:
        return self.groups[int(np.searchsorted(self.group_node_base, node, side="right")) - 1]

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(tokens, targets, targets_are_items) under internal ``node``.

        Targets are child node ids, or sorted item positions when the children are leaves.
        """
        a, b = int(self.node_child_start[node]), int(self.node_child_start[node + 1])
        tokens = self.edge_token[a:b]
        if node == 0:
            return tokens, self.root_target, False
        group = self._group(node)
        offset = group.child_base + (a - group.edge_base)
        return tokens, np.arange(offset, offset + (b - a), dtype=np.int64), group.leaf_children

    def step(self, node: int, token: int) -> tuple[int, bool]:
        """Follow ``token`` from internal ``node``: (target, is_item), or (-1, False) if absent."""
        tokens, targets, leaves = self.children(node)
        k = int(np.searchsorted(tokens, token))
        if k < len(tokens) and tokens[k] == token:
            return int(targets[k]), leaves
        return -1, False

    def walk(self, tokens: Iterable[int]) -> tuple[int, bool]:
        """Follow a token path from the root: (node or item position, is_item); -1 if it leaves."""
        node, is_item = 0, False
        for tok in tokens:
            if is_item:
                return -1, False
            node, is_item = self.step(node, int(tok))
            if node < 0:
                return -1, False
        return node, is_item

    def item_range(self, targets: np.ndarray, are_items: bool) -> tuple[np.ndarray, np.ndarray]:
        """Sorted-position ranges ``[lo, hi)`` covered by child targets. Shape: (C,) -> (C,), (C,)."""
        if are_items:
            return targets, targets + 1
        return self.node_lo[targets], self.node_lo[targets + 1]

    def lookup(self, tokens: Sequence[int]) -> str | None:
        """The item id whose SID is exactly ``tokens``, else None."""
        pos, is_item = self.walk(tokens)
        return str(self.item_ids[pos]) if is_item and pos >= 0 else None

    def position_of(self) -> dict[str, int]:
        """Item id -> sorted position (for building filters); built once, then cached."""
        cached = self.__dict__.get("_positions")
        if cached is None:
            cached = {str(item): k for k, item in enumerate(self.item_ids)}
            object.__setattr__(self, "_positions", cached)  # frozen dataclass: a derived cache
        return cached

    def type_of_first_token(self, token: int) -> str | None:
        return self.first_token_type.get(int(token))


@dataclass(frozen=True)
class TrieFilter:
    """A request-time restriction of the trie, applied without rebuilding it.

    ``allowed`` is a boolean mask over the trie's sorted item positions; ``counts`` is its prefix
    sum, so a node is alive iff ``counts[hi] - counts[lo] > 0``.
    """

    allowed: np.ndarray  # (N,) bool
    counts: np.ndarray  # (N + 1,) int64

    @classmethod
    def create(
        cls,
        trie: SIDTrie,
        *,
        entity_types: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        allow: Iterable[str] | None = None,
    ) -> TrieFilter:
        """Restrict to entity types, drop excluded ids, and/or keep only an allowlist.

        Unknown ids in ``exclude`` are ignored (they cannot be generated anyway); unknown ids in
        ``allow`` or unknown types raise, since they usually mean a mistake by the caller.
        """
        mask = np.ones(trie.num_items, dtype=bool)
        if entity_types is not None:
            wanted = list(entity_types)
            unknown = sorted(set(wanted) - set(trie.types))
            if unknown:
                raise DecodingError(f"unknown entity types {unknown}; the trie holds {list(trie.types)}")
            type_index = [trie.types.index(t) for t in wanted]
            mask &= np.isin(trie.item_types, type_index)
        positions = trie.position_of()
        if allow is not None:
            keep = np.zeros(trie.num_items, dtype=bool)
            allow_list = list(allow)
            missing = [i for i in allow_list if i not in positions]
            if missing:
                raise DecodingError(f"allowlist names items without a SID: {missing[:5]}")
            keep[[positions[i] for i in allow_list]] = True
            mask &= keep
        drop = [positions[i] for i in exclude if i in positions]
        if drop:
            mask[drop] = False
        return cls.from_mask(mask)

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> TrieFilter:
        counts = np.zeros(len(mask) + 1, dtype=np.int64)
        np.cumsum(mask, out=counts[1:])
        return cls(mask, counts)

    @property
    def num_allowed(self) -> int:
        return int(self.counts[-1])

    def alive(
        self, trie: SIDTrie, targets: np.ndarray, are_items: bool, extra_excluded: Sequence[int] = ()
    ) -> np.ndarray:
        """Which child ``targets`` still hold an allowed item, ``extra_excluded`` positions removed.

        Shape: targets (C,) -> (C,) bool.
        """
        lo, hi = trie.item_range(targets, are_items)
        live = self.counts[hi] - self.counts[lo]
        for pos in extra_excluded:  # the row's own already-generated items (few)
            if self.allowed[pos]:
                live = live - ((lo <= pos) & (pos < hi))
        return live > 0
