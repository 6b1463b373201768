"""``Neo``: a loaded bundle ready to answer — model, tokenizer, trie, catalog, prompts, sessions.

Loading and items live here; answering a resolved request is :mod:`neo_sdk.session._decode`, the
catalog-facts explanation :mod:`neo_sdk.session._fallback`, the resolver's vocabulary
:mod:`neo_sdk.session._vocabulary`.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, Self

from neo_sdk._home import neo_home
from neo_sdk._names import OUTPUT_FORMATS, TASKS
from neo_sdk.bundle import BundleContents, load_bundle, read_manifest
from neo_sdk.catalog import Catalog
from neo_sdk.decoding import build_decoder
from neo_sdk.encoding import ExampleEncoder
from neo_sdk.errors import BundleError, ConfigError, SessionError, UnknownItemError
from neo_sdk.prompts import PromptSet, load_prompts
from neo_sdk.session._answer import Answer, Decoded, ItemCard, ItemRef, Link, Request, StreamEvent
from neo_sdk.session._decode import Responder
from neo_sdk.session._session import Session
from neo_sdk.session._store import SessionStoreLike, open_session_store
from neo_sdk.session._vocabulary import steering_vocabulary
from neo_sdk.tasks import MAX_HISTORY, CatalogFacts, format_history, item_marker


class Neo:
    """A trained bundle, loaded and verified, with its catalog, prompts and session store.

    Use :meth:`load`; then :meth:`session` for a conversation. The catalog may have grown since
    training (``neo sids assign``): its new items are served at once and marked ``ItemRef.new``;
    items marked inactive are never returned (:mod:`neo_sdk.bundle`).

    Example:
        >>> neo = Neo.load("demo/bundle")                       # doctest: +SKIP
        >>> print(neo.session(user="196").ask("movies like this, explain why"))  # doctest: +SKIP
    """

    def __init__(self, contents: BundleContents, catalog: Catalog, prompts: PromptSet, store: SessionStoreLike, *,
                 max_new_tokens: int = 64, phrasing_index: int = 0, retrieval: bool = True) -> None:
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
        self.max_history = int(self.manifest.get("training", {}).get("max_history", MAX_HISTORY))
        self.encoder = ExampleEncoder(self.tokenizer, contents.vocab, system=prompts.system)
        decoder = build_decoder(self.model, self.encoder)
        self.trie, self.tokens = decoder.trie, decoder.tokens
        # every interaction the catalog holds: served popularity and co-occurrence use them all
        self.facts = CatalogFacts(catalog, prompts, {u: [i.item_id for i in h] for u, h in catalog.histories().items()})
        self.retrieval = retrieval
        self.responder = Responder(self, retrieval=retrieval)
        self.steering = steering_vocabulary(self)

    # ---------------------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        bundle: str | Path,
        *,
        catalog: str | Path | Catalog | None = None,
        prompts: str | Path | None = None,
        sessions: str | Path | SessionStoreLike | None = None,
        max_new_tokens: int = 64,
        threads: int | None = None,
        retrieval: bool = True,
    ) -> Neo:
        """Load and verify a bundle (checksums, base model, tokenizer, catalog SIDs).

        Args:
            bundle: the bundle folder written by ``neo train``.
            catalog: the catalog (path or open :class:`Catalog`); default: the one recorded in the
                bundle. Its SID table must be the one the bundle was trained on, or extend it
                (every trained item keeps its SID; items added with ``neo sids assign`` are new).
            prompts: a prompt folder to use instead of the bundle's own copy (same task names).
            sessions: session store: a SQLite path, ``":memory:"``, a ``postgresql://`` URL (a store
                shared by several servers) or a store object; default ``$NEO_HOME/sessions.db``.
            max_new_tokens: cap on generated tokens for text and mixed answers.
            threads: torch CPU threads (default: torch's choice).
            retrieval: searches rank retrieved candidates within the facts the request states
                (:class:`~neo_sdk.session._decode.Responder`); ``False``: the model alone.

        Raises:
            BundleError: a missing, altered or mismatched bundle, a missing catalog, or one in which
                an item the bundle was trained on has another SID or none.
        """
        if threads:
            import torch

            torch.set_num_threads(threads)
        manifest = read_manifest(Path(bundle), verify=False)  # load_bundle verifies every file once
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
        store = open_session_store(sessions if sessions is not None else neo_home() / "sessions.db")
        return cls(contents, opened, prompt_set, store, max_new_tokens=max_new_tokens, retrieval=retrieval)

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
        owner: str | None = None,
    ) -> Session:
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
            owner: who may resume the session (e.g. the name of a server's API key): a stored
                session made by another owner is treated as absent (:meth:`resume`).

        Raises:
            SessionError: ``session_id`` is stored under another owner (the message is the one an
                unknown id gets, so ids do not leak).
        """
        if session_id is not None and persist and self.store.exists(session_id):
            return self.resume(session_id, owner=owner)
        if user is not None and not self.catalog.has_user(user):
            raise UnknownItemError(f"no user {user!r} in catalog {self.catalog.path}")
        explicit = [str(i) for i in history or ()]
        for item in explicit:
            self.item(item)
        options: dict[str, Any] = {"exclude_consumed": exclude_consumed, "exclude_recommended": exclude_recommended}
        if owner is not None:
            options["owner"] = owner
        if persist:
            sid = self.store.create(user=user, bundle=self.bundle_id, options=options, history=explicit,
                                    session_id=session_id)
        else:
            sid = session_id or f"memory-{uuid.uuid4().hex[:12]}"
        return Session(self, sid, user, self._stored_history(user) + explicit, options, persist=persist)

    def resume(self, session_id: str, *, owner: str | None = None) -> Session:
        """A stored session, as it was after its last committed turn.

        Raises:
            SessionError: no such session, or one made by another ``owner`` (same message).
        """
        record = self.store.load(session_id)
        if record.options.get("owner") != owner:
            raise SessionError(f"no session {session_id!r} in {self.store.path}")
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

    def card(self, item_id: str, *, links: int = 12) -> ItemCard:
        """An item as a person looks at it: title, type, year, category values, up to ``links``
        related items (links out of it first). Raises :class:`UnknownItemError`."""
        ref = self.item(item_id)
        related = [Link(relation=r, words=self.facts.relation_words(r), direction="out", id=other,
                        type=self.facts.type_of(other), title=self.facts.title(other))
                   for r, other in self.facts.forward.get(item_id, [])[:links]]
        related += [Link(relation=r, words=self.facts.role_word(r), direction="in", id=other,
                         type=self.facts.type_of(other), title=self.facts.title(other))
                    for r, other in self.facts.reverse.get(item_id, [])[:links - len(related)]]
        active = item_id not in self.table or self.table.is_active(item_id)
        return ItemCard(**ref.model_dump(), categories=self.facts.genres(item_id), related=related, active=active)

    def recent(self, user: str, n: int = 10) -> list[ItemRef]:
        """The user's last ``n`` stored interactions, newest first. Raises :class:`UnknownItemError`."""
        if not self.catalog.has_user(user):
            raise UnknownItemError(f"no user {user!r} in catalog {self.catalog.path}")
        return [self.item(i) for i in reversed(self._stored_history(user)[-n:])] if n > 0 else []

    def vocabulary(self) -> dict[str, Any]:
        """What a request can name on this bundle: tasks, formats, entity types (with plural, item
        count and category values), the default type, relation words, and how many users."""
        types = []
        for etype in self.steering.types:
            ids = self.facts.by_type.get(etype, [])
            categories = sorted({c for i in ids for c in self.facts.genres(i)}, key=str.lower)
            types.append({"name": etype, "plural": self.prompts.plural(etype), "items": len(ids),
                          "categories": categories})
        relations = sorted({r for r, _ in self.catalog.relation_target_types()})
        return {"tasks": list(TASKS), "formats": list(OUTPUT_FORMATS), "types": types,
                "default_type": self.steering.default_type,
                "relations": [{"name": r, "words": self.facts.relation_words(r)} for r in relations],
                "users": len(self.facts.train), "new_items": len(self.new_items)}

    def type_of(self, item_id: str) -> str:
        """The entity type of an item. Raises :class:`UnknownItemError`."""
        if item_id not in self.facts.items:
            raise UnknownItemError(f"no item with id {item_id!r} in catalog {self.catalog.path}")
        return self.facts.type_of(item_id)

    # ---------------------------------------------------------------------------- prompts
    def run(self, request: Request, history: Sequence[str], user: str | None, exclude: Sequence[str], *,
            max_new_tokens: int | None = None) -> Generator[StreamEvent, None, Decoded]:
        """Decode one request, yielding text and item events as they come; returns the
        :class:`Decoded` result (the caller, a :class:`Session`, builds the :class:`Answer`)."""
        return self.responder.run(request, history, user, exclude, max_new_tokens=max_new_tokens)

    def prompt_text(self, request: Request, history: Sequence[str], user: str | None) -> str:
        """The instruction for a resolved request, from the prompt templates (one source)."""
        values: dict[str, Any] = {"type": request.entity_type}
        task = request.task
        if task == "about":  # a bundle trained before the about task: its explain prompt, the item is forced
            if "about" in self.prompts.tasks:
                values.update(item=item_marker(request.focus or ""), history=format_history(list(history),
                              self.max_history), user=self.facts.user_text(user) if user else
                              self.prompts.word("misc", "unknown_user"))
            else:
                task = "explain"
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

