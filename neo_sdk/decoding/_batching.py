"""Sharing one model between threads: a first-come-first-served lock, and beam searches from many
threads micro-batched into one batched :func:`beam_search_items` call.

While a batch runs, the searches that arrive wait; the next batch takes all of them that share a
``k`` and beam width (up to ``max_batch``). One query alone pays a thread hand-off (tens of
microseconds); eight concurrent queries pay one pre-fill and one set of SID steps for all eight.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from neo_sdk.decoding._beam import ScoredItem, beam_search_items
from neo_sdk.decoding._constraint import SIDTokens
from neo_sdk.decoding._trie import SIDTrie, TrieFilter
from neo_sdk.errors import DecodingError


class FairLock:
    """A lock granted in the order it was asked for (``threading.Lock`` promises no order), so a
    generation waiting for the model is never overtaken by later ones. ``priority()`` waiters
    (batched beam searches: a fraction of a second each) go before the plain ones still waiting, and
    a generation holding the lock lets them in between its tokens (:meth:`yield_to_priority`), so an
    id list waits for one token of a generation at most."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._queue: deque[tuple[bool, object]] = deque()  # (priority, ticket), in arrival order

    def acquire(self, *, priority: bool = False) -> None:
        ticket = object()
        with self._cond:
            self._queue.append((priority, ticket))
            while self._held or self._next() is not ticket:
                self._cond.wait()
            self._queue.remove((priority, ticket))
            self._held = True

    def _next(self) -> object | None:
        first = next((t for p, t in self._queue if p), None)
        return first if first is not None else (self._queue[0][1] if self._queue else None)

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def yield_to_priority(self) -> None:
        """For the holder, between the steps of a long hold (a generation's tokens): when priority
        waiters (beam batches) are queued, let them run, then take the lock back ahead of the plain
        waiters. An id list then waits for one token of a generation, not for all of it."""
        with self._cond:
            if not self._held or not any(p for p, _ in self._queue):
                return
            ticket = object()
            self._queue.append((True, ticket))  # after the batches waiting now, before every plain waiter
            self._held = False
            self._cond.notify_all()
            while self._held or self._next() is not ticket:
                self._cond.wait()
            self._queue.remove((True, ticket))
            self._held = True

    @contextmanager
    def priority(self) -> Iterator[None]:
        """Hold the lock, ahead of the plain waiters."""
        self.acquire(priority=True)
        try:
            yield
        finally:
            self.release()

    @property
    def waiting(self) -> int:
        """Holder and waiters right now."""
        with self._cond:
            return len(self._queue) + int(self._held)

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Pending:
    prompt: list[int]
    k: int
    num_beams: int
    filter: TrieFilter | None
    done: threading.Event = field(default_factory=threading.Event)
    result: list[ScoredItem] | None = None
    error: BaseException | None = None


class BatchedBeamSearch:
    """Beam searches over one model, batched across the threads that call :meth:`search`.

    Args:
        model, trie, tokens, pad_token_id: as for :func:`beam_search_items`.
        lock: the model's lock, held while a batch runs (shared with generation).
        max_batch: most queries in one batch.
    """

    def __init__(self, model: torch.nn.Module, trie: SIDTrie, tokens: SIDTokens, *, pad_token_id: int,
                 lock: FairLock, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise DecodingError(f"max_batch must be at least 1, got {max_batch}")
        self.model, self.trie, self.tokens = model, trie, tokens
        self.pad_token_id = pad_token_id
        self.lock = lock
        self.max_batch = max_batch
        self.batches = 0  # batches run so far
        self.queries = 0  # queries answered so far (queries / batches: the mean batch size)
        self._pending: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None

    def search(self, prompt: Sequence[int], *, k: int, num_beams: int | None = None,
               filter: TrieFilter | None = None) -> list[ScoredItem]:
        """The top-``k`` distinct items for one prompt (as ``beam_search_items(...)[0]``), run in
        a batch with the searches other threads asked for meanwhile.

        Raises:
            DecodingError: a filter that allows no item, or ``num_beams < k``.
        """
        beams = num_beams or max(k, 10)
        if beams < k:
            raise DecodingError(f"num_beams ({beams}) must be at least k ({k})")
        if filter is not None and filter.num_allowed == 0:
            raise DecodingError("the request filter allows no item; nothing to rank")
        pending = _Pending(list(prompt), k, beams, filter)
        with self._cond:
            self._pending.append(pending)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="neo-beam-batcher", daemon=True)
                self._worker.start()
            self._cond.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch = self._take()
            self._answer(batch)

    def _take(self) -> list[_Pending]:
        """The oldest pending search and every other one with its ``k`` and width (FIFO)."""
        first = self._pending[0]
        batch = [p for p in self._pending if (p.k, p.num_beams) == (first.k, first.num_beams)][: self.max_batch]
        for p in batch:
            self._pending.remove(p)
        return batch

    def _answer(self, batch: list[_Pending]) -> None:
        try:
            with self.lock.priority():
                results: Any = beam_search_items(
                    self.model, [p.prompt for p in batch], self.trie, self.tokens, k=batch[0].k,
                    num_beams=batch[0].num_beams, filters=[p.filter for p in batch], pad_token_id=self.pad_token_id,
                )
            self.batches += 1
            self.queries += len(batch)
            for p, result in zip(batch, results):
                p.result = result
        except BaseException as exc:  # every caller of the batch gets the error
            for p in batch:
                p.error = exc
        finally:
            for p in batch:
                p.done.set()
