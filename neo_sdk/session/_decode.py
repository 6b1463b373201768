"""Answering a resolved request: its item filter, then a beam search over ids or constrained
generation, streamed as text and item events while the model writes."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from neo_sdk.decoding import (
    BatchedBeamSearch,
    FairLock,
    ItemSegment,
    TrieFilter,
    generate_constrained,
    parse_output,
)
from neo_sdk.errors import DecodingError
from neo_sdk.retrieval import CollaborativeRetriever, GroundednessChecker, HybridRetriever, reciprocal_rank_fusion
from neo_sdk.session._about import answer_about
from neo_sdk.session._answer import (
    Decoded,
    ItemPart,
    ItemRef,
    Request,
    Segment,
    StreamEvent,
    TextPart,
)
from neo_sdk.session._fallback import explain_from_facts
from neo_sdk.session._grounded import citation_rule, explain_grounded, profile_grounded
from neo_sdk.tasks import GROUNDS_VERSIONS

if TYPE_CHECKING:
    from neo_sdk.session._neo import Neo

_NO_HISTORY_PROFILE = ("There is no history to describe yet: record or rate a few items (session.record) and"
                       " ask again.")


# A search's candidates: the retrievers' best this many (within the request's filters), all of
# them scored by the model (beam width = candidates, so the beam search is exhaustive).
SEARCH_CANDIDATES = 20
RANK_BEAMS = SEARCH_CANDIDATES  # beam width: every retrieved candidate is scored; a larger filtered set, its best
# Fusion weight of the retriever's (or popularity's) order against the model's (1). At 2, an item
# the retriever ranks first stays in the top 10 whatever the model thinks of it: the model's
# text -> SID grounding is weak (bench/RESULTS.md), its order adds the user's taste on top.
CANDIDATE_WEIGHT = 2.0
# With a history and no words left, the collaborative retriever's best SEARCH_CANDIDATES inside the
# facts are the candidates, fused at CANDIDATE_WEIGHT as text candidates are (200 personalised demo
# queries, before a steering fix: hit@10 0.485-0.49 at weights 2, 4, 8 and 1000, the model's order
# adds nothing measurable; bench/RESULTS.md). When it models none of
# the history or none of the allowed items, the model ranks the whole filtered set and popularity
# inside it is fused at equal weight.
POPULARITY_PRIOR_WEIGHT = 1.0
NO_HISTORY = ("next_item", "explain")  # tasks that, without a history, are answered as a search


class Candidates(NamedTuple):
    """What the model ranks for one ranked request (:meth:`Responder.candidates`).

    Attributes:
        items: the allowlist of the model's beam search.
        order: the order fused with the model's (the retriever's, or popularity's).
        weight: the fusion weight of ``order`` against the model's (1).
        source: ``"retrieved"`` (words left: the hybrid text retriever; with stated facts, only
            when an allowed item's text contains one of the words), ``"collaborative"`` (a
            history: the items it predicts), ``"popular"`` (a visitor) or ``"filtered"`` (a history the
            collaborative retriever cannot read: every allowed item).
    """

    items: list[str]
    order: list[str]
    weight: float
    source: str


class Responder:
    """Decodes requests for one loaded :class:`Neo`, one generation at a time per model.

    Searches (and recommendations for a visitor without a history) are ranked, not generated
    freely: the request's filters (type, years, stated category values and related items) make
    an allowlist; when words are left, the hybrid retriever's best :data:`SEARCH_CANDIDATES`
    inside it are the candidates, without words but with a history the collaborative retriever's
    best (the items the history predicts), and otherwise the most popular; the model scores the
    candidates by constrained beam search (with the user's history when there is one), and
    reciprocal-rank fusion merges the model's order with the retriever's (or popularity's). A
    visitor's request with no words left gets the most popular of the decoded candidates, in
    popularity order: without a history or words the model's order adds nothing measurable
    (bench/RESULTS.md). Every item returned is one the model decoded. ``retrieval=False`` (``Neo.load``) keeps the model
    alone: no candidates, no stated facts.
    """

    def __init__(self, neo: Neo, *, retrieval: bool = True) -> None:
        self.neo = neo
        self.retrieval = retrieval
        self.lock = FairLock()  # the model: one batch or generation at a time, first come first served
        self.beams = BatchedBeamSearch(neo.model, neo.trie, neo.tokens, pad_token_id=neo.encoder.end_id,
                                       lock=self.lock)
        self.stopped_generations = 0  # generations stopped before their end (their reader went away)
        # a bundle trained with grounds lines: explanations and profiles are written from them
        self.grounded = neo.manifest.get("training", {}).get("grounds") in GROUNDS_VERSIONS
        self._checker: GroundednessChecker | None = None
        self.cite_after = citation_rule(neo.tokenizer, neo.facts.citation_cues, neo.tokens.opener)
        positions = neo.trie.position_of()
        self.ids = [""] * neo.trie.num_items
        years = np.full(neo.trie.num_items, -1, dtype=np.int64)
        popularity = np.zeros(neo.trie.num_items)
        for item_id, pos in positions.items():
            self.ids[pos] = item_id
            years[pos] = neo.facts.year(item_id) or -1
            popularity[pos] = neo.facts.popularity.get(item_id, 0.0)
        self.years = years
        self.popularity = popularity
        self.dated_types = {neo.trie.types[t] for t in np.unique(neo.trie.item_types[years >= 0])}
        self._retrievers: dict[str, HybridRetriever] = {}
        self._collaborative: CollaborativeRetriever | None = None
        first_of_type = np.unique(neo.trie.item_types, return_index=True)[1]
        self.longest_span = max((len(neo.encoder.span(self.ids[p])) for p in first_of_type), default=2)

    def item_filter(self, request: Request, exclude: Sequence[str]) -> TrieFilter:
        """Trie filter of a request: its entity type, years, stated facts and excluded items (a
        search by the model alone, ``retrieval=False``, keeps the type and exclusions only)."""
        flt = TrieFilter.create(self.neo.trie, entity_types=[request.entity_type], exclude=exclude)
        if request.task == "search" and not self.retrieval:
            return flt
        mask = flt.allowed.copy()
        if request.dated and request.entity_type in self.dated_types:
            low, high = request.year_range
            mask &= (self.years >= low) & (self.years <= high)  # a type without years is not filtered
        if request.categories or request.related:
            mask &= self._facts_mask(request, mask)
        return TrieFilter.from_mask(mask) if (mask != flt.allowed).any() else flt

    def _facts_mask(self, request: Request, allowed: np.ndarray) -> np.ndarray:
        """Which allowed items have every stated category value and related item."""
        facts, positions = self.neo.facts, self.neo.trie.position_of()
        keep = np.zeros_like(allowed)
        candidates = {self.ids[p] for p in np.flatnonzero(allowed)}
        for relation, other in request.related:
            candidates &= {src for rel, src in facts.reverse.get(other, []) if relation in (None, rel)}
        wanted = {c.lower() for c in request.categories}
        for item in candidates:
            if wanted <= {g.lower() for g in facts.genres(item)}:
                keep[positions[item]] = True
        return keep

    def run(self, request: Request, history: Sequence[str], user: str | None, exclude: Sequence[str], *,
            max_new_tokens: int | None = None) -> Generator[StreamEvent, None, Decoded]:
        """Decode one request, yielding text and item events as they come; returns the
        :class:`Decoded` result (the caller, a :class:`Session`, builds the :class:`Answer`)."""
        started = time.perf_counter()
        neo = self.neo
        if request.task == "profile" and not history:
            text = TextPart(text=neo.prompts.word("misc", "no_history", _NO_HISTORY_PROFILE))
            yield StreamEvent(text=text.text)
            return Decoded([text], {}, prompt_tokens=0, completion_tokens=0)
        # a question about one item names it: no filter; a profile ranks nothing
        flt = self.item_filter(request, exclude) if request.task not in ("profile", "about") else None
        timings = {"filter_ms": (time.perf_counter() - started) * 1000}
        if flt is not None and flt.num_allowed == 0:
            nothing = TextPart(text=self._nothing_left(request))
            yield StreamEvent(text=nothing.text)
            return Decoded([nothing], timings, prompt_tokens=0, completion_tokens=0)
        started = time.perf_counter()
        ranked = flt is not None and ((request.task == "search" and self.retrieval)
                                      or (request.task in NO_HISTORY and not history))
        usage = {"prompt": 0, "completion": 0, "truncated": 0}
        explained_by: str | None = None
        check: dict[str, Any] | None = None
        cap = max_new_tokens or neo.max_new_tokens
        if request.task == "about":
            segments, explained_by, check = yield from answer_about(self, request, history, user, cap, usage)
        elif flt is not None and request.within:
            segments = yield from self._run_within(request, flt)
        elif ranked:
            assert flt is not None
            segments = yield from self._run_ranked(request, history, user, flt, timings, usage)
        else:
            prompt = neo.encoder.prompt_ids(neo.prompt_text(request, history, user))
            usage["prompt"] = len(prompt)
            if request.format == "ids":
                segments = yield from self._run_ids(prompt, request, flt, usage)
            elif self.grounded and request.task == "profile":
                segments, explained_by, check = yield from profile_grounded(self, prompt, history, cap, usage)
            elif self.grounded and request.format == "mixed":
                segments, explained_by, check = yield from explain_grounded(self, prompt, request, flt, history,
                                                                            cap, usage)
            else:
                segments = yield from self._run_generate(prompt, request, flt, cap, usage)
        timings["decode_ms"] = (time.perf_counter() - started) * 1000
        if request.format == "mixed" and explained_by is None:
            explained_by = yield from explain_from_facts(neo, request, history, segments)
        return Decoded(segments, timings, explained_by, prompt_tokens=usage["prompt"],
                       completion_tokens=usage["completion"], truncated=bool(usage["truncated"]), check=check)

    def _run_within(self, request: Request, flt: TrieFilter) -> Generator[StreamEvent, None, list[Segment]]:
        """A narrowing of the previous answer: its items the filter keeps, in their order, at most
        ``k`` (the model already decoded them; nothing new is decoded)."""
        positions = self.neo.trie.position_of()
        kept = [i for i in request.within if i in positions and flt.allowed[positions[i]]][: request.k]
        if not kept:
            nothing = TextPart(text=self._nothing_left(request))
            yield StreamEvent(text=nothing.text)
            return [nothing]
        return (yield from self._listed([self.neo.item(i) for i in kept], numbered=True))

    def _listed(self, refs: Sequence[ItemRef], *, numbered: bool) -> Generator[StreamEvent, None, list[Segment]]:
        """Items as an answer's segments, streamed: ``1. <item>``, one a line when ``numbered``."""
        segments: list[Segment] = []
        for n, ref in enumerate(refs, 1):
            if numbered:
                number = f"{'' if n == 1 else chr(10)}{n}. "
                segments.append(TextPart(text=number))
                yield StreamEvent(text=number)
            segments.append(ItemPart(item=ref))
            yield StreamEvent(text=ref.label(), item=ref)
        return segments

    def _run_ranked(self, request: Request, history: Sequence[str], user: str | None, flt: TrieFilter,
                    timings: dict[str, float], usage: dict[str, int]) -> Generator[StreamEvent, None, list[Segment]]:
        """Candidates, the model's scores over them, and the fused order (class docs)."""
        neo = self.neo
        started = time.perf_counter()
        chosen = self.candidates(request, history, flt)
        candidates, other = chosen.items, chosen.order
        timings["retrieve_ms"] = (time.perf_counter() - started) * 1000
        k = request.k if request.format == "ids" else 1
        beams = min(max(k, RANK_BEAMS), len(candidates))  # >= SEARCH_CANDIDATES: retrieved sets are scored whole
        if history:
            prompt_request = request.model_copy(update={"task": "next_item", "format": "ids", "k": beams})
        else:
            prompt_request = request.model_copy(update={"task": "search", "format": "ids", "k": beams,
                                                        "query": request.query or request.text})
        prompt = neo.encoder.prompt_ids(neo.prompt_text(prompt_request, history, user))
        narrowed = TrieFilter.create(neo.trie, entity_types=[request.entity_type], allow=candidates)
        scored = self.beams.search(prompt, k=beams, num_beams=beams, filter=narrowed)
        usage["prompt"] = len(prompt)
        model_order = [s.item_id for s in scored]
        score_of = {s.item_id: s.score for s in scored}
        decoded = set(model_order)
        order = model_order
        if chosen.source == "popular":  # nothing to personalise or match: the most popular inside the facts
            order = [i for i in other if i in decoded]
        elif other:
            order = reciprocal_rank_fusion([model_order, [i for i in other if i in decoded]],
                                           weights=[1.0, chosen.weight])
        usage["completion"] += sum(len(neo.encoder.span(item)) for item in order[:k])
        refs = [neo.item(item, score=score_of[item]) for item in order[:k]]
        return (yield from self._listed(refs, numbered=request.format == "ids"))

    @property
    def checker(self) -> GroundednessChecker:
        """The claim checker over the served catalog's facts (built on first use)."""
        if self._checker is None:
            self._checker = GroundednessChecker(self.neo.facts)
        return self._checker

    def candidates(self, request: Request, history: Sequence[str], flt: TrieFilter) -> Candidates:
        """What the model ranks for a ranked request inside ``flt``, and the order fused with its own
        (class docs)."""
        positions = np.flatnonzero(flt.allowed)
        allowed = [self.ids[p] for p in positions]
        words = (request.query or "").strip() if request.task == "search" else ""
        if words and self.retrieval:
            # with stated facts, words no item inside them contains ("in the mood for") are not a search
            retrieved = self.retriever(request.entity_type).rank(words, SEARCH_CANDIDATES, allowed=allowed,
                                                                 lexical=request.states_facts)
            if retrieved or not request.states_facts:
                return Candidates(retrieved or allowed, retrieved, CANDIDATE_WEIGHT, "retrieved")
        by_popularity = positions[np.argsort(-self.popularity[positions], kind="stable")[:SEARCH_CANDIDATES]]
        popular = [self.ids[p] for p in by_popularity]
        if not history:
            return Candidates(popular, popular, CANDIDATE_WEIGHT, "popular")
        if predicted := self.collaborative.rank(history, SEARCH_CANDIDATES, allowed=allowed, fill=popular):
            return Candidates(predicted, predicted, CANDIDATE_WEIGHT, "collaborative")
        return Candidates(allowed, popular, POPULARITY_PRIOR_WEIGHT, "filtered")

    @property
    def collaborative(self) -> CollaborativeRetriever:
        """EASE over the served catalog's interactions as loaded (built on first use; interactions
        recorded later count from the next ``Neo.load``)."""
        if self._collaborative is None:
            self._collaborative = CollaborativeRetriever(self.neo.facts.train)
        return self._collaborative

    def retriever(self, entity_type: str) -> HybridRetriever:
        """The hybrid retriever over one type's item texts (built on first use)."""
        found = self._retrievers.get(entity_type)
        if found is None:
            found = HybridRetriever.from_catalog(self.neo.catalog, entity_type)
            self._retrievers[entity_type] = found
        return found

    def _nothing_left(self, request: Request) -> str:
        years = ""
        if request.dated:
            years = f" from {request.year_min or '…'} to {request.year_max or '…'}"
        return f"No {self.neo.prompts.plural(request.entity_type)}{years} are left to suggest after the filters."

    def _run_ids(self, prompt: list[int], request: Request, flt: Any,
                 usage: dict[str, int]) -> Generator[StreamEvent, None, list[Segment]]:
        neo = self.neo
        ranked = self.beams.search(prompt, k=request.k, filter=flt)
        usage["completion"] += sum(len(neo.encoder.span(scored.item_id)) for scored in ranked)
        return (yield from self._listed([neo.item(s.item_id, score=s.score) for s in ranked], numbered=True))

    def _run_generate(self, prompt: list[int], request: Request, flt: Any, max_new_tokens: int,
                      usage: dict[str, int]) -> Generator[StreamEvent, None, list[Segment]]:
        """Constrained generation of a text or mixed answer, streamed as the model writes it."""
        # mixed answers start with the item asked for: the span opener is forced, the filter binds
        # that first item only (an explanation may cite any item, e.g. from the history).
        prefix = [self.neo.tokens.opener] if request.format == "mixed" else []
        generated, log_probs, streamer = yield from self.generate(
            prompt, request.format, flt, max_new_tokens, usage, forced=prefix, shown=prefix,
            cite_after=self.cite_after if request.format == "mixed" else None)
        return streamer.segments(generated, log_probs)

    def generate(self, prompt: list[int], fmt: str, flt: Any, max_new_tokens: int, usage: dict[str, int], *,
                 forced: list[int], shown: list[int], hold: bool = False, bind_all: bool = False,
                 cite_after: Callable[[Sequence[int]], Sequence[int] | None] | None = None, distinct: bool = True,
                 ) -> Generator[StreamEvent, None, tuple[list[int], list[float], _SpanStreamer]]:
        """Constrained generation on a worker thread after ``prompt + forced`` (``forced``: the
        start of the answer, written by the runtime), its tokens streamed as events (``shown``:
        the part of ``forced`` the streamer reads first). ``hold``: every event is sent as an empty
        one, for a caller that shows the text only once it is checked. ``flt`` binds the first item
        of a mixed answer only, or every item with ``bind_all``. ``cite_after``: the citation rule
        (:func:`~neo_sdk.session._grounded.citation_rule`); ``distinct=False`` lets the text cite an
        item ``forced`` already names. Closing this generator early
        (a client gone, a timeout) stops the generation at its next token.

        Returns the answer's tokens (``forced`` and the generated ones) with their log-probabilities
        (0 for forced ones), and the streamer (for :meth:`_SpanStreamer.segments`).
        """
        neo = self.neo
        events: queue.Queue[Any] = queue.Queue()
        streamer = _SpanStreamer(neo, events, shown, between_tokens=self.lock.yield_to_priority)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with self.lock:
                    result["out"] = generate_constrained(
                        neo.model, prompt + forced, neo.trie, neo.tokens, eos_token_id=neo.encoder.end_id,
                        pad_token_id=neo.encoder.end_id, format=fmt, filter=flt,
                        filtered_items=1 if fmt == "mixed" and not bind_all else None, max_new_tokens=max_new_tokens,
                        streamer=streamer, with_scores=True, prompt_length=len(prompt), cite_after=cite_after,
                        distinct=distinct,
                    )
            except _Cancelled:
                self.stopped_generations += 1
            except BaseException as exc:
                result["error"] = exc
            finally:
                events.put(_DONE)

        thread = threading.Thread(target=work, name="neo-generate", daemon=True)
        thread.start()
        finished = False
        try:
            while True:
                event = events.get()
                if event is _DONE:
                    break
                yield StreamEvent() if hold else event
            finished = True
        finally:
            if not finished:  # closed early: the streamer ends the generation at its next token
                streamer.cancelled = True
        thread.join()
        if "error" in result:
            raise result["error"]
        generated, log_probs = result["out"]
        usage["completion"] += len(generated) - len(forced) + len(shown)
        usage["truncated"] = int(len(generated) - len(forced) >= max_new_tokens)
        return generated, log_probs, streamer


_DONE = object()


class _Cancelled(Exception):
    """Raised inside ``generate`` by the streamer of a request nobody waits for any more."""


class _SpanStreamer:
    """A transformers streamer: text deltas as tokens arrive, an item event when a span closes."""

    def __init__(self, neo: Neo, events: queue.Queue[Any], prefix: list[int],
                 between_tokens: Callable[[], None] | None = None) -> None:
        self.neo, self.events, self.between_tokens = neo, events, between_tokens
        self._skip_prompt = True
        self._text: list[int] = []
        self._emitted = ""
        self._span: list[int] | None = None
        self._items = 0
        self.cancelled = False
        for token in prefix:
            self._token(token)

    def put(self, value: Any) -> None:
        if self.cancelled:
            raise _Cancelled
        if self._skip_prompt:  # generate() first sends the prompt
            self._skip_prompt = False
            return
        for token in value.reshape(-1).tolist():
            self._token(int(token))
        if self.between_tokens is not None:
            self.between_tokens()

    def end(self) -> None:
        self._flush(final=True)

    def _token(self, token: int) -> None:
        tokens = self.neo.tokens
        if token == self.neo.encoder.end_id:
            return
        if self._span is None:
            if token == tokens.opener:
                self._flush(final=True)
                self._span = []
            else:
                self._text.append(token)
                self._flush(final=False)
            return
        if token != tokens.closer:
            self._span.append(token)
            return
        item = self.neo.trie.lookup(self._span)
        self._span = None
        if item is None:  # the constraint makes this unreachable; never emit an invented item
            raise DecodingError("a generated SID span names no catalog item")
        ref = self.neo.item(item, role="answer" if self._items == 0 else "cited")
        self._items += 1
        self.events.put(StreamEvent(text=ref.label(), item=ref))

    def _flush(self, *, final: bool) -> None:
        text = self.neo.tokenizer.decode(self._text, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):  # an incomplete multi-byte character
            return
        if len(text) > len(self._emitted):
            self.events.put(StreamEvent(text=text[len(self._emitted):]))
        self._emitted = text
        if final:
            self._text, self._emitted = [], ""

    def segments(self, generated: list[int], log_probs: list[float], *, answered: bool = False) -> list[Segment]:
        """The whole answer as segments, each item scored by its span's log-probability; the first
        item answers the request, later ones are cited (all of them when ``answered``)."""
        tokens = self.neo.tokens
        opened = [n for n, t in enumerate(generated) if t == tokens.opener]
        if opened and tokens.closer not in generated[opened[-1]:]:  # cut at the token cap inside a span: drop it
            generated, log_probs = generated[: opened[-1]], log_probs[: opened[-1]]
        parsed = parse_output(generated, self.neo.trie, self.neo.tokens, self.neo.tokenizer)
        spans: list[float] = []
        total, inside = 0.0, False
        for token, lp in zip(generated, log_probs):
            if token == self.neo.tokens.opener:
                inside, total = True, 0.0
            elif token == self.neo.tokens.closer and inside:
                spans.append(total)
                inside = False
            elif inside:
                total += lp
        out: list[Segment] = []
        n_items = 1 if answered else 0
        spans = [0.0] * n_items + spans
        for seg in parsed:
            if isinstance(seg, ItemSegment):
                score = spans[n_items] if n_items < len(spans) else None
                out.append(ItemPart(item=self.neo.item(seg.item_id, score=score,
                                                       role="answer" if n_items == 0 else "cited")))
                n_items += 1
            elif seg.text:
                out.append(TextPart(text=seg.text))
        return out
