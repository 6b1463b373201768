"""``Neo``: a loaded bundle ready to answer — model, tokenizer, trie, catalog, prompts, sessions."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from neo_sdk.catalog import Catalog
from neo_sdk.errors import BundleError, ConfigError, DecodingError, UnknownItemError
from neo_sdk.session._answer import (
    Answer,
    Decoded,
    ItemPart,
    ItemRef,
    Request,
    Segment,
    StreamEvent,
    TextPart,
)
from neo_sdk.session._steering import SteeringVocabulary, normalize_title
from neo_sdk.session._store import SessionStore


class Neo:
    """A trained bundle, loaded and verified, with its catalog, prompts and session store.

    Use :meth:`load`; then :meth:`session` for a conversation. The catalog may have grown since
    training (``neo sids assign``): its new items are served at once and marked ``ItemRef.new``;
    items marked inactive are never returned (:mod:`neo_sdk.bundle`).

    Example:
        >>> neo = Neo.load("demo/bundle")                       # doctest: +SKIP
        >>> print(neo.session(user="196").ask("movies like this, explain why"))  # doctest: +SKIP
    """

    def __init__(self, contents: Any, catalog: Catalog, prompts: Any, store: SessionStore, *,
                 max_new_tokens: int = 64, phrasing_index: int = 0) -> None:
        from neo_sdk.tasks import CatalogFacts
        from neo_sdk.decoding import build_decoder
        from neo_sdk.encoding import ExampleEncoder

        self.bundle = contents
        self.manifest: dict[str, Any] = contents.manifest
        self.model = contents.model
        self.tokenizer = contents.tokenizer
        self.table = contents.table  # served: the catalog's SIDs (trained items + new items)
        self.extension = contents.extension
        self.catalog = catalog
        self.prompts = prompts
        self.store = store
        self.max_new_tokens = max_new_tokens
        self.phrasing_index = phrasing_index
        self.max_history = int(self.manifest.get("training", {}).get("max_history", 10))
        self.encoder = ExampleEncoder(self.tokenizer, contents.vocab, system=prompts.system)
        decoder = build_decoder(self.model, self.encoder)
        self.trie, self.tokens = decoder.trie, decoder.tokens
        self.facts = CatalogFacts(catalog, prompts)
        self._lock = threading.RLock()  # one generation at a time per model
        self._positions = self.trie.position_of()
        years = np.full(self.trie.num_items, -1, dtype=np.int64)
        for item_id, pos in self._positions.items():
            years[pos] = self.facts.year(item_id) or -1
        self._years = years
        self._dated_types = {self.trie.types[t] for t in np.unique(self.trie.item_types[years >= 0])}
        self.steering = self._steering_vocabulary()

    # ---------------------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        bundle: str | Path,
        *,
        catalog: str | Path | Catalog | None = None,
        prompts: str | Path | None = None,
        sessions: str | Path | SessionStore | None = None,
        max_new_tokens: int = 64,
        threads: int | None = None,
    ) -> Neo:
        """Load and verify a bundle (checksums, base model, tokenizer, catalog SIDs).

        Args:
            bundle: the bundle folder written by ``neo train``.
            catalog: the catalog (path or open :class:`Catalog`); default: the one recorded in the
                bundle. Its SID table must be the one the bundle was trained on, or extend it
                (every trained item keeps its SID; items added with ``neo sids assign`` are new).
            prompts: a prompt folder to use instead of the bundle's own copy (same task names).
            sessions: session database (path, ``":memory:"`` or a :class:`SessionStore`);
                default ``$NEO_HOME/sessions.db``.
            max_new_tokens: cap on generated tokens for text and mixed answers.
            threads: torch CPU threads (default: torch's choice).

        Raises:
            BundleError: a missing, altered or mismatched bundle, a missing catalog, or one in which
                an item the bundle was trained on has another SID or none.
        """
        from neo_sdk._home import neo_home
        from neo_sdk.bundle import load_bundle, read_manifest
        from neo_sdk.prompts import load_prompts

        if threads:
            import torch

            torch.set_num_threads(threads)
        manifest = read_manifest(Path(bundle))
        if isinstance(catalog, Catalog):
            opened = catalog
        else:
            path = Path(catalog) if catalog is not None else Path(manifest["catalog"])
            if not path.exists():
                raise BundleError(
                    f"the catalog {path} recorded in bundle {bundle} does not exist; pass catalog= (--db)"
                    " with the catalog the bundle was trained on"
                )
            opened = Catalog(path)
        contents = load_bundle(bundle, catalog=opened)
        prompt_set = load_prompts(prompts) if prompts is not None else load_prompts(contents.prompts_dir, defaults=False)
        if isinstance(sessions, SessionStore):
            store = sessions
        else:
            store = SessionStore(sessions if sessions is not None else neo_home() / "sessions.db")
        return cls(contents, opened, prompt_set, store, max_new_tokens=max_new_tokens)

    @property
    def bundle_id(self) -> str:
        """The SID table hash the bundle was trained on (sessions record it)."""
        return str(self.manifest["sid_table_hash"])

    @property
    def new_items(self) -> frozenset[str]:
        """Items served with SIDs the bundle was not trained on (added with ``neo sids assign``)."""
        ext = self.extension
        return frozenset(i for ids in ext.new_items.values() for i in ids) if ext is not None else frozenset()

    def close(self) -> None:
        self.store.close()
        self.catalog.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------------------- sessions
    def session(
        self,
        user: str | None = None,
        history: Sequence[str] | None = None,
        *,
        session_id: str | None = None,
        exclude_consumed: bool = True,
        exclude_recommended: bool = True,
        persist: bool = True,
    ) -> Any:
        """Start a session (or resume ``session_id`` when it exists).

        Args:
            user: a catalog user id; the session starts from their stored history.
            history: item ids (oldest first) to start from instead of / in addition to the
                stored history (an unknown id raises :class:`UnknownItemError`).
            session_id: resume this session if stored, else create it under this id.
            exclude_consumed: recommendation tasks never return items the user already consumed.
            exclude_recommended: no item is recommended twice in one session.
            persist: write turns to the session store (``False``: in memory only, e.g. when a
                chat framework keeps the dialogue itself).
        """
        import uuid

        from neo_sdk.session._session import Session

        if session_id is not None and persist and self.store.exists(session_id):
            return self.resume(session_id)
        if user is not None and not self.catalog.has_user(user):
            raise UnknownItemError(f"no user {user!r} in catalog {self.catalog.path}")
        explicit = [str(i) for i in history or ()]
        for item in explicit:
            self.item(item)
        options = {"exclude_consumed": exclude_consumed, "exclude_recommended": exclude_recommended}
        if persist:
            sid = self.store.create(user=user, bundle=self.bundle_id, options=options, history=explicit,
                                    session_id=session_id)
        else:
            sid = session_id or f"memory-{uuid.uuid4().hex[:12]}"
        return Session(self, sid, user, self._stored_history(user) + explicit, options, persist=persist)

    def resume(self, session_id: str) -> Any:
        """A stored session, as it was after its last committed turn."""
        from neo_sdk.session._session import Session

        record = self.store.load(session_id)
        history = self._stored_history(record.user)
        history += [item for item, _ in record.events]
        answers = [Answer.model_validate_json(a) for a in record.turns]
        return Session(self, record.id, record.user, history, record.options, answers=answers,
                       focus=record.focus, recorded=[e for e in record.events if e[1] != "history"])

    def _stored_history(self, user: str | None) -> list[str]:
        """The user's items that have a SID, inactive ones included (they are history, only never
        returned)."""
        if user is None:
            return []
        return [i.item_id for i in self.catalog.history(user) if i.item_id in self.table]

    # ------------------------------------------------------------------------------ items
    def item(self, item_id: str, *, score: float | None = None, role: str = "answer") -> ItemRef:
        """An item as an :class:`ItemRef` (title, type, SID, new). Raises :class:`UnknownItemError`."""
        self.type_of(item_id)  # raises UnknownItemError
        item = self.facts.items[item_id]
        sid = ""
        if item_id in self.table:
            sid = "".join(self.tokenizer.convert_ids_to_tokens(self.encoder.span(item_id)[1:-1]))
        return ItemRef(id=item_id, type=item.entity_type, title=item.title, sid=sid, score=score,
                       year=self.facts.year(item_id), new=self.bundle.is_new(item_id),
                       role=role)  # type: ignore[arg-type]

    def type_of(self, item_id: str) -> str:
        """The entity type of an item. Raises :class:`UnknownItemError`."""
        if item_id not in self.facts.items:
            raise UnknownItemError(f"no item with id {item_id!r} in catalog {self.catalog.path}")
        return self.facts.type_of(item_id)

    def _steering_vocabulary(self) -> SteeringVocabulary:
        types = list(self.trie.types)
        words: dict[str, str] = {}
        for etype in types:
            words[etype.lower()] = etype
            words[self.prompts.plural(etype).lower()] = etype
        for word, etype in self.prompts.words.get("synonyms", {}).items():
            if etype in types:
                words[word.lower()] = etype
        rows = self.catalog.db.execute(
            "SELECT DISTINCT r.relation, t.entity_type FROM relations r JOIN items t ON t.id = r.dst"
        ).fetchall()
        for relation, etype in rows:
            role = self.prompts.word("roles", relation, "")
            if role and etype in types:
                words.setdefault(role.lower(), etype)
                words.setdefault(self.prompts.plural(role).lower(), etype)
        interacted = Counter(dict(self.catalog.db.execute(
            "SELECT t.entity_type, COUNT(*) FROM interactions i JOIN items t ON t.id = i.item_id"
            " GROUP BY t.entity_type").fetchall()))
        default_type = max((t for t in types), key=lambda t: (interacted.get(t, 0), -types.index(t)))
        titles: dict[str, str] = {}
        for item_id in sorted(self._positions, key=lambda i: self.facts.popularity.get(i, 0.0)):
            titles[normalize_title(self.facts.title(item_id))] = item_id  # most popular wins
        genres = {g.lower() for i in self._positions for g in self.facts.genres(i) if len(g) > 2}
        formats = {task: self.prompts.formats(task) for task in self.prompts.tasks}
        return SteeringVocabulary(
            types=types, default_type=default_type, type_words=words, titles=titles, genres=genres,
            type_of=self.type_of, formats=formats,
        )

    # ---------------------------------------------------------------------------- prompts
    def prompt_text(self, request: Request, history: Sequence[str], user: str | None) -> str:
        """The instruction for a resolved request, from the prompt templates (one source)."""
        from neo_sdk.tasks import format_history, item_marker

        values: dict[str, Any] = {"type": request.entity_type}
        task = request.task
        if task in ("next_item", "explain", "profile"):
            if not history:
                raise ConfigError(f"task {task} needs a history: start the session with user= or history=,"
                                  " or session.record(item)")
            values["history"] = format_history(list(history), self.max_history)
            values["user"] = self.facts.user_text(user) if user else self.prompts.word("misc", "unknown_user")
        elif task == "like_this":
            values.update(item=item_marker(request.focus or ""), k=request.k)
        elif task == "search":
            values.update(query=request.query or request.text, k=request.k)
        options = self.prompts.phrasings(task, "train")
        phrasing = options[min(self.phrasing_index, len(options) - 1)]
        return self.prompts.fill(phrasing, format=request.format, **values)

    def item_filter(self, request: Request, exclude: Sequence[str]) -> Any:
        """Trie filter of a request: its entity type, years and excluded items."""
        from neo_sdk.decoding import TrieFilter

        flt = TrieFilter.create(self.trie, entity_types=[request.entity_type], exclude=exclude)
        if (request.year_min is None and request.year_max is None) or request.entity_type not in self._dated_types:
            return flt  # a type without years (e.g. people) is not filtered by year
        low = request.year_min if request.year_min is not None else -(10**9)
        high = request.year_max if request.year_max is not None else 10**9
        years = self._years
        return TrieFilter.from_mask(flt.allowed & (years >= low) & (years <= high))

    # --------------------------------------------------------------------------- decoding
    def run(self, request: Request, history: Sequence[str], user: str | None, exclude: Sequence[str], *,
            max_new_tokens: int | None = None) -> Generator[StreamEvent, None, Decoded]:
        """Decode one request, yielding text and item events as they come; returns the
        :class:`Decoded` result (the caller, a :class:`Session`, builds the :class:`Answer`)."""
        started = time.perf_counter()
        prompt = self.encoder.prompt_ids(self.prompt_text(request, history, user))
        flt = self.item_filter(request, exclude) if request.task != "profile" else None
        timings = {"prompt_ms": (time.perf_counter() - started) * 1000}
        if flt is not None and flt.num_allowed == 0:
            nothing = TextPart(text=self._nothing_left(request))
            yield StreamEvent(text=nothing.text)
            return Decoded([nothing], timings)
        started = time.perf_counter()
        if request.format == "ids":
            segments = yield from self._run_ids(prompt, request, flt)
        else:
            segments = yield from self._run_generate(prompt, request, flt, max_new_tokens or self.max_new_tokens)
        timings["decode_ms"] = (time.perf_counter() - started) * 1000
        explained_by = None
        if request.format == "mixed":
            explained_by = yield from self._grounded_fallback(request, history, segments)
        return Decoded(segments, timings, explained_by)

    def _nothing_left(self, request: Request) -> str:
        years = ""
        if request.year_min is not None or request.year_max is not None:
            years = f" from {request.year_min or '…'} to {request.year_max or '…'}"
        return f"No {self.prompts.plural(request.entity_type)}{years} are left to suggest after the filters."

    def _run_ids(self, prompt: list[int], request: Request, flt: Any) -> Generator[StreamEvent, None, list[Segment]]:
        from neo_sdk.decoding import beam_search_items

        with self._lock:
            ranked = beam_search_items(self.model, [prompt], self.trie, self.tokens, k=request.k, filters=flt,
                                       pad_token_id=self.encoder.end_id)[0]
        segments: list[Segment] = []
        for n, scored in enumerate(ranked, 1):
            ref = self.item(scored.item_id, score=scored.score)
            number = f"{'' if n == 1 else chr(10)}{n}. "
            segments += [TextPart(text=number), ItemPart(item=ref)]
            yield StreamEvent(text=number)
            yield StreamEvent(text=ref.label(), item=ref)
        return segments

    def _run_generate(self, prompt: list[int], request: Request, flt: Any,
                      max_new_tokens: int) -> Generator[StreamEvent, None, list[Segment]]:
        from neo_sdk.decoding import generate_constrained

        fmt = request.format
        # mixed answers start with the item asked for: the span opener is forced, the filter binds
        # that first item only (an explanation may cite any item, e.g. from the history).
        prefix = [self.tokens.opener] if fmt == "mixed" else []
        events: queue.Queue[Any] = queue.Queue()
        streamer = _SpanStreamer(self, events, prefix)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with self._lock:
                    result["out"] = generate_constrained(
                        self.model, prompt + prefix, self.trie, self.tokens, eos_token_id=self.encoder.end_id,
                        pad_token_id=self.encoder.end_id, format=fmt, filter=flt,
                        filtered_items=1 if fmt == "mixed" else None, max_new_tokens=max_new_tokens,
                        streamer=streamer, with_scores=True, prompt_length=len(prompt),
                    )
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
                result["error"] = exc
            finally:
                events.put(_DONE)

        thread = threading.Thread(target=work, name="neo-generate", daemon=True)
        thread.start()
        while True:
            event = events.get()
            if event is _DONE:
                break
            yield event
        thread.join()
        if "error" in result:
            raise result["error"]
        generated, log_probs = result["out"]
        return streamer.segments(generated, log_probs)

    def _grounded_fallback(self, request: Request, history: Sequence[str],
                           segments: list[Segment]) -> Generator[StreamEvent, None, str | None]:
        """A mixed answer whose model text after the item is empty gets an explanation built
        from catalog facts only (shared people, genres, decade with the history or the focus
        item; the template teacher of training), appended to ``segments``. Returns who explained."""
        import random
        import re

        from neo_sdk.tasks import ITEM_MARKER, TemplateTeacher

        first = next((n for n, seg in enumerate(segments) if isinstance(seg, ItemPart)), None)
        rest = segments[(first or 0) + 1 :]
        if first is None or any(isinstance(seg, ItemPart) or re.search(r"\w", seg.text) for seg in rest):
            return "model" if first is not None else None
        target = segments[first].item.id  # type: ignore[union-attr]
        basis = [request.focus] if request.task == "like_this" and request.focus else list(history)[-self.max_history :]
        text = TemplateTeacher().explain(self.facts, basis, target, random.Random(target))
        last = 0
        added: list[Segment] = [TextPart(text=" ")]
        for match in ITEM_MARKER.finditer(text):
            if match.start() > last:
                added.append(TextPart(text=text[last : match.start()]))
            added.append(ItemPart(item=self.item(match.group(1), role="cited")))
            last = match.end()
        added.append(TextPart(text=text[last:]))
        segments[first + 1 :] = [seg for seg in added if not isinstance(seg, TextPart) or seg.text]
        for seg in segments[first + 1 :]:
            if isinstance(seg, ItemPart):
                yield StreamEvent(text=seg.item.label(), item=seg.item)
            else:
                yield StreamEvent(text=seg.text)
        return "catalog facts"


_DONE = object()


class _SpanStreamer:
    """A transformers streamer: text deltas as tokens arrive, an item event when a span closes."""

    def __init__(self, neo: Neo, events: queue.Queue[Any], prefix: list[int]) -> None:
        self.neo, self.events = neo, events
        self._skip_prompt = True
        self._text: list[int] = []
        self._emitted = ""
        self._span: list[int] | None = None
        self._items = 0
        for token in prefix:
            self._token(token)

    def put(self, value: Any) -> None:
        if self._skip_prompt:  # generate() first sends the prompt
            self._skip_prompt = False
            return
        for token in value.reshape(-1).tolist():
            self._token(int(token))

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

    def segments(self, generated: list[int], log_probs: list[float]) -> list[Segment]:
        """The whole answer as segments, each item scored by its span's log-probability."""
        from neo_sdk.decoding import ItemSegment, parse_output

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
        n_items = 0
        for seg in parsed:
            if isinstance(seg, ItemSegment):
                score = spans[n_items] if n_items < len(spans) else None
                out.append(ItemPart(item=self.neo.item(seg.item_id, score=score,
                                                       role="answer" if n_items == 0 else "cited")))
                n_items += 1
            elif seg.text:
                out.append(TextPart(text=seg.text))
        return out
