"""Explanations and profiles the model writes from grounds, checked before they are shown.

For a bundle trained with grounds lines (:mod:`neo_sdk.tasks._grounds`):

* a **mixed** answer: the model's best item (beam search within the request's filter) is shown
  at once; the runtime writes the item's grounds line into the model's context (never into the
  answer); the model writes the explanation after it;
* a **profile**: the runtime writes the history's grounds line, the model writes the profile.

The text is held until the :class:`~neo_sdk.retrieval.GroundednessChecker` has read it: with every
checkable claim true and no form fault (a comparison without an item, a broken category list) it is
shown as the model wrote it (``explained_by="model"``); an empty text, or one with a false claim or
a fault, is replaced by the template sentence over the same grounds
(``explained_by="catalog facts"``). ``Answer.explanation_check`` says what was found either way.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from neo_sdk.decoding import TrieFilter
from neo_sdk.retrieval import Grounding
from neo_sdk.session._answer import ItemPart, ItemRef, Request, Segment, StreamEvent, TextPart
from neo_sdk.session._fallback import has_words, render_marked
from neo_sdk.tasks import (
    TemplateTeacher,
    cue_pattern,
    explanation_grounds,
    item_marker,
    mentioned_items,
    profile_grounds,
)

if TYPE_CHECKING:
    from neo_sdk.session._decode import Responder


def explain_grounded(responder: Responder, prompt: list[int], request: Request, flt: Any, history: Sequence[str],
                     max_new_tokens: int, usage: dict[str, int], *, item: ItemRef | None = None, lead: Sequence[Segment] = (),
                     ) -> Generator[StreamEvent, None, tuple[list[Segment], str, dict[str, Any]]]:
    """A mixed answer: item, then the model's explanation from the item's grounds (module docs).
    ``item``: the item to explain (a question about it), instead of the model's best within ``flt``;
    ``lead``: catalog text shown between the item and the explanation."""
    neo = responder.neo
    if item is None:
        best = responder.beams.search(prompt, k=1, filter=flt)[0]
        item = neo.item(best.item_id, score=best.score)
    yield StreamEvent(text=item.label(), item=item)
    yield from events(lead)
    focus = request.focus if request.task == "like_this" else None
    basis = [focus] if focus else list(history)[-neo.max_history:]
    grounds = explanation_grounds(neo.facts, basis, item.id)
    line = grounds.line(neo.facts)
    span = neo.encoder.span(item.id)
    forced = neo.encoder.completion_ids(f"{item_marker(item.id)} {line}")
    usage["prompt"] += len(forced) - len(span)
    usage["completion"] += len(span)
    # the explanation may cite only the items its grounds name. They are already spans of the forced
    # grounds line, so the constraint's "never the same item twice" must not count those: with it, no
    # grounds item could be cited and the model wrote "like 1997" where the item belonged
    positions = neo.trie.position_of()
    citable = [i for i in dict.fromkeys(mentioned_items(line)) if i in positions and i != item.id]
    cited = TrieFilter.create(neo.trie, allow=citable)
    generated, log_probs, streamer = yield from responder.generate(
        prompt, "mixed", cited, max_new_tokens, usage, forced=forced, shown=[], hold=True, bind_all=True,
        cite_after=responder.cite_after, distinct=False)
    said = streamer.segments(generated[len(forced):], log_probs[len(forced):], answered=True)
    found = responder.checker.check_explanation(marked(said), item.id, focus=focus, history=basis)
    if has_words(said) and found.passes:
        shown, by = said, "model"
    else:
        teacher_text = TemplateTeacher().explain_grounds(neo.facts, grounds, random.Random(item.id))
        shown, by = [TextPart(text=" "), *render_marked(neo, teacher_text)], "catalog facts"
    yield from events(shown)
    return [ItemPart(item=item), *lead, *shown], by, summary(found, said, by)


def profile_grounded(responder: Responder, prompt: list[int], history: Sequence[str], max_new_tokens: int,
                     usage: dict[str, int]) -> Generator[StreamEvent, None, tuple[list[Segment], str, dict[str, Any]]]:
    """A profile: the model's text from the history's grounds (module docs)."""
    neo = responder.neo
    recent = list(history)[-neo.max_history:]
    grounds = profile_grounds(neo.facts, recent)
    forced = neo.encoder.completion_ids(grounds.line(neo.facts))
    usage["prompt"] += len(forced)
    generated, log_probs, streamer = yield from responder.generate(
        prompt, "text", None, max_new_tokens, usage, forced=forced, shown=[], hold=True)
    said = _strip_leading_space(streamer.segments(generated[len(forced):], log_probs[len(forced):], answered=True))
    found = responder.checker.check_profile(marked(said), recent)
    if has_words(said) and found.passes:
        shown, by = said, "model"
    else:
        teacher_text = TemplateTeacher().profile_grounds(neo.facts, grounds, random.Random(" ".join(recent)))
        shown, by = render_marked(neo, teacher_text), "catalog facts"
    yield from events(shown)
    return shown, by, summary(found, said, by)


def citation_rule(tokenizer: Any, cues: Sequence[str], opener: int) -> Callable[[Sequence[int]], list[int] | None]:
    """The decoding rule that makes a comparison cite an item: after a citation cue ("like", "as
    in"; :attr:`~neo_sdk.tasks.CatalogFacts.citation_cues`) only a space or the span opener may
    follow, after the cue and a space only the opener (the layout training uses: ``like <space>
    <span>``)."""
    ends_with_cue = re.compile(rf"{cue_pattern(cues)}(\s?)$", re.IGNORECASE)
    space = tokenizer.encode(" ", add_special_tokens=False)

    def allowed_after(run: Sequence[int]) -> list[int] | None:
        match = ends_with_cue.search(tokenizer.decode(list(run[-24:]), skip_special_tokens=True))
        if match is None:
            return None
        return [opener] if match.group(1) or len(space) != 1 else [space[0], opener]

    return allowed_after


def marked(segments: Sequence[Segment]) -> str:
    """Segments as text with item markers (what the checker reads)."""
    return "".join(s.text if isinstance(s, TextPart) else item_marker(s.item.id) for s in segments)


def summary(found: Grounding, said: Sequence[Segment], by: str) -> dict[str, Any]:
    """What the check found in the model's text (``Answer.explanation_check``)."""
    out: dict[str, Any] = {"claims": found.checkable, "true": len(found.true),
                           "false": [c.reason for c in found.false], "shown": by,
                           "checked": [{"text": c.text, "kind": c.kind, "holds": c.holds, "reason": c.reason}
                                       for c in (*found.true, *found.false)],
                           "faults": [{"kind": f.kind, "text": f.text, "reason": f.reason} for f in found.faults]}
    if by != "model":
        out["model_text"] = "".join(s.text if isinstance(s, TextPart) else s.item.label() for s in said).strip()
    return out


def _strip_leading_space(segments: list[Segment]) -> list[Segment]:
    if segments and isinstance(segments[0], TextPart):
        text = segments[0].text.lstrip()
        return ([TextPart(text=text)] if text else []) + segments[1:]
    return segments


def events(segments: Sequence[Segment]) -> Generator[StreamEvent, None, None]:
    for seg in segments:
        if isinstance(seg, ItemPart):
            yield StreamEvent(text=seg.item.label(), item=seg.item)
        elif seg.text:
            yield StreamEvent(text=seg.text)
