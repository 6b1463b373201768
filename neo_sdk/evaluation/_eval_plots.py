"""The plots of ``neo eval``'s report: metrics with intervals, ratios, per type, cold start, training loss,
search, explanations and the LLM judge's scores (also drawn by ``bench/search.py`` and ``bench/explanations.py``).

Drawn on matplotlib's Agg canvas directly (no ``pyplot``, no global backend switch), as
:mod:`neo_sdk.evaluation._report` does. Error bars are the bootstrap intervals of the evaluation
(95% by default), never a standard deviation dressed as one.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neo_sdk.evaluation._bootstrap import Interval
from neo_sdk.evaluation._bundle_eval import BundleEvaluation
from neo_sdk.evaluation._search_bench import COLUMNS


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _errors(intervals: Sequence[Interval | None]) -> tuple[np.ndarray, np.ndarray]:
    """Bar heights and asymmetric error bars (2, n) from intervals; missing ends draw no bar."""
    values = np.array([(ci.value if ci and ci.value is not None else np.nan) for ci in intervals], dtype=float)
    low = np.array([(ci.low if ci and ci.low is not None else np.nan) for ci in intervals], dtype=float)
    high = np.array([(ci.high if ci and ci.high is not None else np.nan) for ci in intervals], dtype=float)
    err = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
    return values, np.nan_to_num(err, nan=0.0, posinf=0.0)


def _label(ax: Any, bars: Any, values: np.ndarray, err: np.ndarray, fmt: str) -> None:
    """Write each bar's value just above its error bar (not under it)."""
    tops = np.nan_to_num(values, nan=0.0) + err[1]
    lift = 0.01 * max(float(np.nanmax(tops)) if tops.size else 0.0, 1e-9)
    for bar, value, top in zip(bars, values, tops, strict=True):
        if np.isfinite(value):
            ax.text(bar.get_x() + bar.get_width() / 2, top + lift, fmt % value, ha="center", va="bottom", fontsize=7)


def _short(label: str) -> str:
    return label.replace(" (beam search)", "\n(beam search)").replace(" (seen incl.)", "\n(seen incl.)")


def plot_metrics(evaluation: BundleEvaluation, path: str | Path) -> Path:
    """One row per entity type: HR@K and NDCG@K of every method (left) and the model's ratio to each
    baseline (right), K the headline cut-off, with the bootstrap intervals as error bars."""
    k = evaluation.settings.headline_k
    metrics = (f"HR@{k}", f"NDCG@{k}")
    types = evaluation.types
    fig = _figure(12.0, 4.2 * len(types))
    level = round(evaluation.settings.level * 100)
    for row, t in enumerate(types):
        ax = fig.add_subplot(len(types), 2, 2 * row + 1)
        labels = t.labels
        x = np.arange(len(labels))
        width = 0.38
        for j, metric in enumerate(metrics):
            values, err = _errors([t.means[label].get(metric) for label in labels])
            bars = ax.bar(x + (j - 0.5) * width, values, width, yerr=err, capsize=3, label=metric)
            _label(ax, bars, values, err, "%.3f")
        ax.set_xticks(x, [_short(label) for label in labels], fontsize=8)
        ax.set_ylabel(f"mean over users ({level}% CI)")
        ax.set_title(f"next {t.entity_type}: {t.stage}, {t.n_users} users, full ranking over {t.n_items} items",
                     fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, max(0.01, float(np.nanmax([t.means[lb][m].high or 0 for lb in labels for m in metrics])) * 1.2))

        ax = fig.add_subplot(len(types), 2, 2 * row + 2)
        bases = list(t.ratios)
        x = np.arange(len(bases))
        for j, metric in enumerate(metrics):
            values, err = _errors([t.ratios[b].get(metric) for b in bases])
            bars = ax.bar(x + (j - 0.5) * width, values, width, yerr=err, capsize=3, label=metric)
            _label(ax, bars, values, err, "%.2fx")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(x, [_short(b) for b in bases], fontsize=8)
        ax.set_xlabel("baseline")
        ax.set_ylabel(f"{labels[0].split(' (')[0]} / baseline ({level}% CI)")
        ax.set_title(f"ratio of the model to each baseline (paired bootstrap over users, {k = })", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def plot_per_type(evaluation: BundleEvaluation, path: str | Path) -> Path:
    """HR@K per entity type and method (K the headline cut-off), with intervals."""
    k = evaluation.settings.headline_k
    metric = f"HR@{k}"
    types = evaluation.types
    labels = types[0].labels
    fig = _figure(max(7.0, 2.2 * len(types) + 3), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(types))
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        values, err = _errors([t.means.get(label, {}).get(metric) for t in types])
        bars = ax.bar(x + (j - (len(labels) - 1) / 2) * width, values, width, yerr=err, capsize=2, label=label)
        _label(ax, bars, values, err, "%.3f")
    ax.set_xticks(x, [f"{t.entity_type}\n({t.n_users} users)" for t in types])
    ax.set_xlabel("entity type of the next item")
    ax.set_ylabel(f"{metric} ({round(evaluation.settings.level * 100)}% CI)")
    ax.set_title(f"next item per entity type, {types[0].stage} split, full ranking", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def plot_cold_start(evaluation: BundleEvaluation, path: str | Path) -> Path:
    """HR@K and NDCG@K against the history length shown (cut to the last n items, then all of it)."""
    k = evaluation.settings.headline_k
    types = [t for t in evaluation.types if t.cold_start]
    fig = _figure(11.0, 3.8 * max(1, len(types)))
    for row, t in enumerate(types):
        points = list(t.cold_start)
        ticks = [p if p != "all" else f"all\n(median {t.history.get('median', 0):g})" for p in points]
        for col, metric in enumerate((f"HR@{k}", f"NDCG@{k}")):
            ax = fig.add_subplot(max(1, len(types)), 2, 2 * row + col + 1)
            methods = list(t.cold_start[points[0]])
            for label in methods:
                ax.plot(range(len(points)), [t.cold_start[p][label][metric] for p in points], marker="o", label=label)
            ax.set_xticks(range(len(points)), ticks)
            ax.set_xlabel("history items shown (the most recent ones)")
            ax.set_ylabel(metric)
            ax.set_ylim(bottom=0)
            ax.set_title(f"next {t.entity_type}: short histories, {t.n_users} users", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_loss(evaluation: BundleEvaluation, path: str | Path) -> Path | None:
    """The bundle's training loss plot (copied), else its stage-2 fit losses replotted; ``None`` without either."""
    path = Path(path)
    source = evaluation.training.get("loss_png")
    if source and Path(source).exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return path
    losses = evaluation.training.get("stage2_fit_losses")
    if not losses:
        return None
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    ax.plot(range(len(losses)), losses, label="stage 2 output fit")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("training loss recorded in the bundle", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(evaluation: BundleEvaluation, out: str | Path) -> dict[str, Path]:
    """Every plot that applies, in ``out``: name -> path (``metrics``, ``per_type`` with several types,
    ``cold_start`` when measured, ``loss`` when the bundle has one)."""
    out = Path(out)
    plots = {"metrics": plot_metrics(evaluation, out / "metrics.png")}
    if len(evaluation.types) > 1:
        plots["per_type"] = plot_per_type(evaluation, out / "per_type.png")
    if any(t.cold_start for t in evaluation.types):
        plots["cold_start"] = plot_cold_start(evaluation, out / "cold_start.png")
    loss = plot_loss(evaluation, out / "loss.png")
    if loss is not None:
        plots["loss"] = loss
    return plots



# ------------------------------------------------------------------ search and explanations
def plot_search(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Grouped bars from a :func:`~neo_sdk.evaluation.measure_search` result: one group per measure
    (query family), one bar per method; a measure a method was not asked is left out."""
    k = result["k"]
    rows = list(result["rows"].values())
    fig = _figure(10.0, 4.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(COLUMNS))
    for j, row in enumerate(rows):
        values = [row["metrics"].get(key) for key, *_ in COLUMNS]
        bars = ax.bar(x + (j - (len(rows) - 1) / 2) * width, [v or 0.0 for v in values], width, label=row["method"])
        ax.bar_label(bars, labels=["" if v is None else f"{v:.2f}" for v in values], fontsize=6, padding=1)
    asked = result["queries"]
    ax.set_xticks(x, [label.format(k=k) + ("" if asked.get(family) else "\n(no queries)")
                      for _, family, _, label in COLUMNS], fontsize=8)
    ax.set_xlabel("query family (measure)")
    ax.set_ylabel("score (hit@k or precision@k)")
    ax.set_ylim(0, 1.25)
    ax.set_title(title or f"search ({result['entity_type']}): up to {result['n']} queries per family,"
                 f" seed {result['seed']}", fontsize=10)
    ax.legend(fontsize=8, ncols=min(len(rows), 3), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def plot_explanations(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Bars from a :func:`~neo_sdk.evaluation.measure_explanations` result: the share written by the
    model, of shown claims true and of the model's raw claims true, for mixed answers and profiles."""
    labels = ["explained by\nthe model", "shown claims\ntrue", "raw model\nclaims true"]
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    width = 0.38
    for n, (name, part) in enumerate((("mixed answers", result["mixed"]), ("profiles", result["profiles"]))):
        values = [part.get(key) for key in ("explained_by_model", "shown_claims_true", "raw_claims_true")]
        bars = ax.bar([x + n * width for x in range(3)], [v or 0.0 for v in values], width, label=name)
        ax.bar_label(bars, labels=["n/a" if v is None else f"{v:.2f}" for v in values])  # n/a: no claim to check
    ax.axhline(0.95, color="grey", linestyle=":", label="0.95 (claims goal)")
    ax.set_xticks([x + width / 2 for x in range(3)], labels)
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.3)
    ax.set_title(title or f"explanations and profiles: {result['users']} users", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, ncols=3)
    return _save(fig, Path(path))


def plot_judge(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """The judge's scores from a :func:`~neo_sdk.evaluation.judge_rows` result: for explanations and
    profiles, how many texts got each score 1-5, one bar per criterion (its mean in the legend)."""
    from matplotlib.ticker import MaxNLocator

    from neo_sdk.evaluation._judge import CRITERIA, SCORES

    fig = _figure(11.0, 4.0)
    width = 0.8 / len(CRITERIA)
    for n, name in enumerate(("explanations", "profiles")):
        part = result[name]
        ax = fig.add_subplot(1, 2, n + 1)
        for j, criterion in enumerate(CRITERIA):
            counts = [part["distribution"][criterion][str(v)] for v in SCORES]
            mean = part["mean"][criterion]
            bars = ax.bar([v + (j - (len(CRITERIA) - 1) / 2) * width for v in SCORES], counts, width,
                          label=f"{criterion} (mean {'n/a' if mean is None else f'{mean:.2f}'})")
            ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], fontsize=7)
        ax.set_xticks(SCORES, [str(v) for v in SCORES])
        ax.set_xlabel("score (1 bad, 5 excellent)")
        ax.set_ylabel("texts")
        ax.set_ylim(0, max(1, *(c for d in part["distribution"].values() for c in d.values())) * 1.35)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{name}: {part['rated']} rated of {part['n']}, {part['unparsed']} unparsed", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", ncols=3)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or f"LLM judge: {result['judge']}", fontsize=10)
    return _save(fig, Path(path))


def write_section_plots(sections: Mapping[str, Mapping[str, Any]], out: str | Path) -> dict[str, Path]:
    """The plots of the measured search, explanations and judge sections, in ``out``: name -> path."""
    out, plots = Path(out), {}
    if sections.get("search", {}).get("status") == "measured":
        plots["search"] = plot_search(sections["search"], out / "search.png")
    explanations = sections.get("explanations", {})
    if explanations.get("status") == "measured" and explanations.get("mixed"):
        plots["explanations"] = plot_explanations(explanations, out / "explanations.png")
    if sections.get("judge", {}).get("status") == "measured":
        plots["judge"] = plot_judge(sections["judge"], out / "judge.png")
    return plots
