"""Semantic IDs: embed item text, residual k-means per entity type, unique SIDs, diagnostics.

Data flow: catalog items -> :func:`embed_texts` (cached) -> :func:`train_residual` (one quantizer
per entity type) -> disambiguation -> SID table and quantizers stored in the catalog's SQLite file
(:class:`SIDTable`). :func:`assign_new` places items added later with the saved centroids.

Must not know about the LLM (token naming lives in :mod:`neo_sdk.vocab`).

Example:
    >>> from neo_sdk.sids import build_sids, SIDTable
    >>> result = build_sids(catalog)          # all-MiniLM-L6-v2, default M/K per type, balanced
    >>> table = SIDTable.load(catalog)
    >>> table.item_of("movie", table.sid_of("movie:1").codes)
    'movie:1'
"""

from neo_sdk.sids._assign import (
    BuildResult,
    TypeBuildStats,
    assign_new,
    build_sids,
    disambiguate,
    item_texts,
    tuple_stats,
)
from neo_sdk.sids._embed import (
    DEFAULT_EMBEDDER,
    Embedder,
    EmbeddingCache,
    SentenceTransformerEmbedder,
    default_embedder_path,
    embed_texts,
    resolve_embedder,
)
from neo_sdk.sids._kmeans import (
    ResidualQuantizer,
    SIDConfig,
    default_shape,
    train_residual,
)
from neo_sdk.sids._report import save_usage_png, sid_report, type_report
from neo_sdk.sids._table import (
    SID,
    SID_FORMAT_VERSION,
    QuantizerRecord,
    SIDTable,
    TypeSIDs,
    load_quantizers,
)

__all__ = [
    "DEFAULT_EMBEDDER",
    "SID",
    "SID_FORMAT_VERSION",
    "BuildResult",
    "Embedder",
    "EmbeddingCache",
    "QuantizerRecord",
    "ResidualQuantizer",
    "SIDConfig",
    "SIDTable",
    "SentenceTransformerEmbedder",
    "TypeBuildStats",
    "TypeSIDs",
    "assign_new",
    "build_sids",
    "default_embedder_path",
    "default_shape",
    "disambiguate",
    "embed_texts",
    "item_texts",
    "load_quantizers",
    "resolve_embedder",
    "save_usage_png",
    "sid_report",
    "train_residual",
    "tuple_stats",
    "type_report",
]
