"""Task room: stage 2 and stage 3 examples and the teachers that write their text labels.

Every phrasing comes from the prompt templates (:mod:`neo_sdk.prompts`); every fact from the
catalog; every interaction statistic from the training histories of a split. Must not run the
model.

Example:
    >>> prompts = load_prompts()
    >>> align = build_alignment_examples(catalog, prompts, seed=0)
    >>> instruct = build_instruction_examples(catalog, leave_one_out(catalog), prompts, seed=0)
"""

from neo_sdk.tasks._alignment import (
    STAGE2_TASKS,
    AlignmentConfig,
    build_alignment_examples,
    item_queries,
)
from neo_sdk.tasks._example import ITEM_MARKER, Example, item_marker, mentioned_items
from neo_sdk.tasks._facts import CatalogFacts, format_history
from neo_sdk.tasks._instruction import STAGE3_TASKS, InstructionConfig, build_instruction_examples
from neo_sdk.tasks._teachers import LangChainTeacher, Teacher, TemplateTeacher

__all__ = [
    "AlignmentConfig",
    "CatalogFacts",
    "Example",
    "ITEM_MARKER",
    "InstructionConfig",
    "LangChainTeacher",
    "STAGE2_TASKS",
    "STAGE3_TASKS",
    "Teacher",
    "TemplateTeacher",
    "build_alignment_examples",
    "build_instruction_examples",
    "format_history",
    "item_marker",
    "item_queries",
    "mentioned_items",
]
