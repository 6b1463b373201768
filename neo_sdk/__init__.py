"""neo-sdk: one language-steerable LLM that recommends, searches, explains and describes users.

Only this module is the public import surface. Torch-heavy names load lazily, so ``import neo_sdk``
stays fast.
"""

from __future__ import annotations

from neo_sdk.catalog import (
    DATASETS,
    Catalog,
    EntityType,
    ImportReport,
    Interaction,
    Item,
    Relation,
    Split,
    import_dataframe,
    import_file,
    leave_one_out,
    load_dataset,
    parse_timestamp,
    temporal_split,
)
from neo_sdk.errors import (
    BundleError,
    CatalogError,
    CatalogImportError,
    ConfigError,
    DecodingError,
    ImportProblem,
    MissingAssetError,
    ModelLoadError,
    NeoError,
    SIDError,
    UnknownItemError,
    VocabError,
)

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "Catalog",
    "CatalogError",
    "CatalogImportError",
    "ConfigError",
    "DATASETS",
    "DecodingError",
    "EntityType",
    "ImportProblem",
    "ImportReport",
    "Interaction",
    "Item",
    "MissingAssetError",
    "ModelLoadError",
    "NeoError",
    "Relation",
    "SIDError",
    "Split",
    "UnknownItemError",
    "VocabError",
    "__version__",
    "import_dataframe",
    "import_file",
    "leave_one_out",
    "load_dataset",
    "parse_timestamp",
    "temporal_split",
]
