"""How catalog facts read inside an English sentence: category values as lower-case words, the
article before them, and the cue phrases after which a sentence names an item.

One definition, used by the teacher that writes training labels, the grounds line the model reads,
the decoding rule that makes a comparison cite an item, and the checker that refuses a sentence
where one of them is broken ("It is Drama, like 1997.").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CITATION_CUES: tuple[str, ...] = ("like", "as in", "if you liked", "in the spirit of", "shares … with")
"""Phrases after which an explanation names an item ("like Alien (1979)"): every ``{items}`` slot
of the teacher's patterns follows one, so the model learns the cue and the item together; the
runtime's decoding opens an item span after a cue, and the checker refuses a cue followed by
anything else (a year, a genre). ``…`` stands for any words of the same clause ("shares John Hurt
with"). A prompts file may replace them (``words.citation.cues``, separated by ``|``)."""


def cue_pattern(cues: Sequence[str]) -> str:
    """A regular expression (no flags) matching any of ``cues`` as whole words, ``…`` as any words
    of the same clause, longest cue first."""
    def one(cue: str) -> str:
        parts = [r"\s+".join(map(re.escape, part.split())) for part in cue.split("…")]
        return r"\b[^.;!?]*?\b".join(parts)
    return r"(?<![\w'])(?:" + "|".join(one(c) for c in sorted(cues, key=len, reverse=True)) + r")(?![\w'])"

_ACRONYM = re.compile(r"^[A-Z0-9&.\-]{2,}$")
_PLAIN_WORD = re.compile(r"^[A-Z][a-z'\u2019]*$")  # "Drama", "Children's"; not "McQueen", "iOS"
_AN_EXCEPTIONS = ("one", "uni", "use", "usu", "eu", "ur")  # "a one-off", "a unique", "a usual"
_SILENT_H = ("hour", "honest", "honou", "heir")


def category_word(value: str) -> str:
    """A category value as it reads mid-sentence: ``Drama`` -> ``drama``, ``Sci-Fi`` -> ``sci-fi``,
    ``Film-Noir`` -> ``film-noir``; acronyms and names with inner capitals stay (``TV``, ``iOS``)."""
    parts = re.split(r"([\s\-/]+)", value.strip())
    out = []
    for part in parts:
        if _PLAIN_WORD.match(part) and not _ACRONYM.match(part):
            out.append(part.lower())
        else:
            out.append(part)
    return "".join(out)


def needs_an(word: str) -> bool:
    """Whether ``a`` becomes ``an`` before ``word`` (English spelling rules of thumb)."""
    w = word.lower().lstrip("\"'(")
    if not w:
        return False
    if _ACRONYM.match(word.split()[0]) and word[0] in "AEFHILMNORSX":  # "an FBI story", "an MTV show"
        return True
    if w.startswith(_SILENT_H):
        return True
    if w.startswith(_AN_EXCEPTIONS):
        return False
    return w[0] in "aeiou"


def with_article(phrase: str) -> str:
    """``drama movie`` -> ``a drama movie``; ``action movie`` -> ``an action movie``."""
    return f"{'an' if needs_an(phrase) else 'a'} {phrase}"


def capitalized(text: str) -> str:
    """The first letter upper-cased (a sentence start), the rest unchanged."""
    return text[:1].upper() + text[1:]


def join_words(words: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    words = list(words)
    if not words:
        return ""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {conjunction} " + words[-1]
