"""Reporting evaluation results: Markdown table rows for ``bench/RESULTS.md`` and a PNG bar chart.

Several reports of one method (seeds) are shown as ``mean ± std`` in tables and as a bar with a
one-standard-deviation error bar in charts. Charts are drawn on matplotlib's Agg canvas directly
(no ``pyplot``, no global backend switch), so they work headless and never open a window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neo_sdk.errors import ConfigError
from neo_sdk.evaluation._protocol import EvalReport

Groups = Mapping[str, Sequence[EvalReport]] | Sequence[EvalReport]


# ------------------------------------------------------------------------ tables
_ROW_METRICS = ("HR@5", "HR@10", "HR@30", "NDCG@10")


def results_header(metrics: Sequence[str] = _ROW_METRICS) -> str:
    """The header and separator lines of the Markdown table :func:`results_row` fills."""
    cols = ["method", "stage", "users", *metrics, "invalid", "rank s"]
    return "| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|"


def results_row(
    report: EvalReport | Sequence[EvalReport],
    *,
    method: str | None = None,
    metrics: Sequence[str] = _ROW_METRICS,
) -> str:
    """One Markdown table row for ``bench/RESULTS.md``.

    Given several reports (seeds of one method), cells read ``mean ± std`` (one value when all
    runs agree). ``rank s`` is the ranking loop's wall time (mean per run; fitting excluded).
    """
    reports = [report] if isinstance(report, EvalReport) else list(report)
    if not reports:
        raise ConfigError("results_row needs at least one report")
    first = reports[0]
    label = method or first.method
    if len(reports) > 1:
        label += f" ({len(reports)} seeds)"
    cells = [label, first.stage, str(first.n_users)]
    for name in metrics:
        values = np.array([r.metrics.get(name, float("nan")) for r in reports])
        cells.append(_cell(values))
    cells.append(_cell(np.array([r.invalid_rate for r in reports])))
    cells.append(f"{np.mean([r.seconds for r in reports]):.1f}")
    return "| " + " | ".join(cells) + " |"


def results_table(groups: Mapping[str, Sequence[EvalReport]] | Sequence[EvalReport]) -> str:
    """A whole Markdown table: one row per report, or per group of seed runs."""
    lines = [results_header()]
    if isinstance(groups, Mapping):
        lines += [results_row(reports, method=name) for name, reports in groups.items()]
    else:
        lines += [results_row(r) for r in groups]
    return "\n".join(lines)


def _cell(values: np.ndarray) -> str:
    if len(values) == 1 or np.all(values == values[0]):
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


# ------------------------------------------------------------------------ charts

def save_metrics_png(
    reports: Groups,
    path: str | Path,
    *,
    metrics: Sequence[str] = ("HR@10", "NDCG@10"),
    title: str | None = None,
) -> Path:
    """Write a grouped bar chart: one group per method, one bar per metric.

    Args:
        reports: ``{method: [report, ...]}`` (several reports = seeds: the bar is the mean, the
            error bar one standard deviation), or a flat list of reports (one bar group each,
            labelled ``method (stage)``).
        path: the PNG to write; parent folders are created.
        metrics: metric names present in the reports.
        title: chart title; default names the stage(s) and user counts.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = _groups(reports)
    if not groups:
        raise ConfigError("save_metrics_png needs at least one report")
    labels = list(groups)
    means = np.array([[np.mean([r.metrics[m] for r in groups[g]]) for m in metrics] for g in labels])
    stds = np.array([
        [np.std([r.metrics[m] for r in groups[g]], ddof=1) if len(groups[g]) > 1 else np.nan
         for m in metrics]
        for g in labels
    ])  # (n_methods, n_metrics); NaN = single run, no error bar

    fig = Figure(figsize=(max(6.0, 1.3 * len(labels) + 2), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(metrics)
    x = np.arange(len(labels))
    for j, metric in enumerate(metrics):
        bars = ax.bar(x + (j - (len(metrics) - 1) / 2) * width, means[:, j], width,
                      yerr=stds[:, j], capsize=3, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, [_wrap(label) for label in labels], fontsize=8)
    ax.set_ylabel("score")
    ax.set_ylim(0, max(float(np.nanmax(means + np.nan_to_num(stds))) * 1.2, 0.01))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or _default_title(groups), fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _groups(reports: Groups) -> dict[str, list[EvalReport]]:
    if isinstance(reports, Mapping):
        return {name: list(rs) for name, rs in reports.items() if rs}
    return {f"{r.method} ({r.stage})": [r] for r in reports}


def _default_title(groups: Mapping[str, Sequence[EvalReport]]) -> str:
    stages = sorted({r.stage for rs in groups.values() for r in rs})
    users = sorted({r.n_users for rs in groups.values() for r in rs})
    return f"{', '.join(stages)} - {', '.join(map(str, users))} users, full ranking"


def _wrap(label: str, width: int = 14) -> str:
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
