"""``Session``: one conversation — dialogue memory, the user's history, exclusions, persistence."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from neo_sdk.session._answer import (
    Answer,
    ItemPart,
    Request,
    Steering,
    StreamEvent,
    TextPart,
)
from neo_sdk.session._steering import DialogueState, resolve

if TYPE_CHECKING:
    from neo_sdk.session._neo import Neo

RECOMMENDATION_TASKS = frozenset({"next_item", "explain", "like_this"})


def focus_after(answer: Answer, previous: str | None) -> str | None:
    """The focus once ``answer`` is given: its first answering item, else the item the request
    was about, else the previous focus."""
    return next((i.id for i in answer.answer_items), None) or answer.request.focus or previous


class Session:
    """A conversation with a user over one bundle. Make one with :meth:`Neo.session`.

    Memory: every turn's request and answer; the *focus* ("this", "that one") is the last item
    discussed or consumed; "the second one" is the second item of the previous answer. Each turn
    is committed to the session store before :meth:`ask` returns, so :meth:`Neo.resume` picks up
    exactly there after a restart.
    """

    def __init__(
        self,
        neo: Neo,
        session_id: str,
        user: str | None,
        history: Sequence[str],
        options: Mapping[str, Any],
        *,
        answers: Sequence[Answer] = (),
        focus: str | None = None,
        recorded: Sequence[tuple[str, str]] = (),
        persist: bool = True,
    ) -> None:
        self.neo = neo
        self.persist = persist
        self.id = session_id
        self.user = user
        self.history: list[str] = list(history)
        self.exclude_consumed = bool(options.get("exclude_consumed", True))
        self.exclude_recommended = bool(options.get("exclude_recommended", True))
        self.owner: str | None = options.get("owner")
        self.answers: list[Answer] = list(answers)
        self.recorded: list[tuple[str, str]] = list(recorded)
        self.focus = focus or (self.history[-1] if self.history else None)
        self.max_new_tokens: int | None = None  # cap on generated tokens (None: the runtime's)

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, user={self.user!r}, turns={len(self.answers)}, focus={self.focus!r})"

    # --------------------------------------------------------------------------- requests
    def resolve(self, text: str, **steering: Unpack[Steering]) -> Request:
        """How :meth:`ask` would read ``text`` now (task, type, format, k, focus, filters)."""
        # a question about one item ("who is in the second one?") leaves the list on screen in place:
        # references and follow-ups read the last answer that was not such a question
        last = next((a for a in reversed(self.answers) if a.task != "about"), None)
        state = DialogueState(
            last=last.request if last else None,
            last_turn=last.turn if last else None,
            last_items=[i.id for i in last.answer_items] if last else [],
            focus=self.focus,
            history=self.history,
            shown=list(dict.fromkeys(i.id for a in self.answers for i in a.answer_items)),
            last_aspect=self.answers[-1].request.aspect if self.answers else None,
        )
        return resolve(text, self.neo.steering, state, **steering)

    def ask(self, text: str, **steering: Unpack[Steering]) -> Answer:
        """Answer a request in words; explicit :class:`Steering` arguments (``task``,
        ``entity_type``, ``format``, ``k``, ``filters``) override what the words say.

        Args:
            text: the request, e.g. ``"movies like this, explain why"`` or ``"only from the 90s"``.

        Returns:
            An :class:`Answer` whose items all exist in the catalog and have the resolved type
            (explanations may also cite items of any type, marked ``role="cited"``).
        """
        answer = None
        for event in self.stream(text, **steering):
            answer = event.answer or answer
        assert answer is not None
        return answer

    def stream(self, text: str, **steering: Unpack[Steering]) -> Iterator[StreamEvent]:
        """Like :meth:`ask`, as events: text deltas, each item when its span completes, then the
        final event carrying the :class:`Answer` (committed to the store by then)."""
        started = time.perf_counter()
        request = self.resolve(text, **steering)
        resolved_ms = (time.perf_counter() - started) * 1000
        decoded = yield from self.neo.run(request, self.history, self.user, self.excluded(request),
                                          max_new_tokens=self.max_new_tokens)
        segments = decoded.segments
        items = [s.item for s in segments if isinstance(s, ItemPart)]
        answer_text = "".join(s.text if isinstance(s, TextPart) else s.item.label() for s in segments)
        timings = {"resolve_ms": resolved_ms, **decoded.timings}
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        answer = Answer(
            text=answer_text, segments=segments, items=items, task=request.task,
            entity_type=request.entity_type, format=request.format, request=request, session_id=self.id,
            turn=-1, explained_by=decoded.explained_by, timings={k: round(v, 2) for k, v in timings.items()},
            usage={"prompt_tokens": decoded.prompt_tokens, "completion_tokens": decoded.completion_tokens},
            truncated=decoded.truncated, explanation_check=decoded.check,
        )
        focus = focus_after(answer, self.focus)
        numbered: dict[int, Answer] = {}

        def render(index: int) -> tuple[str, str]:
            numbered[index] = answer.model_copy(update={"turn": index})
            return request.model_dump_json(), numbered[index].model_dump_json()

        if self.persist:
            turn = self.neo.store.add_turn(self.id, render, focus)
        else:
            turn = len(self.answers)
            render(turn)
        answer = numbered[turn]
        self.answers.append(answer)
        self.focus = focus
        yield StreamEvent(answer=answer)

    def excluded(self, request: Request) -> list[str]:
        """Items a request may not return: its own exclusions (\"not that one\"), and for
        recommendation tasks (next_item, explain, like_this) the items recommended earlier in the
        session (except those of the turn it refines), the consumed items and the focus item.
        A search for a title ("find toy story") is retrieval: only its own exclusions apply; any
        other search ("90s comedies", "a heist film with a twist") recommends within what it states,
        and excludes like a recommendation."""
        out = list(request.exclude)
        finds_a_title = request.task == "search" and bool(request.query) and self.neo.steering.is_title(request.query or "")
        if request.task not in RECOMMENDATION_TASKS and (request.task != "search" or finds_a_title):
            return out
        if self.exclude_recommended:
            for answer in self.answers:
                if answer.turn != request.refines and answer.task in RECOMMENDATION_TASKS:
                    out += [i.id for i in answer.answer_items]
        if self.exclude_consumed:
            out += self.history
        if request.task == "like_this" and request.focus:
            out.append(request.focus)
        if request.within:  # a narrowing keeps the listed items it did not drop, whatever turn showed them
            kept = set(request.within)
            out = [i for i in out if i not in kept]
        return list(dict.fromkeys(out))

    def remember(self, answer: Answer) -> None:
        """Take an answer given earlier elsewhere (e.g. carried by a chat message) into this
        session's memory as its next turn: follow-ups ("the second one") and exclusions see it.
        Nothing is stored."""
        answer = answer.model_copy(update={"turn": len(self.answers)})
        self.answers.append(answer)
        self.focus = focus_after(answer, self.focus)

    # ---------------------------------------------------------------------------- history
    def record(self, item_id: str, event: str = "consume") -> None:
        """Add an item the user consumed (or any event) to the session's history and focus.

        Raises:
            UnknownItemError: no such item.
        """
        self.neo.item(item_id)
        if self.persist:
            self.neo.store.add_event(self.id, item_id, event)
        self.history.append(item_id)
        self.recorded.append((item_id, event))
        self.focus = item_id

    @property
    def turns(self) -> list[Answer]:
        """Every answer of this session, oldest first."""
        return list(self.answers)

    def delete(self) -> None:
        """Remove this session from the store."""
        if self.persist:
            self.neo.store.delete(self.id)
