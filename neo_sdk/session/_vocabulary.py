"""What the steering resolver knows about a loaded bundle's catalog (built once at load)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neo_sdk.retrieval import FactReader, normalize_title
from neo_sdk.session._steering import SteeringVocabulary

if TYPE_CHECKING:
    from neo_sdk.session._neo import Neo


def steering_vocabulary(neo: Neo) -> SteeringVocabulary:
    """The resolver's view of a loaded bundle: type words (names, plurals, synonyms, role words of
    the catalog's relations), the main interacted type, titles (the most popular wins) and genres."""
    types = list(neo.trie.types)
    positions = neo.trie.position_of()
    words: dict[str, str] = {}
    for etype in types:
        words[etype.lower()] = etype
        words[neo.prompts.plural(etype).lower()] = etype
    for word, etype in neo.prompts.words.get("synonyms", {}).items():
        if etype in types:
            words[word.lower()] = etype
    for relation, etype in neo.catalog.relation_target_types():
        role = neo.prompts.word("roles", relation, "")
        if role and etype in types:
            words.setdefault(role.lower(), etype)
            words.setdefault(neo.prompts.plural(role).lower(), etype)
    interacted = neo.catalog.interacted_types()
    default_type = max((t for t in types), key=lambda t: (interacted.get(t, 0), -types.index(t)))
    titles: dict[str, str] = {}
    for item_id in sorted(positions, key=lambda i: neo.facts.popularity.get(i, 0.0)):
        titles[normalize_title(neo.facts.title(item_id))] = item_id  # most popular wins
    genres = {g.lower() for i in positions for g in neo.facts.genres(i) if len(g) > 2}
    formats = {task: neo.prompts.formats(task) for task in neo.prompts.tasks}
    return SteeringVocabulary(
        types=types, default_type=default_type, type_words=words, titles=titles, genres=genres,
        type_of=neo.type_of, formats=formats, read_facts=FactReader(neo.facts).read if neo.retrieval else None,
    )
