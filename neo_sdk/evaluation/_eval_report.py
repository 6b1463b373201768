"""``neo eval``'s report: the printed table, the headline rows, ``report.md`` and ``report.json``.

Sections measured beside the next-item harness (search, explanations) join the report through
``sections``: a mapping from a section name to a JSON-able dict. A section dict may carry
``summary`` (a few lines, printed) and ``markdown`` (a block for ``report.md``); everything in it
goes to ``report.json``. :func:`search_section` and :func:`explanations_section` turn the results
of :func:`~neo_sdk.evaluation.measure_search` and :func:`~neo_sdk.evaluation.measure_explanations`
into such dicts, :func:`judge_section` that of :func:`~neo_sdk.evaluation.judge_rows` (``--judge``),
:func:`skipped_section` one that was not measured. A default section that is not
passed reads "not measured" with the script that measures it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neo_sdk.evaluation._bootstrap import Interval
from neo_sdk.evaluation._bundle import BASELINE_LABELS
from neo_sdk.evaluation._bundle_eval import BundleEvaluation, TypeEvaluation
from neo_sdk.evaluation._explain_bench import EXPLANATION_KEYS
from neo_sdk.evaluation._judge import CRITERIA, SCORES
from neo_sdk.evaluation._search_bench import COLUMNS

Sections = Mapping[str, Mapping[str, Any]]

#: The sections a report always has, and where to measure them until a caller passes them.
DEFAULT_SECTIONS: dict[str, dict[str, Any]] = {
    "search": {"status": "not measured", "see": "bench/search.py",
               "summary": "not measured here (see bench/search.py)"},
    "explanations": {"status": "not measured", "see": "bench/explanations.py",
                     "summary": "not measured here (see bench/explanations.py)"},
}
HEADLINE_BASELINES = (BASELINE_LABELS["popularity"], BASELINE_LABELS["sasrec-ce"])


def skipped_section(name: str, flag: str) -> dict[str, Any]:
    """A default section left out on purpose: ``not measured (--flag 0)``."""
    return {**DEFAULT_SECTIONS[name], "summary": f"not measured ({flag} 0)"}


def merged_sections(sections: Sections | None = None) -> dict[str, dict[str, Any]]:
    """The default sections with the caller's replacing them (and any others added)."""
    out = {name: dict(body) for name, body in DEFAULT_SECTIONS.items()}
    for name, body in (sections or {}).items():
        out[name] = dict(body)
    return out


# ------------------------------------------------------------------ text
def headline(evaluation: BundleEvaluation) -> str:
    """The rows that answer "is it better than what I have": the model, popularity and SASRec-CE at
    the headline K, with the model's ratio to each and its interval."""
    k = evaluation.settings.headline_k
    lines = []
    for t in evaluation.types:
        metric, spread = f"HR@{k}", t.spread()
        lines.append(f"next {t.entity_type}: {metric}, {_scope(t)}")
        for label in [t.labels[0], *[b for b in HEADLINE_BASELINES if b in t.labels]]:
            row = f"  {label:<26}{_value(spread[label][metric], len(t.seeds)):>16}"
            if label != t.labels[0]:
                row += f"   model / {label}: {t.ratios[label][metric].format('x')}"
            lines.append(row)
    return "\n".join(lines)


def render_table(evaluation: BundleEvaluation, sections: Sections | None = None) -> str:
    """The whole report as plain text (what ``neo eval`` prints)."""
    cfg = evaluation.settings
    lines = [f"neo eval: {evaluation.bundle} on {evaluation.catalog}", _settings_line(evaluation), ""]
    for t in evaluation.types:
        lines += _type_block(t, evaluation) + [""]
    for etype, why in evaluation.skipped.items():
        lines.append(f"next {etype}: skipped ({why})")
    if evaluation.steer:
        lines.append(f"steerability, constraints off (greedy, {cfg.family} phrasings, real users' histories):")
        lines.append(f"  {'type':<12}{'format':<8}{'task':<12}{'right type':>12}{'right format':>14}")
        for r in evaluation.steer:
            kind = "-" if r.right_type is None else f"{r.right_type}/{r.prompts}"
            lines.append(f"  {r.entity_type or '(none)':<12}{r.output_format:<8}{r.task:<12}{kind:>12}"
                         f"{f'{r.right_format}/{r.prompts}':>14}")
    else:
        lines.append("steerability: not measured (--steer-prompts 0)")
    for name, body in merged_sections(sections).items():
        lines.append(f"{name}: {body.get('summary') or body.get('status') or json.dumps(body)[:200]}")
    lines.append(_training_line(evaluation))
    lines.append(f"measured in {evaluation.seconds / 60:.1f} min")
    return "\n".join(lines)


def _scope(t: TypeEvaluation) -> str:
    seeds = f", {len(t.seeds)} seeds (mean ± std)" if len(t.seeds) > 1 else ""
    return f"{t.stage} split, {t.n_users} users{seeds}, full ranking over {t.n_items} items"


def _settings_line(evaluation: BundleEvaluation) -> str:
    cfg = evaluation.settings
    seeds = ",".join(map(str, cfg.seeds))
    users = "all users" if cfg.sample_size is None else f"{cfg.sample_size} users per type"
    return (f"{cfg.stage} split, {users}, seeds {seeds}, {cfg.family} phrasings; seen items excluded unless"
            f" marked; intervals: {round(cfg.level * 100)}% paired bootstrap over users, {cfg.resamples} resamples")


def _value(mean_std: tuple[float, float], n_seeds: int) -> str:
    mean, std = mean_std
    return f"{mean:.4f}" if n_seeds == 1 else f"{mean:.4f}±{std:.4f}"


def _type_block(t: TypeEvaluation, evaluation: BundleEvaluation) -> list[str]:
    cfg = evaluation.settings
    ks = sorted(set(cfg.ks))
    names = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks]
    width = 10 if len(t.seeds) == 1 else 16
    spread = t.spread()
    lines = [f"next {t.entity_type}: {_scope(t)}",
             f"  {'method':<30}" + "".join(f"{n:>{width}}" for n in names) + f"{'invalid':>9}{'fit s':>8}"]
    for label in t.labels:
        report = t.runs[0][t.labels.index(label)]
        fit = t.fits.get(label, {}).get("seconds")
        cells = "".join(f"{_value(spread[label][n], len(t.seeds)):>{width}}" for n in names)
        lines.append(f"  {label:<26}{cells}{report.invalid_rate:>9.3f}{'-' if fit is None else f'{fit:.1f}':>8}")
    sasrec = t.fits.get(BASELINE_LABELS["sasrec-ce"])
    if sasrec:
        budget = "stopped by its time budget" if sasrec.get("stopped_by_time") else "all epochs"
        lines.append(f"  sasrec-ce trained {sasrec.get('epochs_run')} epochs ({sasrec.get('steps')} steps,"
                     f" {sasrec.get('seconds')} s, {budget}; final loss {sasrec.get('final_loss')})")
    k = cfg.headline_k
    shown = [f"HR@{k}", f"NDCG@{k}"]
    lines.append(f"  model / baseline ({round(cfg.level * 100)}% interval):"
                 + "".join(f"{m:>24}" for m in shown))
    for base, by in t.ratios.items():
        lines.append(f"    / {base:<34}" + "".join(f"{by[m].format('x'):>24}" for m in shown))
    if t.cold_start:
        points = list(t.cold_start)
        heads = [p if p != "all" else f"all (median {t.history.get('median', 0):g})" for p in points]
        lines.append(f"  short histories ({shown[0]} / {shown[1]}; the same users, history cut to the last n items):")
        lines.append(f"    {'history items':<24}" + "".join(f"{h:>20}" for h in heads))
        for label in t.cold_start[points[0]]:
            cells = "".join(f"{t.cold_start[p][label][shown[0]]:.4f} / {t.cold_start[p][label][shown[1]]:.4f}"
                            .rjust(20) for p in points)
            lines.append(f"    {label:<24}{cells}")
    v = t.validity
    lines.append(f"  model validity: {v['ranked']} ids ranked, invalid {v['invalid']} ({v['invalid_rate']:.3f}),"
                 f" wrong type {v['wrong_type']} ({v['wrong_type_rate']:.3f})")
    return lines


def _training_line(evaluation: BundleEvaluation) -> str:
    tr = evaluation.training
    parts = [f"{tr[key]} {word}" for key, word in (("steps", "stage-3 steps"), ("train_seconds", "s of training"),
                                                    ("planned_epochs", "epochs planned")) if tr.get(key) is not None]
    loss = tr.get("loss_png") or "no loss plot in the bundle"
    return f"training: {', '.join(parts) or 'no record in the manifest'}; loss curve: {loss}"


# ------------------------------------------------------------------ files
def report_data(evaluation: BundleEvaluation, sections: Sections | None = None,
                plots: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """``report.json``: the measurements, the headline, the sections and the plot files."""
    k = evaluation.settings.headline_k
    data = evaluation.to_dict()
    data["headline"] = {}
    for t in evaluation.types:
        spread = t.spread()
        row: dict[str, Any] = {"metric": f"HR@{k}", "model": round(spread[t.labels[0]][f"HR@{k}"][0], 6)}
        for base in HEADLINE_BASELINES:
            if base in t.ratios:
                row[base] = round(spread[base][f"HR@{k}"][0], 6)
                row[f"ratio_to_{base}"] = t.ratios[base][f"HR@{k}"].to_dict()
        data["headline"][t.entity_type] = row
    data |= merged_sections(sections)
    data["plots"] = {name: Path(p).name for name, p in (plots or {}).items()}
    return data


def write_report(evaluation: BundleEvaluation, out: str | Path, *, sections: Sections | None = None,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the plots (:func:`write_plots`) into ``out``.

    Args:
        sections: extra or replacing sections (module docstring), e.g. ``{"search": {...}}``.
        plots: draw the PNGs (matplotlib).

    Returns:
        Name -> path of every file written.
    """
    from neo_sdk.evaluation._eval_plots import write_plots, write_section_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {**write_plots(evaluation, out), **write_section_plots(sections or {}, out)} if plots else {}
    data = report_data(evaluation, sections, pngs)
    (out / "report.json").write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    (out / "report.md").write_text(render_markdown(evaluation, sections, pngs))
    return {"report.md": out / "report.md", "report.json": out / "report.json", **pngs}


def render_markdown(evaluation: BundleEvaluation, sections: Sections | None = None,
                    plots: Mapping[str, Path] | None = None) -> str:
    """``report.md``: the headline, one section per entity type, steerability, the other sections, plots."""
    cfg, plots = evaluation.settings, plots or {}
    k = cfg.headline_k
    md = [f"# neo eval: `{evaluation.bundle}`", "",
          f"Catalog `{evaluation.catalog}`. {_settings_line(evaluation)}.", "",
          "## Headline", "", "```", headline(evaluation), "```", ""]
    if "metrics" in plots:
        md += [f"![metrics and ratios]({plots['metrics'].name})", ""]
    for t in evaluation.types:
        md += _type_markdown(t, evaluation)
    if "per_type" in plots:
        md += ["## Per entity type", "", f"![per type]({plots['per_type'].name})", ""]
    if evaluation.skipped:
        md += ["Skipped: " + "; ".join(f"{t} ({why})" for t, why in evaluation.skipped.items()), ""]
    if "cold_start" in plots:
        md += ["## Short histories", "", f"![cold start]({plots['cold_start'].name})", ""]
    md += ["## Steerability with the constraints off", ""]
    if evaluation.steer:
        md += [f"Greedy answers of the plain model (no trie), {cfg.family} phrasings, real users' histories. Right type:"
               " the first item span is a real catalog item of the type asked. Right format: ids = item spans only,"
               " text = no span, mixed = a real item, then words.", "",
               "| type | format | task | right type | right format | example |", "|---|---|---|---|---|---|"]
        for r in evaluation.steer:
            kind = "-" if r.right_type is None else f"{r.right_type}/{r.prompts}"
            example = (r.examples[0] if r.examples else "").replace("|", "\\|").replace("\n", " ")
            md.append(f"| {r.entity_type or '-'} | {r.output_format} | {r.task} | {kind} |"
                      f" {r.right_format}/{r.prompts} | `{example[:80]}` |")
    else:
        md.append("Not measured (`--steer-prompts 0`).")
    md.append("")
    for name, body in merged_sections(sections).items():
        md += [f"## {name.capitalize()}", "", str(body.get("markdown") or body.get("summary") or body.get("status")), ""]
        if name in plots:
            md += [f"![{name}]({plots[name].name})", ""]
    md += ["## Training", "", _training_line(evaluation), ""]
    if "loss" in plots:
        md += [f"![training loss]({plots['loss'].name})", ""]
    md += [f"Measured in {evaluation.seconds / 60:.1f} min. Every ratio is the model's mean over the baseline's on the"
           f" same users (HR@{k} etc.), its interval a paired bootstrap over users.", ""]
    return "\n".join(md)


def _type_markdown(t: TypeEvaluation, evaluation: BundleEvaluation) -> list[str]:
    cfg = evaluation.settings
    ks = sorted(set(cfg.ks))
    names = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks]
    spread = t.spread()
    md = [f"## Next {t.entity_type}", "", f"{_scope(t)}.", "",
          "| method | " + " | ".join(names) + " | invalid | fit s |", "|---" * (len(names) + 3) + "|"]
    for j, label in enumerate(t.labels):
        fit = t.fits.get(label, {}).get("seconds")
        cells = " | ".join(_value(spread[label][n], len(t.seeds)) for n in names)
        md.append(f"| {label} | {cells} | {t.runs[0][j].invalid_rate:.3f} | {'-' if fit is None else f'{fit:.1f}'} |")
    sasrec = t.fits.get(BASELINE_LABELS["sasrec-ce"])
    if sasrec:
        md += ["", f"SASRec-CE: {sasrec.get('epochs_run')} epochs, {sasrec.get('steps')} steps in {sasrec.get('seconds')} s"
                   f" ({'stopped by its time budget' if sasrec.get('stopped_by_time') else 'all epochs'})."]
    k = cfg.headline_k
    shown = [f"HR@{k}", f"NDCG@{k}", f"HR@{max(ks)}"] if max(ks) != k else [f"HR@{k}", f"NDCG@{k}"]
    md += ["", f"Model / baseline ({round(cfg.level * 100)}% paired bootstrap interval over users):", "",
           "| baseline | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for base, by in t.ratios.items():
        md.append(f"| {base} | " + " | ".join(_ratio(by.get(m)) for m in shown) + " |")
    if t.cold_start:
        points = list(t.cold_start)
        heads = [p if p != "all" else f"all (median {t.history.get('median', 0):g})" for p in points]
        md += ["", f"Short histories ({shown[0]} / {shown[1]}, the same users, history cut to the last n items):", "",
               "| method | " + " | ".join(heads) + " |", "|---" * (len(points) + 1) + "|"]
        for label in t.cold_start[points[0]]:
            md.append(f"| {label} | " + " | ".join(
                f"{t.cold_start[p][label][shown[0]]:.4f} / {t.cold_start[p][label][shown[1]]:.4f}" for p in points) + " |")
    v = t.validity
    md += ["", f"Model validity: {v['ranked']} ids ranked; invalid {v['invalid']} ({v['invalid_rate']:.3f}),"
               f" wrong type {v['wrong_type']} ({v['wrong_type_rate']:.3f}).", ""]
    return md


def _ratio(ci: Interval | None) -> str:
    return ci.format("x") if ci is not None else "-"


# ------------------------------------------------------------------ search and explanations
def _number(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _runtime_line(method: str, result: Mapping[str, Any]) -> str:
    """A runtime's personalised ratio to popularity among matching, its item checks and latency."""
    row, k = result["rows"][method], result["k"]
    ratio = result["neo_personalised_over_popularity"].get(method)
    return (f"{method}: pers hit@{k} / popularity-among-matching {'-' if ratio is None else f'{ratio:.2f}x'};"
            f" invalid {row.get('invalid_rate', 0.0):.3f}, wrong type {row.get('wrong_type_rate', 0.0):.3f},"
            f" seen {row.get('seen_rate', 0.0):.3f} of {row.get('returned', 0)} items;"
            f" failed requests {row.get('errors', 0)}; p50 {_number(row['latency_p50_s'], '.3f')} s")


def _queries_line(result: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{family} {n}" for family, n in result["queries"].items())
    skipped = "; ".join(f"{family} skipped ({why})" for family, why in result["skipped"].items())
    return (f"{result['entity_type']} ({result['items']} items), up to {result['n']} queries per family, k = {result['k']},"
            f" seed {result['seed']}, {result['seconds']} s: {counts}" + (f"; {skipped}" if skipped else ""))


def search_section(result: Mapping[str, Any]) -> dict[str, Any]:
    """The report section of a :func:`~neo_sdk.evaluation.measure_search` result: a few printed lines
    (a row per method, a line per runtime) and a markdown block; the result itself goes to report.json."""
    k = result["k"]
    labels = [label.format(k=k).replace("pers-no-history", "no-history") for *_, label in COLUMNS]
    widths = [max(len(label), 6) + 2 for label in labels]
    lines = [_queries_line(result),
             f"  {'method':<30}" + "".join(f"{label:>{w}}" for label, w in zip(labels, widths)) + f"{'p50 s':>8}"]
    for method, row in result["rows"].items():
        cells = "".join(f"{_number(row['metrics'].get(key)):>{w}}" for (key, *_), w in zip(COLUMNS, widths))
        lines.append(f"  {method:<30}{cells}{_number(row['latency_p50_s'], '.3f'):>8}")
    runtimes = [_runtime_line(m, result) for m in result["runtimes"]]
    lines += [f"  {line}" for line in runtimes]
    unique = (f"; descriptive queries with one answer: {result['descriptive_unique_share']:.3f}"
              if result["queries"].get("descriptive") else "")
    markdown = [f"Entity type {_queries_line(result)}{unique}.", "", result["table"], "", *runtimes,
                "", "Measured as `bench/search.py` does (`neo_sdk.evaluation.measure_search`)."]
    return {**result, "status": "measured", "summary": "\n".join(lines), "markdown": "\n".join(markdown)}


def explanations_section(result: Mapping[str, Any]) -> dict[str, Any]:
    """The report section of a :func:`~neo_sdk.evaluation.measure_explanations` result."""
    mixed, profiles = result["mixed"], result["profiles"]
    head = (f"{result['users']} users x 2 mixed answers, {profiles.get('answers', 0)} profiles, {result['seconds']} s;"
            f" grounded bundle: {result['grounded']}")
    if not mixed:
        head = "no user has a long enough history to ask"
    lines = [head]
    for name, part in (("mixed", mixed), ("profiles", profiles)):
        if part:
            lines.append(f"  {name + ':':<10}{part['answers']} answers, model-written {_number(part['explained_by_model'])}"
                         f" ({part['distinct_model_texts']} distinct), shown claims true"
                         f" {_number(part['shown_claims_true'])} ({part['shown_claims_per_answer']} per answer),"
                         f" raw model claims true {_number(part['raw_claims_true'])}, p50 {_number(part['p50_ms'], '.0f')} ms")
    if profiles:
        lines[-1] += f"; naming >= 2 of the history's top-3 categories: {_number(result['profile_top3_named_2plus'])}"
    table = ["| measure | mixed answers | profiles |", "|---|---|---|"]
    table += [f"| {key} | {_cell(mixed.get(key))} | {_cell(profiles.get(key))} |" for key in EXPLANATION_KEYS]
    markdown = [head + ".", "", *table, "",
                f"Profiles naming >= 2 of the history's top-3 categories: {_cell(result['profile_top3_named_2plus'])}."
                f" Shown claims: read again by the groundedness checker; raw: the model's own text before the check."
                f" Measured as `bench/explanations.py` does (`neo_sdk.evaluation.measure_explanations`)."]
    return {**result, "status": "measured", "summary": "\n".join(lines), "markdown": "\n".join(markdown)}


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def judge_section(result: Mapping[str, Any]) -> dict[str, Any]:
    """The report section of a :func:`~neo_sdk.evaluation.judge_rows` result: which model judged, per
    kind of text the mean of each criterion, how many were rated, unparsed and skipped, and the 1-5 counts."""
    parts = (("explanations", result["explanations"]), ("profiles", result["profiles"]))
    head = (f"judged by {result['judge']}: {result['calls']} model calls, {result['cache_hits']} replies from the"
            f" cache, {result['seconds']} s")
    lines = [head]
    for name, part in parts:
        means = ", ".join(f"{c} {_number(part['mean'][c], '.2f')}" for c in CRITERIA)
        lines.append(f"  {name + ':':<14}{part['rated']} rated of {part['n']}, unparsed {part['unparsed']},"
                     f" skipped {part['skipped']}; mean {means}")
    table = ["| texts | n | rated | unparsed | skipped (no text) | " + " | ".join(f"{c} (mean)" for c in CRITERIA) + " |",
             "|---" * (5 + len(CRITERIA)) + "|"]
    table += [f"| {name} | {part['n']} | {part['rated']} | {part['unparsed']} | {part['skipped']} | "
              + " | ".join(_number(part["mean"][c], ".2f") for c in CRITERIA) + " |" for name, part in parts]
    counts = ["| texts | criterion | " + " | ".join(map(str, SCORES)) + " |", "|---" * (2 + len(SCORES)) + "|"]
    counts += [f"| {name} | {c} | " + " | ".join(str(part["distribution"][c][str(v)]) for v in SCORES) + " |"
               for name, part in parts for c in CRITERIA]
    markdown = [f"Judge: `{result['judge']}` (`--judge`), each text rated 1-5: **faithful** (states only facts true of"
                " the item and the history the judge is shown: the item's catalog facts, the user's recent items),"
                " **useful** (helps the user decide), **fluent** (reads like a person wrote it). Unparsed: a reply"
                " without three whole scores in 1-5, counted and never given a score.", "", *table, "",
                "Scores given (counts):", "", *counts, "",
                f"{result['calls']} model calls, {result['cache_hits']} replies from the cache (`{result['cache']}`),"
                f" {result['seconds']} s; every reply is in report.json (`judge.ratings`)."]
    return {**result, "status": "measured", "summary": "\n".join(lines), "markdown": "\n".join(markdown)}
