"""Stop strings: an answer cut before the first one, whole or streamed (text, segments and items agree)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neo_sdk.session._answer import Answer, ItemPart, Segment, TextPart


def _first_stop(text: str, stops: Sequence[str]) -> int:
    """Where the first stop string starts in ``text`` (-1: none occurs)."""
    found = [at for at in (text.find(s) for s in stops) if at >= 0]
    return min(found, default=-1)


def cut_at_stop(answer: Answer, stops: Sequence[str]) -> Answer:
    """``answer`` cut before the first stop string (:func:`cut_answer`); an answer without a stop
    string is returned as is."""
    cut = _first_stop(answer.text, stops)
    return answer if cut < 0 else cut_answer(answer, cut)


def cut_answer(answer: Answer, cut: int) -> Answer:
    """``answer`` cut at character ``cut`` of its text: its text, segments and items agree.

    Items whose label does not end before the cut are dropped; the part of a label before the
    cut stays as plain text.
    """
    if cut >= len(answer.text):
        return answer
    segments: list[Segment] = []
    at = 0
    for segment in answer.segments:
        text = segment.text if isinstance(segment, TextPart) else segment.item.label()
        if at + len(text) <= cut:
            segments.append(segment)
        elif at < cut:
            segments.append(TextPart(text=text[: cut - at]))
        at += len(text)
        if at >= cut:
            break
    items = [s.item for s in segments if isinstance(s, ItemPart)]
    return answer.model_copy(update={"text": answer.text[:cut], "segments": segments, "items": items})


class StopCutter:
    """Streamed pieces (text, or an item's label with the item) released only once no stop
    string can start inside them; everything from the first stop string on is withheld.

    Invariant: no stop string occurs in the text seen so far, and only the longest tail of it that
    is a proper prefix of a stop string is held back, so a later match can only start in the held
    tail. An item is released whole or not at all (a cut label is released as plain text).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.pending: list[tuple[str, Any]] = []  # held pieces: (text, item or None)
        self.stopped = False

    def feed(self, text: str, item: Any = None) -> list[tuple[str, Any]]:
        if self.stopped:
            return []
        if not self.stops:
            return [(text, item)]
        self.pending.append((text, item))
        held = "".join(t for t, _ in self.pending)
        cut = _first_stop(held, self.stops)
        if cut >= 0:
            self.stopped = True
            return self._release(cut, cut_items=True)
        return self._release(len(held) - self._open_prefix(held), cut_items=False)

    def finish(self) -> list[tuple[str, Any]]:
        """The end of the answer: whatever is still held (no stop string completed)."""
        if self.stopped:
            return []
        return self._release(sum(len(t) for t, _ in self.pending), cut_items=False)

    def _open_prefix(self, text: str) -> int:
        """Length of the longest tail of ``text`` that a stop string starts with (shorter than it)."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-n:]):
                    longest = n
                    break
        return longest

    def _release(self, upto: int, *, cut_items: bool) -> list[tuple[str, Any]]:
        """Release the held pieces that end by ``upto``; a text piece straddling it is split, an
        item straddling it stays held (or, at a cut, becomes the text before the cut)."""
        out: list[tuple[str, Any]] = []
        at = 0
        while self.pending:
            text, item = self.pending[0]
            if at + len(text) <= upto:
                out.append(self.pending.pop(0))
                at += len(text)
                continue
            if at < upto and (item is None or cut_items):
                out.append((text[: upto - at], None))
                self.pending[0] = (text[upto - at :], item)
            break
        if cut_items:
            self.pending.clear()
        return out
