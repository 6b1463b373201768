"""Training room: stage 2 (alignment) and stage 3 (instruction) runners on accelerate + peft.

Uses catalog, sids, vocab, prompts and tasks; owns no decoding logic (probes call the decoder).

Example:
    >>> from neo_sdk.training import TrainSettings, train
    >>> metrics = train("demo/catalog.db", "demo/bundle", TrainSettings(max_minutes=15))
"""

from neo_sdk.encoding import Encoded, ExampleEncoder
from neo_sdk.training._format import Batch, collate
from neo_sdk.training._loop import LoopConfig, LoopResult, plot_losses, train_loop
from neo_sdk.training._pipeline import TrainSettings, train
from neo_sdk.training.alignment import AlignConfig, AlignResult, align
from neo_sdk.training.instruction import InstructConfig, instruct

__all__ = [
    "AlignConfig",
    "AlignResult",
    "Batch",
    "Encoded",
    "ExampleEncoder",
    "InstructConfig",
    "LoopConfig",
    "LoopResult",
    "TrainSettings",
    "align",
    "collate",
    "instruct",
    "plot_losses",
    "train",
    "train_loop",
]
