"""The public import surface: one namespace, sorted, light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import neo_sdk

# The public surface, pinned by name (as httpx and langchain-core do): adding, removing or renaming
# a public name is a decision, made here as well as in ``neo_sdk/__init__.py``.
EXPECTED_ALL = [
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


def test_all_is_exactly_the_pinned_public_names() -> None:
    assert neo_sdk.__all__ == EXPECTED_ALL  # the order too: ruff's __all__ sort (constants first)


def test_every_public_name_resolves() -> None:
    for name in EXPECTED_ALL:
        assert getattr(neo_sdk, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'not_public'"):
        neo_sdk.not_public  # noqa: B018 (the lookup is the test)


def test_every_public_name_is_documented() -> None:
    for name in neo_sdk.__all__:
        obj = getattr(neo_sdk, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_share_one_base() -> None:
    for name in neo_sdk.__all__:
        obj = getattr(neo_sdk, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, neo_sdk.NeoError), name


def test_import_does_not_load_torch() -> None:
    code = "import sys, neo_sdk; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
