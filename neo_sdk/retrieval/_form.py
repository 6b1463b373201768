"""Form faults of an explanation or a profile: sentences that state true facts but read broken.

A person reading "It is Drama, like 1997." sees a comparison that promised an item and gave a
number, a category name capitalised mid-sentence and a missing article. The claim checker
(:mod:`neo_sdk.retrieval._claims`) finds nothing false there; this module finds the form faults,
read with the catalog's own vocabulary (its category values, its type names and the prompts'
citation cues), so any catalog is checked the same way:

* ``comparison``: a citation cue ("like", "as in", ``words.citation.cues``) not followed by an item;
* ``capital``: a category value capitalised mid-sentence ("a Drama movie");
* ``article``: a category value used as a noun phrase without an article ("It is drama");
* ``agreement``: one item described with a plural type ("It is action, drama and war movies");
* ``a/an``: the wrong indefinite article before a category word ("a action movie");
* ``list``: category values listed without a conjunction ("comedy, drama movies").

The text reads items as markers ``[[item:ID]]`` (what the runtime and the teacher produce).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from neo_sdk.tasks import ITEM_MARKER, CatalogFacts, category_word, cue_pattern, needs_an


@dataclass(frozen=True)
class Fault:
    """One form fault: what kind, the words, and what a writer would change."""

    kind: str
    text: str
    reason: str


class FormChecker:
    """Finds form faults (module docs) in texts about one catalog."""

    def __init__(self, facts: CatalogFacts) -> None:
        self.facts = facts

    @cached_property
    def _values(self) -> list[str]:
        values = {g for item in self.facts.items for g in self.facts.genres(item)}
        return sorted(values, key=lambda v: (-len(v), v))

    @cached_property
    def _category(self) -> str:
        """One category value, any case (longest first)."""
        if not self._values:
            return r"(?!x)x"
        return r"(?<![\w-])(?:" + "|".join(re.escape(v) for v in self._values) + r")(?![\w-])"

    @cached_property
    def _plural_types(self) -> str:
        words = {self.facts.prompts.plural(t) for t in self.facts.by_type}
        return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"

    @cached_property
    def _cues(self) -> re.Pattern[str]:
        return re.compile(f"({cue_pattern(self.facts.citation_cues)})", re.IGNORECASE)

    @cached_property
    def _capitalized(self) -> re.Pattern[str]:
        """Any value as the catalog spells it, where a sentence writes it in lower case (case-sensitive)."""
        lowered = [re.escape(v) for v in self._values if category_word(v) != v]
        return re.compile(r"(?<![\w-])(?:" + "|".join(lowered) + r")(?![\w-])" if lowered else r"(?!x)x")

    @cached_property
    def _patterns(self) -> dict[str, re.Pattern[str]]:
        """The grammar patterns over this catalog's values and type names (compiled once)."""
        cat, plural = self._category, self._plural_types
        run = rf"{cat}(?:(?:\s*,\s*|\s+and\s+|\s+or\s+){cat})*"  # a list of values
        return {name: re.compile(pattern, re.IGNORECASE) for name, pattern in (
            ("article", rf"\b(?:is|was|it's)\s+({run})\b(?!\s*-)"),
            ("agreement", rf"\b(?:a|an|another|one|this|that|is|it's)\s+({run})\s+{plural}\b"),
            ("a/an", rf"\b(a|an)\s+({cat})"),
            ("list", run))}

    def faults(self, text: str) -> list[Fault]:
        """Every form fault of ``text``, in text order."""
        if not text.strip():
            return []
        found = self._comparisons(text)
        plain = ITEM_MARKER.sub(lambda m: "\x00" * len(m.group(0)), text)  # markers hold no words
        found += self._capitals(plain) + self._grammar(plain)
        return sorted(found, key=lambda f: text.find(f.text))

    def _comparisons(self, text: str) -> list[Fault]:
        out = []
        for match in self._cues.finditer(text):
            after = text[match.end():]
            if not after.lstrip().startswith("[[item:"):
                said = f"{match.group(0)} {after.split()[0] if after.split() else ''}".strip()
                out.append(Fault("comparison", said, f"'{match.group(1).split()[-1]}' promises an item but is followed by"
                                 f" {_what(after)}: cite the item it compares with"))
        return out

    def _capitals(self, text: str) -> list[Fault]:
        out = []
        for match in self._capitalized.finditer(text):
            value, before = match.group(0), text[: match.start()].rstrip()
            if not before or before[-1] in ".!?:\x00\"(":
                continue  # a sentence start, or right after a title
            previous = re.search(r"(\w+)\W*$", before)
            if previous and previous.group(1)[:1].isupper() and not _sentence_start(before, previous.start(1)) \
                    and previous.group(1) not in self._values:
                continue  # part of a name ("Jack Black")
            out.append(Fault("capital", value, f"write '{category_word(value)}' in lower case mid-sentence"))
        return out

    def _grammar(self, text: str) -> list[Fault]:
        patterns = self._patterns
        out = []
        for match in patterns["article"].finditer(text):
            out.append(Fault("article", match.group(0), "a category is a noun phrase here: add an article and"
                             " the type ('a drama movie')"))
        for match in patterns["agreement"].finditer(text):
            out.append(Fault("agreement", match.group(0), "one item, plural type: use the singular"))
        for match in patterns["a/an"].finditer(text):
            article, word = match.group(1).lower(), match.group(2)
            if (article == "an") != needs_an(word):
                out.append(Fault("a/an", match.group(0), f"write '{'an' if needs_an(word) else 'a'} {word}'"))
        for match in patterns["list"].finditer(text):
            words = match.group(0)
            if "," in words and not re.search(r"\s(and|or)\s", words, re.IGNORECASE):
                out.append(Fault("list", words, "join the last two values with 'and'"))
        return out


def _sentence_start(text: str, index: int) -> bool:
    before = text[:index].rstrip()
    return not before or before[-1] in ".!?"


def _what(after: str) -> str:
    rest = after.strip()
    if not rest or rest[0] in ".!?;":
        return "nothing"
    word = rest.split()[0].strip(".,;!?")
    return "a year" if re.fullmatch(r"\d{4}s?", word) else f"'{word}'"
