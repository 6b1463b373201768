"""Diagnostics of a SID table: codebook use, collisions and semantic coherence of prefixes.

Per type and per level ``m`` (prefix length ``m``, ``1..M``):

* ``utilisation``: share of the ``K`` codes used at level m; ``entropy_bits`` and ``perplexity``
  (``2^entropy``) of the code usage (perplexity ``K`` = perfectly uniform).
* ``unique_prefixes``, ``largest_bucket``, ``collision_rate``: over prefixes of length m; the
  collision rate is the share of items whose prefix some other item shares. At ``m = M`` this is the
  collision rate *before disambiguation*.
* ``coherence``: mean cosine similarity over all pairs of items sharing a length-m prefix.
  ``random_coherence`` is the same figure expected for a random assignment with the same bucket sizes
  (exactly the mean similarity over all pairs of items of the type), and ``coherence_ratio`` their
  ratio: above 1 means prefixes group similar items. ``None`` when no two items share a prefix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neo_sdk.errors import SIDError
from neo_sdk.sids._embed import Embedder, embed_texts, resolve_embedder
from neo_sdk.sids._kmeans import prefix_groups
from neo_sdk.sids._table import SIDTable, TypeSIDs, load_quantizers

if TYPE_CHECKING:
    from neo_sdk.catalog import Catalog

REPORT_VERSION = 1


def _pair_mean(x: np.ndarray, groups: np.ndarray) -> float | None:
    """Mean cosine over pairs within groups; x rows are unit vectors. Shape: (N, D), (N,)."""
    g = int(groups.max()) + 1
    sums = np.zeros((g, x.shape[1]), dtype=np.float64)
    np.add.at(sums, groups, x)
    sizes = np.bincount(groups, minlength=g).astype(np.float64)
    pairs = (sizes * (sizes - 1) / 2).sum()
    if pairs == 0:
        return None
    within = ((sums * sums).sum(1) - sizes).sum() / 2  # sum over pairs of x_i . x_j (|x_i| = 1)
    return float(within / pairs)


def type_report(t: TypeSIDs, x: np.ndarray | None, *, balanced: bool | None = None) -> dict[str, Any]:
    """Diagnostics of one type.

    Args:
        t: the type's SIDs.
        x: embeddings aligned with ``t.item_ids`` (Shape: (N, D)); ``None`` skips coherence.
        balanced: assignment mode recorded at build time, echoed in the report.
    """
    n, levels, k = len(t), t.levels, t.codes_per_level
    unit = None
    overall = None
    if x is not None and n > 1:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        overall = _pair_mean(unit, np.zeros(n, dtype=np.int64))
    per_level = []
    for m in range(1, levels + 1):
        counts = np.bincount(t.codes[:, m - 1], minlength=k) if n else np.zeros(k, dtype=np.int64)
        p = counts[counts > 0] / max(n, 1)
        entropy = float(-(p * np.log2(p)).sum()) if n else 0.0
        grp = prefix_groups(t.codes[:, :m]) if n else np.zeros(0, dtype=np.int64)
        sizes = np.bincount(grp) if n else np.zeros(0, dtype=np.int64)
        coherence = _pair_mean(unit, grp) if unit is not None else None
        ratio = coherence / overall if coherence is not None and overall not in (None, 0.0) else None
        per_level.append({
            "level": m,
            "used_codes": int((counts > 0).sum()),
            "utilisation": round(float((counts > 0).sum() / k), 4),
            "entropy_bits": round(entropy, 4),
            "perplexity": round(float(2**entropy), 2),
            "unique_prefixes": int(sizes.size),
            "largest_bucket": int(sizes.max()) if n else 0,
            "collision_rate": round(float(sizes[sizes > 1].sum() / n), 4) if n else 0.0,
            "coherence": None if coherence is None else round(coherence, 4),
            "random_coherence": None if overall is None else round(overall, 4),
            "coherence_ratio": None if ratio is None else round(ratio, 3),
            "code_counts": counts.tolist(),
        })
    last = per_level[-1]
    return {
        "items": n,
        "active": int(t.active.sum()),
        "levels": levels,
        "codes": k,
        "disambiguation": t.disambiguation,
        "assignment": None if balanced is None else ("balanced" if balanced else "plain"),
        "sid_length": levels + 1,
        "unique_tuples": last["unique_prefixes"],
        "unique_share": round(last["unique_prefixes"] / n, 4) if n else 0.0,
        "collision_rate": last["collision_rate"],
        "largest_bucket": last["largest_bucket"],
        "max_disambiguation_code": int(t.codes[:, -1].max()) if n else 0,
        "all_unique": len({tuple(r) for r in t.codes.tolist()}) == n,
        "per_level": per_level,
    }


def sid_report(
    catalog: Catalog, *, embedder: Embedder | str | Path | None = None, coherence: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Diagnostics of a catalog's SID table (see module docs for every field).

    Args:
        catalog: a catalog with SIDs.
        embedder: override the embedder recorded at build time (for coherence).
        coherence: compute prefix coherence (embeds item texts; cached, so usually fast).
        progress: show an embedding progress bar.

    Returns:
        ``{"version", "build_id", "content_hash", "types": {type: {...}}}``; JSON-serialisable.
    """
    from neo_sdk.sids._assign import item_texts

    table = SIDTable.load(catalog)
    records = load_quantizers(catalog)
    declared = catalog.entity_types()
    types: dict[str, Any] = {}
    for name in table.entity_types:
        t = table.by_type(name)
        rec = records[name]
        x = None
        if coherence and len(t):
            emb = resolve_embedder(embedder if embedder is not None else rec.embedder_path)
            items = catalog.get_many(t.item_ids.tolist())
            x = embed_texts(emb, item_texts(items, declared[name].text_fields), progress=progress)
            if x.shape[1] != rec.content_dim:
                raise SIDError(f"embedder dimension {x.shape[1]} != the quantizer's text dimension {rec.content_dim}")
        types[name] = type_report(t, x, balanced=rec.balanced) | {
            "embedder": rec.info.get("embedder"), "collaborative": rec.info.get("collaborative")}
    return {"version": REPORT_VERSION, "build_id": table.build_id, "content_hash": table.content_hash, "types": types}


def save_usage_png(report: dict[str, Any], path: str | Path) -> Path:
    """Plot per-level code usage (codes sorted by count, one panel per type) to a PNG.

    Drawn on matplotlib's Agg canvas directly: no pyplot, so the caller's backend (a notebook's
    inline one, say) and figure list are left as they were.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["types"])
    if not names:
        raise SIDError("the report has no entity types to plot")
    fig = Figure(figsize=(5.5 * len(names), 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        info = report["types"][name]
        for lv in info["per_level"]:
            counts = sorted(lv["code_counts"], reverse=True)
            ax.plot(range(1, len(counts) + 1), counts, marker=".", markersize=3,
                    label=f"level {lv['level']} (perplexity {lv['perplexity']:.0f}/{info['codes']})")
        ax.axhline(info["items"] / info["codes"], color="grey", linestyle=":", linewidth=1, label="uniform")
        ax.set_title(f"{name}: {info['items']} items, {info['unique_tuples']} unique tuples, "
                     f"max bucket {info['largest_bucket']}", fontsize=9)
        ax.set_xlabel("code rank")
        ax.set_ylabel("items")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable lines for the CLI."""
    lines = []
    for name, info in report["types"].items():
        l1 = info["per_level"][0]
        ratio = l1["coherence_ratio"]
        lines.append(
            f"{name}: {info['items']} items, M={info['levels']} K={info['codes']} ({info['assignment']}), "
            f"{info['unique_tuples']} unique tuples ({info['unique_share']:.1%}), collision rate "
            f"{info['collision_rate']:.1%} before disambiguation, largest bucket {info['largest_bucket']}, "
            f"level-1 coherence {l1['coherence']} vs random {l1['random_coherence']}"
            + (f" (x{ratio})" if ratio is not None and not math.isnan(ratio) else "")
        )
        for lv in info["per_level"]:
            lines.append(
                f"  level {lv['level']}: {lv['used_codes']}/{info['codes']} codes used, perplexity"
                f" {lv['perplexity']}, {lv['unique_prefixes']} prefixes, largest {lv['largest_bucket']},"
                f" coherence ratio {lv['coherence_ratio']}"
            )
    return lines
