"""The names every layer shares, defined once: tasks and output formats.

A leaf module (no imports from the package), so prompts, tasks, decoding, the runtime and the CLI
all read the same lists; the tuples are derived from the ``Literal`` types.
"""

from __future__ import annotations

from typing import Literal, get_args

AlignmentTask = Literal["sid_to_text", "text_to_sid", "sid_to_type"]
"""Stage 2 tasks: ground each Semantic ID in its item's text and type."""

Task = Literal["next_item", "search", "explain", "profile", "like_this", "about"]
"""Stage 3 tasks: what a trained model answers (and what a request can ask for)."""

TaskName = AlignmentTask | Task
OutputFormat = Literal["ids", "text", "mixed"]
"""``ids``: a ranked list of items; ``text``: words only; ``mixed``: an item, then words."""

ALIGNMENT_TASKS: tuple[str, ...] = get_args(AlignmentTask)
TASKS: tuple[str, ...] = get_args(Task)
TASK_NAMES: tuple[str, ...] = ALIGNMENT_TASKS + TASKS
"""Every task a prompt can be written for: stage 2's, then stage 3's."""
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
