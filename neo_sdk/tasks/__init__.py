"""Task room: stage 2 and stage 3 examples and the teachers that write their text labels.

Every phrasing comes from the prompt templates (:mod:`neo_sdk.prompts`); every fact from the
catalog; every interaction statistic from the training histories of a split. Must not run the
model.

Example:
    >>> prompts = load_prompts()
    >>> align = build_alignment_examples(catalog, prompts, seed=0)
    >>> instruct = build_instruction_examples(catalog, leave_one_out(catalog), prompts, seed=0)
"""

from neo_sdk._names import ALIGNMENT_TASKS, TASKS
from neo_sdk.tasks._alignment import (
    AlignmentConfig,
    build_alignment_examples,
    item_queries,
)
from neo_sdk.tasks._chat import CachedChat
from neo_sdk.tasks._example import ITEM_MARKER, Example, item_marker, mentioned_items
from neo_sdk.tasks._facts import CatalogFacts, format_history
from neo_sdk.tasks._grounds import (
    GROUNDS_VERSION,
    GROUNDS_VERSIONS,
    ExplanationGrounds,
    ProfileGrounds,
    explanation_grounds,
    profile_grounds,
)
from neo_sdk.tasks._instruction import (
    MAX_HISTORY,
    InstructionConfig,
    build_instruction_examples,
)
from neo_sdk.tasks._teachers import LabelCheck, LangChainTeacher, Teacher, TemplateTeacher
from neo_sdk.tasks._wording import CITATION_CUES, capitalized, category_word, cue_pattern, needs_an, with_article

__all__ = [
    "ALIGNMENT_TASKS",
    "CITATION_CUES",
    "GROUNDS_VERSION",
    "GROUNDS_VERSIONS",
    "ITEM_MARKER",
    "MAX_HISTORY",
    "TASKS",
    "AlignmentConfig",
    "CachedChat",
    "CatalogFacts",
    "Example",
    "ExplanationGrounds",
    "InstructionConfig",
    "LabelCheck",
    "LangChainTeacher",
    "ProfileGrounds",
    "Teacher",
    "TemplateTeacher",
    "build_alignment_examples",
    "build_instruction_examples",
    "capitalized",
    "category_word",
    "cue_pattern",
    "explanation_grounds",
    "format_history",
    "item_marker",
    "item_queries",
    "mentioned_items",
    "needs_an",
    "profile_grounds",
    "with_article",
]
