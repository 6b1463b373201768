"""Steering resolution: a request's words (or explicit arguments) -> task, entity type, format, k,
filters and the item "this" refers to.

The trained model is steered by language, but the runtime must know *before* decoding whether it
runs a beam search over ids or free generation, which entity types the trie allows, and which items
to exclude. This module is that cheap, deterministic first pass. Rules, in order:

1. **Explicit arguments win** (``task=``, ``entity_type=``, ``format=``, ``k=``, ``filters=``).
2. **References**: "the second one", "#3", "the last one" name an item of the previous answer;
   "this", "that one", "it" name the session's *focus* (the last item discussed or consumed);
   "like <title>" names a catalog item by title.
   **Questions about one item** ("why would I like the second one?", "who is in it?", "what's #3
   about?", "is that one from the 90s?") are the ``about`` task, with the question's *aspect*
   (why, people, when, facts) and the item as focus.
3. **Task cues**: profile ("describe my taste", "what do I like"), like_this ("like this",
   "similar", "more like"), search ("find", "search", "starring", "directed by", a genre or decade
   word), explain ("why", "explain" + a recommendation), next_item ("recommend", "suggest", and the
   default).
4. **Follow-ups**: a request without a task cue that only changes something ("only from the 90s",
   "not that one", "now people instead", "top 3") *refines* the previous request: it inherits task,
   type, focus and query, and adds its own changes. "More", "5 more", "others" also exclude every
   item the session has shown. A follow-up about the list on screen *narrows* it instead of asking
   again ("just the top two", "drop the third one", "only the ones from the 90s", "which of them
   are comedies"): ``Request.within`` holds the previous answer's items.
5. **Entity type**: the first type word (type names, plurals, synonyms and role words such as
   "actors" or "directors", taken from the prompts' ``words`` and the catalog relations); else the
   focus item's type (like_this), the user's most frequent type, or the catalog's main type.
6. **Format**: "ids only"/"just the list" -> ids; "why"/"explain" -> mixed; profile -> text; else
   the task's first declared format. A format the task does not declare falls back to that default
   (an explicit ``format=`` that the task does not declare raises :class:`ConfigError`).
7. **Filters**: decades ("90s", "the 1980s", "the nineties", "early 2000s", "late 70s"), "before
   1990", "after 2000", "from 1995".

Everything it decided is in ``Request.reasons``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neo_sdk._names import OUTPUT_FORMATS, TASKS
from neo_sdk.errors import ConfigError, UnknownItemError
from neo_sdk.retrieval import StatedFacts, content_words, normalize_title
from neo_sdk.session._answer import Request

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "a couple of": 2,
    "a few": 3, "a": 1, "an": 1, "single": 1,
}
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "last": -1,
}
DEFAULT_K = 10  # items of an id list when the request does not say
FILTERS = ("year_min", "year_max", "exclude", "categories", "related")  # the keys of ``filters=``

_PROFILE = re.compile(
    r"\b(describe|profile|summari[sz]e|portrait|characteri[sz]e)\b.*\b(me|my|user|taste|interests|them|they)\b"
    r"|\bmy (taste|interests|profile|preferences)\b|\bwhat (do|does) (i|the user|they|he|she) (like|enjoy)\b"
    r"|\bwho am i\b|\bwhat am i into\b|\bdescribe (me|the user|this user|them)\b"
)
_LIKE_THIS = re.compile(
    r"\b(like (this|that|it|these|those|the \w+ one)|similar|more like|resembl\w*|in the (same )?vein"
    r"|reminds? (me|you) of|along the lines of)\b"
)
_LIKE_TITLE = re.compile(r"\b(?:like|similar to|resembling|fans of)\s+(.+)$")
_SEARCH = re.compile(
    r"\b(find|search|look(ing)? for|starring|directed by|written by|about|featuring|with actor|show me)\b"
)
_EXPLAIN = re.compile(r"\b(why|explain\w*|reasons?|because|justify|justification)\b")
_RECOMMEND = re.compile(r"\b(recommend\w*|suggest\w*|next|for me|should i|what to (watch|read|see))\b")
_IDS_ONLY = re.compile(r"\b(ids?( only)?|just (the )?(list|titles|ids)|list only|only the list|no explanation)\b")
_REFINE = re.compile(r"^\s*(only|now|instead|but|and|also|more|again|another|what about|how about|not|no|"
                     r"except|without|just|make it|same)\b|\binstead\b|\bonly\b")
_NEGATE = re.compile(
    r"\b(not|no|without|except|exclude|drop|remove|skip|lose|get rid of|all but|take out|leave out|cut)\s+"
    r"(that|this|it|the \w+( one)?|#\d+|number \w+)\b"
    r"|\bnot (that|this) one\b"
)
_ORDINAL = re.compile(
    r"\b(?:the\s+)?(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|1st|2nd|3rd|\d+th|last)"
    r"(?:\s+(?:one|item|pick|result|\w+))?\b|#(\d+)\b|\bnumber (\d+|one|two|three|four|five|six|seven|eight|nine|ten)\b"
)
_THIS = re.compile(r"\b(this|that|it)( one)?\b")
_PRONOUN = re.compile(r"\b(this|that|it|this one|that one|the one)\b(?! (is|are) (a|an|the)\b)")
_REF = r"(?:it|that|this|that one|this one|the \w+(?: one)?|#\d+|number \w+)"  # how a question points at an item
# questions about one item, by aspect (checked in this order)
_ASPECTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("people", re.compile(
        r"\bwho(?:'s| is| are| was| were| else)?\b.*\b(in|stars?|starring|direct\w*|wr[io]te\w*|made|makes?|play\w*"
        r"|act\w*|behind|host\w*|present\w*|narrat\w*|sings?|sang|perform\w*|author\w*|creat\w*|produc\w*|compos\w*)\b"
        r"|\b(cast|actors?|actresses|crew|directors?|writers?|authors?|hosts?|people) (of|in|for|behind|on)\b")),
    ("when", re.compile(
        r"\b(when|what year|which year|which decade|how old|how recent|how new)\b"
        r"|\b(is|was|are|were)\b.{1,30}?\b(from|(made|released|out|published|written|recorded|aired|produced|shot) in"
        r"|older|newer|recent)\b"
        rf"|\b(is|was|are|were) ({_REF}|they|those)( really| actually)?"
        r" (in|old|new)\b")),
    ("facts", re.compile(
        rf"\bwhat(?:'s| is| was) {_REF} about\b"
        rf"|^(?:and |so )?who(?:'s| is| was) {_REF}\s*\??$"
        r"|\btell me (?:more |a bit |something )?about\b|\bmore (?:info|information|details) (?:on|about)\b"
        rf"|\bwhat (?:kind|sort|type) of\b|\bwhat (?:genres?|categor\w+)\b|\bdescribe {_REF}\b"
        rf"|\bwhat(?:'s| is) {_REF}\s*\??$"
        r"|\b(?:story|plot|premise|synopsis|summary|gist) of\b"
        r"|\bwhat (?:is|are) (?:it|that|this) (?:like|about)\b")),
    ("why", re.compile(
        r"\bwhy\b|\bwhat makes\b|\bexplain\b|\bjustify\b"
        r"|\b(?:would|will|do|does|might|could) (?:i|we|they|he|she)\b.*\b(?:like|love|enjoy)\b"
        r"|\b(?:i'd|i would) (?:like|love|enjoy)\b|\bany good\b|\bworth (?:it|\w+ing)\b"
        r"|\bhow (?:does|would|is|will) .*\b(?:fit|suit|match)\w*\b"
        r"|\bwhat do (?:i|they|you) (?:see|get) in\b|\bwhy not\b")),
)
_LIKE_VERB = re.compile(r"\b(would|will|should|do|does|did|might|could|can|i|i'd|you|they|we|he|she)\s+(really\s+)?"
                        r"(like|love|enjoy)\b")
_MORE = re.compile(r"\b(more|others?|another|different (ones|\w+s)|something else|anything else|else|new ones)\b")
_SHOW_ME = re.compile(r"^\s*(please\s+)?(show|give|get|find)\s+me\b")
_ELLIPTIC = re.compile(r"^\s*(and |so |ok |okay )?((what|how) about )?(the \w+( one)?|#\d+|number \w+)\s*\??\s*$")
_WHAT_ABOUT = re.compile(r"^\s*(and |so |ok |okay )?(what|how) about\b")
_NARROW = re.compile(r"\b(those|these|them|the ones|ones|of them|of those|of these|the list|that list|this list)\b"
                     r"|^\s*(and |so )?which (are|ones|were|is)\b")
_NUMBER = r"(\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty)"
_TOP_N = re.compile(rf"\b(?:top|first|best|leading)\s+(?!one\b){_NUMBER}\b|\b(?:just|only|keep) the (?:top|first) (one)\b")
_DECADE = re.compile(r"\b(?:the\s+)?(?:(early|mid|late)[- ])?(?:(1[89]|20)(\d)0'?s|'?(\d)0'?s"
                     r"|(twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties|noughties|two-thousands))\b")
_SPELLED_DECADES = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
                    "seventies": 1970, "eighties": 1980, "nineties": 1990, "noughties": 2000, "two-thousands": 2000}
_BEFORE = re.compile(r"\b(?:before|until|pre)[- ](1[89]\d\d|20\d\d)\b")
_AFTER = re.compile(r"\b(?:after|since|post)[- ](1[89]\d\d|20\d\d)\b")
_FROM_YEAR = re.compile(r"\b(?:from|in|of) (1[89]\d\d|20\d\d)\b")
_FILLER = re.compile(
    r"\b(please|can you|could you|would you|i'?m|i am|i want|i'd like|give me|show me|some|any|me|for|the|a|an|"
    r"find|search( for)?|look(ing)? for|which|what|are|good|list|top|best|only|just|ids?|titles?|"
    r"that are|that is|in|of|from|catalog)\b"
)


@dataclass
class SteeringVocabulary:
    """What the resolver knows about a catalog: type words, titles, genres, defaults."""

    types: list[str]
    default_type: str
    type_words: dict[str, str]  # word (lowercase) -> entity type
    titles: dict[str, str]  # normalized title -> item id
    genres: set[str]
    type_of: Callable[[str], str]
    formats: Mapping[str, Sequence[str]] = field(default_factory=dict)  # task -> declared formats
    read_facts: Callable[[str], StatedFacts] | None = None  # category values and related items stated

    def is_title(self, text: str) -> bool:
        """Whether ``text`` is, word for word, a catalog title (a navigational request)."""
        name = normalize_title(text)
        return name in self.titles or f"the {name}" in self.titles

    def find_title(self, text: str) -> str | None:
        """The catalog item whose title starts ``text`` (longest match first)."""
        words = normalize_title(text).split()
        for end in range(min(len(words), 12), 0, -1):
            candidate = " ".join(words[:end])
            if candidate in self.titles:
                return self.titles[candidate]
            if f"the {candidate}" in self.titles:
                return self.titles[f"the {candidate}"]
        return None


@dataclass
class DialogueState:
    """What the resolver needs from the session: previous request and items, focus, history."""

    last: Request | None = None
    last_turn: int | None = None
    last_items: list[str] = field(default_factory=list)  # answer items of the previous turn, in order
    focus: str | None = None
    history: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # every answer item the session has shown, oldest first
    last_aspect: str | None = None  # the very last answer was a question about an item: its aspect


def resolve(
    text: str,
    vocab: SteeringVocabulary,
    state: DialogueState,
    *,
    task: str | None = None,
    entity_type: str | None = None,
    format: str | None = None,
    k: int | None = None,
    filters: Mapping[str, Any] | None = None,
) -> Request:
    """Read a request. Explicit arguments win over the words; see the module docstring.

    Raises:
        ConfigError: an explicit task, type, format or filter that cannot be honoured.
        UnknownItemError: ``filters["exclude"]`` names an item that does not exist.
    """
    _check_arguments(vocab, task, entity_type, format)
    r = _Reading(" ".join(text.lower().split()), vocab, state)
    r.read_references()
    r.read_question()
    r.read_facts()
    r.choose_task(task)
    r.choose_focus()
    chosen_type = r.choose_type(entity_type)
    chosen_format = r.choose_format(format)
    chosen_k = r.choose_k(k, chosen_format)
    year_min, year_max, exclude = r.choose_filters(filters)
    categories, related = r.choose_facts(filters)
    within = r.choose_within(chosen_format, exclude)
    if within:
        chosen_k = min(chosen_k, len(within)) if r.top_n is not None else len(within)
    return Request(
        text=text, task=r.task, entity_type=chosen_type, format=chosen_format, k=chosen_k,  # type: ignore[arg-type]
        focus=r.focus, query=r.search_query(year_min), year_min=year_min, year_max=year_max,
        categories=categories, related=related, exclude=tuple(exclude),
        refines=state.last_turn if r.base is not None else None,
        aspect=r.aspect if r.task == "about" else None, within=tuple(within),  # type: ignore[arg-type]
        reasons=tuple(r.reasons),
    )


def _check_arguments(vocab: SteeringVocabulary, task: str | None, entity_type: str | None,
                     format: str | None) -> None:
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if entity_type is not None and entity_type not in vocab.types:
        raise ConfigError(f"unknown entity type {entity_type!r}; this bundle knows {', '.join(vocab.types)}")
    if format is not None and format not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown format {format!r}; use one of {', '.join(OUTPUT_FORMATS)}")


@dataclass
class _Reading:
    """One request being read, step by step (each step records why in ``reasons``)."""

    t: str  # the request, lower-cased, whitespace collapsed
    vocab: SteeringVocabulary
    state: DialogueState
    reasons: list[str] = field(default_factory=list)
    referenced: str | None = None  # "the second one", "#3"
    negated: list[str] = field(default_factory=list)  # "not that one"
    title_item: str | None = None  # "like <title>"
    base: Request | None = None  # the request this one refines
    task: str = "next_item"
    focus: str | None = None
    stated: StatedFacts = field(default_factory=StatedFacts)  # category values, related items
    names_a_title: bool = False  # the whole request is a catalog title ("the usual suspects")
    aspect: str | None = None  # a question about one item: why, people, when, facts
    about_item: str | None = None  # the item such a question is about
    more: bool = False  # "5 more", "others": nothing the session showed again
    top_n: int | None = None  # "just the top two"

    def read_references(self) -> None:
        """Items named by position in the previous answer, and items the words exclude."""
        self.referenced = _ordinal_item(self.t, self.state)
        if self.referenced:
            self.reasons.append(f"reference: {self.referenced}")
        if _NEGATE.search(self.t):
            targets = _ordinal_items(self.t, self.state) or ([self.state.focus] if self.state.focus else [])
            for target in targets:  # "remove the 2nd and the 4th"
                self.negated.append(target)
                self.reasons.append(f"exclude: {target}")
            if targets:
                self.referenced = None

    def read_question(self) -> None:
        """A question about one item: its aspect, and the item (a reference, a title, "it"/"that")."""
        t, state = self.t, self.state
        if _PROFILE.search(t):
            return
        aspect = next((name for name, pattern in _ASPECTS if pattern.search(t)), None)
        kind_question = re.match(r"^(?:and |so )?(?:which|what) (\w+) (?:is|was|are|were)\b", t)
        if kind_question and kind_question.group(1) in self.vocab.type_words:
            aspect = "facts"  # "which show is the second one part of?"
        if aspect is None and _ELLIPTIC.match(t) and self.referenced:
            if state.last_aspect:
                aspect = state.last_aspect  # "and the second one?" after "who wrote the first one?"
            elif _WHAT_ABOUT.match(t):
                aspect = "facts"  # "what about #3?" right after a list: tell me about it
        if aspect is None:
            return
        comparison = bool(_LIKE_THIS.search(t)) and not _LIKE_VERB.search(t)  # "more like the second one"
        if comparison or (aspect == "why" and _RECOMMEND.search(t) and self.referenced is None
                          and not _PRONOUN.search(t)):
            return  # "recommend one and explain why", "more like this, why?": a recommendation with reasons
        item = self.referenced or _title_in(t, self.vocab)
        if item is None and (_PRONOUN.search(t) or len(t.split()) <= 3):
            item = (state.last_items[0] if len(state.last_items) == 1 else None) or state.focus
            if aspect == "why" and len(t.split()) <= 3 and state.last_items and not state.last_aspect:
                item = state.last_items[0]  # a bare "why?" asks about the answer just given
        if item is None:
            return
        self.aspect, self.about_item = aspect, item
        self.reasons.append(f"question: {aspect} about {item}")

    def choose_task(self, task: str | None) -> None:
        """The argument, else a task cue, else the refined request's task, else the default."""
        t, state = self.t, self.state
        if task in (None, "about") and self.about_item is not None:
            self.task = "about"
            self.reasons.append("task: argument" if task else "task: words (about)")
            return
        self.more = state.last is not None and bool(_MORE.search(t)) and not _LIKE_THIS.search(t)
        cue_task = _task_cue(_SHOW_ME.sub("", t) if self.more else t, self.vocab)
        follow_up = state.last is not None and task is None and (
            (bool(_NARROW.search(t)) and len(state.last_items) >= 2) or bool(_WHAT_ABOUT.match(t)))
        if cue_task == "search" and follow_up and not self.names_a_title:
            cue_task = None  # "which of them are comedies", "what about writers?": about the last answer
        if cue_task == "like_this" or (cue_task in (None, "search") and _LIKE_TITLE.search(t)):
            match = _LIKE_TITLE.search(t)
            if match and not _THIS.match(match.group(1)):
                self.title_item = self.vocab.find_title(match.group(1))
                if self.title_item:
                    cue_task = "like_this"
                    self.reasons.append(f"title: {self.title_item}")
        if cue_task is None and not _REFINE.search(t) and self.names_a_title:
            cue_task = "search"  # a bare title ("the usual suspects") looks that item up
        wants_why = bool(_EXPLAIN.search(t))
        refining = state.last is not None and cue_task is None and task is None and (
            bool(_REFINE.search(t)) or bool(self.negated) or _has_filter(t) or self.more
            or _type_word(t, self.vocab) is not None or _k_of(t) is not None or bool(_NARROW.search(t)))
        self.base = state.last if refining else None
        if task is not None:
            self.task = task
            self.reasons.append("task: argument")
        elif cue_task is not None:
            self.task = "explain" if cue_task == "next_item" and wants_why else cue_task
            self.reasons.append(f"task: words ({self.task})")
        elif self.base is not None:
            self.task = self.base.task
            self.reasons.append(f"task: refines turn {state.last_turn}")
        else:
            self.task = "explain" if wants_why else "next_item"
            self.reasons.append(f"task: default ({self.task})")

    def choose_focus(self) -> None:
        """The item "this" refers to: a named title, a reference, the refined request's or the session's."""
        base, state = self.base, self.state
        if self.task == "about":
            self.focus = self.about_item or self.referenced or self.title_item or state.focus or (
                state.last_items[0] if state.last_items else None)
            if self.focus is None:
                raise ConfigError("a question about an item needs one: name it, point at one of the last answer"
                                  " ('the second one'), or record one")
            self.aspect = self.aspect or "why"
            return
        focus = self.title_item or self.referenced
        if focus is None and base is not None and base.focus and base.focus not in self.negated:
            focus = base.focus
        if focus is None and self.task == "like_this":
            focus = state.focus if state.focus not in self.negated else (state.history[-1] if state.history else None)
        if self.task == "like_this" and focus is None:
            raise ConfigError("a 'like this' request needs an item: name one, record one, or start the"
                              " session with a history")
        self.focus = focus

    def choose_type(self, entity_type: str | None) -> str:
        """The argument, a type word, the refined request's, the focus item's, or the history's main type."""
        word_type = _type_word(_SHOW_ME.sub("", self.t), self.vocab)
        if entity_type is not None:
            return entity_type
        if word_type is not None and self.task != "about":
            self.reasons.append(f"type: words ({word_type})")
            return word_type
        if self.task == "about" and self.focus is not None:
            return self.vocab.type_of(self.focus)
        if self.base is not None:
            return self.base.entity_type
        if self.task == "like_this" and self.focus is not None:
            return self.vocab.type_of(self.focus)
        return _main_type(self.state.history, self.vocab)

    def choose_format(self, format: str | None) -> str:
        """The argument (one the task declares), else what the words ask for, else the task's first format."""
        declared = list(self.vocab.formats.get(self.task, ())) or (["mixed"] if self.task == "about" else ["ids"])
        if format is not None:
            if format not in declared:
                raise ConfigError(f"task {self.task} answers in {', '.join(declared)}; format {format!r} is not"
                                  " one of them (the prompt files declare each task's formats)")
            return format
        wanted = "ids" if _IDS_ONLY.search(self.t) else "mixed" if _EXPLAIN.search(self.t) else None
        if wanted is None and self.base is not None and self.base.task == self.task:
            wanted = self.base.format
        return wanted if wanted in declared else declared[0]

    def choose_k(self, k: int | None, chosen_format: str) -> int:
        """How many items: the argument, one for a text or mixed answer, else the words or the default."""
        if k is not None:
            chosen = int(k)
        elif chosen_format != "ids":
            chosen = 1
        else:
            singular = "|".join(re.escape(t) for t in self.vocab.types)
            one = re.search(rf"\b(?:a|an|one|a single)\s+(?:good\s+|new\s+)?(?:{singular})\b", self.t)
            chosen = _k_of(self.t) or (1 if one else None) or (self.base.k if self.base is not None else DEFAULT_K)
            top = _TOP_N.search(self.t)
            if top is not None and self.base is not None:
                self.top_n = chosen = _count(top.group(1) or top.group(2))
        if not 1 <= chosen <= 100:
            raise ConfigError(f"k must be between 1 and 100 (got {chosen})")
        return chosen

    def choose_filters(self, filters: Mapping[str, Any] | None) -> tuple[int | None, int | None, list[str]]:
        """Years and excluded items: the words, what the refined request had, then explicit filters."""
        base = self.base
        year_min, year_max = _years(self.t)
        if year_min is not None or year_max is not None:
            self.reasons.append(f"fact: years {year_min or '…'}–{year_max or '…'}")
        if base is not None:
            stated = (year_min, year_max)
            year_min = year_min if year_min is not None else base.year_min
            year_max = year_max if year_max is not None else base.year_max
            if year_min is not None and year_max is not None and year_min > year_max:
                year_min, year_max = stated  # "after 1950" following "before 1900": the new bound replaces the old
        exclude = list(base.exclude) if base is not None else []
        exclude += [i for i in self.negated if i not in exclude]
        if self.more and base is not None:
            shown = [i for i in self.state.shown if i not in exclude]
            exclude += shown
            self.reasons.append(f"more: none of the {len(shown)} items shown")
        given = dict(filters or {})
        unknown = sorted(set(given) - set(FILTERS))
        if unknown:
            raise ConfigError(f"unknown filter(s) {unknown}; filters take {', '.join(FILTERS)}")
        year_min = given.get("year_min", year_min)
        year_max = given.get("year_max", year_max)
        for name, value in (("year_min", year_min), ("year_max", year_max)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"filter {name} must be an integer year (got {value!r})")
        for item in _strings(given, "exclude", "item ids"):
            self.vocab.type_of(item)  # raises UnknownItemError
            if item not in exclude:
                exclude.append(item)
        return year_min, year_max, exclude

    def choose_within(self, chosen_format: str, exclude: Sequence[str]) -> list[str]:
        """A narrowing of the previous list ("just the top two", "drop the third one", "only the ones
        from the 90s"): its items minus the excluded ones, in order (empty when not a narrowing)."""
        base, last = self.base, self.state.last_items
        if base is None or self.more or chosen_format != "ids" or base.format != "ids" or len(last) < 2:
            return []
        about_list = bool(_NARROW.search(self.t)) or bool(re.search(r"\bonly the \w+s\b", self.t))
        if not (self.top_n is not None and self.top_n < len(last)) and not self.negated and not about_list:
            return []
        within = [i for i in last if i not in exclude]
        what = f"top {self.top_n}" if self.top_n is not None else "drop " + ", ".join(self.negated) if self.negated \
            else "keep those with the stated facts"
        self.reasons.append(f"narrows turn {self.state.last_turn}: {what}")
        return within

    def read_facts(self) -> None:
        """The category values and related items the words state (not in a bare title, "star wars")."""
        reader = self.vocab.read_facts
        self.names_a_title = _names_a_title(self.t, self.vocab)
        if reader is None or self.names_a_title:
            return
        self.stated = reader(self.t)
        for phrase in self.stated.phrases:
            self.reasons.append(f"fact: {phrase}")

    def choose_facts(self, filters: Mapping[str, Any] | None) -> tuple[tuple[str, ...], tuple[tuple[str | None, str], ...]]:
        """Category values and related items: the words, what the refined request had, explicit filters."""
        base, given = self.base, dict(filters or {})
        categories = list(base.categories) if base is not None else []
        related = list(base.related) if base is not None else []
        categories += [c for c in self.stated.categories if c not in categories]
        related += [r for r in self.stated.related if r not in related]
        categories += [v for v in _strings(given, "categories", "category values") if v not in categories]
        for item in _strings(given, "related", "item ids"):
            self.vocab.type_of(item)  # raises UnknownItemError
            if (None, item) not in related:
                related.append((None, item))
        return tuple(categories), tuple(related)

    def search_query(self, year_min: int | None) -> str | None:
        """A search's words. With a fact reader, the words no filter took (``None`` when none are
        left: the stated facts are the whole request); without one (the model alone), the request's
        descriptive words, decades written out. A refinement keeps the refined search's words."""
        if self.task != "search":
            return None
        model_alone = self.vocab.read_facts is None
        if self.base is not None and self.base.query:
            query = self.base.query
            if model_alone and _DECADE.search(self.t) and year_min is not None and f"{year_min}s" not in query:
                query = f"{year_min}s {query}"
            return query
        if model_alone:
            return _search_query(self.t, self.vocab) or self.t
        free = self.stated.free_text if self.stated else self.t
        for pattern in (_DECADE, _BEFORE, _AFTER, _FROM_YEAR):
            free = pattern.sub(" ", free)
        return content_words(_search_query(free, self.vocab)) or None


# ----------------------------------------------------------------------------- helpers
_LOOKUP = re.compile(r"^(?:please\s+)?(?:find|search(?: for)?|look(?:ing)? for|show me|get me|open|play)\s+")


def _names_a_title(t: str, vocab: SteeringVocabulary) -> bool:
    """Whether the request is a catalog title, alone or after a lookup verb ("find the hobbit")."""
    text = t.strip(" ?!.")
    return vocab.is_title(text) or vocab.is_title(_LOOKUP.sub("", text))


_BEFORE_TITLE = re.compile(r"\b(?:like|about|is|was|were|are|in|of|does|did|would|enjoy|love|watch|read|directed|"
                           r"wrote|written|made|hosts?|stars?|presents?|narrates?|created?)\s+")


def _title_in(t: str, vocab: SteeringVocabulary) -> str | None:
    """A catalog title the question names after one of its verbs or prepositions ("why would I like
    toy story?", "who is in heat?")."""
    for match in _BEFORE_TITLE.finditer(t):
        rest = t[match.end():].strip(" ?!.")
        if _PRONOUN.match(rest) or rest.split()[:1] in (["them"], ["those"], ["these"], ["one"]):
            continue  # "it", "that one": a reference, not the book called "It"
        found = vocab.find_title(rest)
        if found is not None:
            return found
    return None


def _task_cue(t: str, vocab: SteeringVocabulary) -> str | None:
    if _PROFILE.search(t):
        return "profile"
    if _LIKE_THIS.search(t):
        return "like_this"
    if _SEARCH.search(t) or _genre_words(t, vocab):
        return "search"
    if _RECOMMEND.search(t):
        return "next_item"
    return None


def _genre_words(t: str, vocab: SteeringVocabulary) -> list[str]:
    words = set(re.findall(r"[a-z][a-z\-']+", t))
    return [g for g in vocab.genres if g in words or (" " in g and g in t)]


def _type_word(t: str, vocab: SteeringVocabulary) -> str | None:
    best: tuple[int, str] | None = None
    for word, etype in vocab.type_words.items():
        match = re.search(rf"\b{re.escape(word)}\b", t)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), etype)
    return best[1] if best else None


def _main_type(history: Sequence[str], vocab: SteeringVocabulary) -> str:
    counts: dict[str, int] = {}
    for item in history:
        try:
            etype = vocab.type_of(item)
        except UnknownItemError:
            continue
        counts[etype] = counts.get(etype, 0) + 1
    return max(counts, key=lambda e: (counts[e], e == vocab.default_type)) if counts else vocab.default_type


def _ordinal_item(t: str, state: DialogueState) -> str | None:
    found = _ordinal_items(t, state)
    return found[0] if found else None


def _ordinal_items(t: str, state: DialogueState) -> list[str]:
    """Every item of the previous answer the words name by position, in the order named."""
    out: list[str] = []
    if not state.last_items:
        return out
    for match in _ORDINAL.finditer(t):
        word, hash_n, number_n = match.group(1), match.group(2), match.group(3)
        if word:
            index = ORDINALS.get(word) or (int(word[:-2]) if word[:-2].isdigit() else None)
        else:
            index = int(hash_n) if hash_n else _count(number_n)
        if index is None:
            continue
        if index == -1:
            out.append(state.last_items[-1])
        elif 1 <= index <= len(state.last_items):
            out.append(state.last_items[index - 1])
    return list(dict.fromkeys(out))


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


def _k_of(t: str) -> int | None:
    match = re.search(rf"\b(?:top|best|first|give me|show me|list|only|just|another)\s+(?:the\s+)?(?:top\s+)?{_NUMBER}\b", t)
    if match:
        return _count(match.group(1))
    match = re.search(rf"\b{_NUMBER}\s+(?:more|others?)\b", t)
    if match:
        return _count(match.group(1))
    match = re.search(r"\b(a couple|a few)(?: of)? (?:more|others?)\b", t)
    if match:
        return 2 if match.group(1) == "a couple" else 3
    match = re.search(r"\b(\d{1,3})\s+(?!\d)(?:more\s+|other\s+|new\s+)?[a-z]+s\b", t)
    if match and not re.match(r"\d0s\b", t[match.start():]):
        return int(match.group(1))
    for word, n in sorted(NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])):
        if n > 1 and re.search(rf"\b{word}\s+(?:more\s+|other\s+)?[a-z]+s\b", t):
            return n
    return None


def _has_filter(t: str) -> bool:
    return any(p.search(t) for p in (_DECADE, _BEFORE, _AFTER, _FROM_YEAR))


def _years(t: str) -> tuple[int | None, int | None]:
    decades = list(_DECADE.finditer(t))
    if len(decades) >= 2 and re.search(r"\b(or|and|to|through|till|until)\b", t[decades[0].end():decades[-1].start()]):
        starts = sorted(_decade_start(m) for m in decades)  # "the 50s or 60s", "from the 70s to the 90s"
        return starts[0], starts[-1] + 9
    match = decades[0] if decades else None
    if match:
        start = _decade_start(match)
        part = match.group(1)
        if part == "early":
            return start, start + 3
        if part == "mid":
            return start + 3, start + 6
        if part == "late":
            return start + 6, start + 9
        return start, start + 9
    low = _AFTER.search(t)
    high = _BEFORE.search(t)
    if low or high:
        return (int(low.group(1)) + 1 if low else None), (int(high.group(1)) - 1 if high else None)
    single = _FROM_YEAR.search(t)
    if single:
        return int(single.group(1)), int(single.group(1))
    return None, None


def _decade_start(match: re.Match[str]) -> int:
    """The first year of a decade written as ``1990s``, ``90s``, ``'90s`` or ``nineties``."""
    if match.group(2):
        return int(f"{match.group(2)}{match.group(3)}0")
    if match.group(4):
        digit = int(match.group(4))
        return 2000 + digit * 10 if digit <= 2 else 1900 + digit * 10
    return _SPELLED_DECADES[match.group(5)]


def _search_query(t: str, vocab: SteeringVocabulary) -> str:
    """The descriptive words of a search request, decades written out (``90s`` -> ``1990s``)."""
    text = _DECADE.sub(lambda m: f" {_decade_start(m)}s ", t)
    for word in sorted(vocab.type_words, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(word)}\b", " ", text)
    text = re.sub(r"\b\d{1,3}\b(?!s)", " ", text)
    text = _FILLER.sub(" ", text)
    text = re.sub(r"[^\w\s'&-]", " ", text)
    return " ".join(text.split())


def _strings(filters: Mapping[str, Any], name: str, what: str) -> list[str]:
    """``filters[name]`` as a list of strings (none when absent). Raises :class:`ConfigError` for
    any other shape (a bare string, a number, nested lists or objects)."""
    values = filters.get(name)
    if values is None:
        return []
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"filter {name} must be a list of {what} (strings), got {values!r}")
    return list(values)
