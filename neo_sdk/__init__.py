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
    APIConnectionError,
    APIError,
    AuthenticationError,
    BundleError,
    CatalogError,
    CatalogImportError,
    ConfigError,
    DecodingError,
    ImportProblem,
    MissingAssetError,
    ModelLoadError,
    NeoError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
    SessionError,
    SIDError,
    UnknownItemError,
    VocabError,
)

__version__ = "0.1.0"

# Heavy names (numpy/faiss/torch behind them) load on first use: `import neo_sdk` stays fast.
_LAZY = {
    "SIDConfig": "neo_sdk.sids",
    "SIDTable": "neo_sdk.sids",
    "assign_new": "neo_sdk.sids",
    "build_sids": "neo_sdk.sids",
    "sid_report": "neo_sdk.sids",
    "SIDVocab": "neo_sdk.vocab",
    "PromptSet": "neo_sdk.prompts",
    "load_prompts": "neo_sdk.prompts",
    "SIDTrie": "neo_sdk.decoding",
    "TrieFilter": "neo_sdk.decoding",
    "beam_search_items": "neo_sdk.decoding",
    "load_base_model": "neo_sdk.model",
    "TrainSettings": "neo_sdk.training",
    "train": "neo_sdk.training",
    "load_bundle": "neo_sdk.bundle",
    "Neo": "neo_sdk.session",
    "Session": "neo_sdk.session",
    "SessionStore": "neo_sdk.session",
    "Answer": "neo_sdk.session",
    "ItemRef": "neo_sdk.session",
    "Request": "neo_sdk.session",
    "ChatNeo": "neo_sdk.integrations",
    "NeoClient": "neo_sdk.client",
    "AsyncNeoClient": "neo_sdk.client",
    "PostgresSessionStore": "neo_sdk.session",
    "ServerConfig": "neo_sdk.server",
    "create_app": "neo_sdk.server",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neo_sdk' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "DATASETS",
    "APIConnectionError",
    "APIError",
    "Answer",
    "AsyncNeoClient",
    "AuthenticationError",
    "BundleError",
    "Catalog",
    "CatalogError",
    "CatalogImportError",
    "ChatNeo",
    "ConfigError",
    "DecodingError",
    "EntityType",
    "ImportProblem",
    "ImportReport",
    "Interaction",
    "Item",
    "ItemRef",
    "MissingAssetError",
    "ModelLoadError",
    "Neo",
    "NeoClient",
    "NeoError",
    "NotFoundError",
    "PostgresSessionStore",
    "PromptSet",
    "RateLimitError",
    "Relation",
    "Request",
    "RequestTimeoutError",
    "SIDConfig",
    "SIDError",
    "SIDTable",
    "SIDTrie",
    "SIDVocab",
    "ServerConfig",
    "ServiceUnavailableError",
    "Session",
    "SessionError",
    "SessionStore",
    "Split",
    "TrainSettings",
    "TrieFilter",
    "UnknownItemError",
    "VocabError",
    "__version__",
    "assign_new",
    "beam_search_items",
    "build_sids",
    "create_app",
    "import_dataframe",
    "import_file",
    "leave_one_out",
    "load_base_model",
    "load_bundle",
    "load_dataset",
    "load_prompts",
    "parse_timestamp",
    "sid_report",
    "temporal_split",
    "train",
]
