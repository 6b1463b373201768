"""Catalog room: the SQLite store, atomic importers, built-in datasets and evaluation splits.

Must not import torch.
"""

from neo_sdk.catalog._datasets import DATASETS, load_dataset
from neo_sdk.catalog._importers import ImportReport, import_dataframe, import_file, parse_timestamp
from neo_sdk.catalog._splits import Split, leave_one_out, temporal_split
from neo_sdk.catalog._store import Catalog, EntityType, Interaction, Item, Relation

__all__ = [
    "DATASETS",
    "Catalog",
    "EntityType",
    "ImportReport",
    "Interaction",
    "Item",
    "Relation",
    "Split",
    "import_dataframe",
    "import_file",
    "leave_one_out",
    "load_dataset",
    "parse_timestamp",
    "temporal_split",
]
