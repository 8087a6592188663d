# -*- coding: utf-8 -*-
"""The summary of tools/run_evidence.py: statistics over seeds, paired differences, RESULTS.md,
results.json and the bar chart of bbox AP by object size."""
import json
import math
import os
import shlex
import statistics
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from srrcnn.evaluation import AP_KEYS, TEST_MODE_NAMES

SIZE_KEYS = ("AP", "APs", "APm", "APl")
TASKS = ("bbox", "segm")


def row_label(variant: Dict, mode: str) -> str:
    """Table name of (variant, mode): the label alone for a single-"hr" (generator-less) variant."""
    if list(variant["modes"]) == ["hr"]:
        return variant["label"]
    return f"{variant['label']} {TEST_MODE_NAMES.get(mode, mode)}"


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data) -> None:
    """Write strict json (NaN -> null) atomically: a temporary file, then os.replace."""
    write_text(path, json.dumps(_clean(data), indent=2, allow_nan=False))


def write_text(path: str, text: str) -> None:
    """Write ``text`` atomically: a temporary file, then os.replace."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def _mean(values) -> str:
    return f"{statistics.mean(values):.0f}" if values else "-"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _stats(values: Sequence[Optional[float]]) -> Dict:
    """mean, sample std (None for n < 2), n over the finite values; values as given."""
    xs = [v for v in values if _finite(v)]
    return dict(mean=statistics.mean(xs) if xs else None,
                std=statistics.stdev(xs) if len(xs) > 1 else None, n=len(xs), values=list(values))


def summarize(rows, results, seeds, ref: str):
    """
    Args:
        rows: {row label: (variant name, mode)}; results: {variant: {"seed<k>": eval results}}.
        ref: the baseline row's label.

    Returns:
        (summary, vs_baseline, vs_hr): summary[row] = {variant, mode, seeds, task: {metric:
        stats}}; vs_baseline[row] = {baseline, seeds, "bbox": {metric: stats of paired
        differences + improved}} for the size metrics; vs_hr: the same for each test mode with
        a generator against the same variant's "hr" row (the same trained models).
    """
    def per_seed(row):
        name, mode = rows[row]
        return {s: results.get(name, {}).get(f"seed{s}", {}).get(mode) for s in seeds}

    summary = OrderedDict()
    for row, (name, mode) in rows.items():
        got = {s: r for s, r in per_seed(row).items() if r is not None}
        entry = summary[row] = dict(variant=name, mode=mode, seeds=list(got))
        for task in TASKS:
            if any(task in r for r in got.values()):
                entry[task] = {k: _stats([r.get(task, {}).get(k) for r in got.values()])
                               for k in AP_KEYS}

    def paired(row, ref):
        base = {s: r for s, r in per_seed(ref).items() if r is not None}
        got = {s: r for s, r in per_seed(row).items() if r is not None and s in base}
        diffs = {}
        for k in SIZE_KEYS:
            pairs = [(r.get("bbox", {}).get(k), base[s].get("bbox", {}).get(k))
                     for s, r in got.items()]
            d = [a - b for a, b in pairs if _finite(a) and _finite(b)]
            diffs[k] = dict(_stats(d), improved=sum(x > 0 for x in d))
        return dict(variant=rows[row][0], mode=rows[row][1], baseline=ref, seeds=list(got),
                    bbox=diffs)

    vs = OrderedDict((row, paired(row, ref)) for row in rows if row != ref)
    # G at test: each generator mode against the same trained model without G
    own_hr = {name: row for row, (name, mode) in rows.items() if mode == "hr"}
    vs_hr = OrderedDict((row, paired(row, own_hr[name])) for row, (name, mode) in rows.items()
                        if mode != "hr" and name in own_hr)
    return summary, vs, vs_hr


def _cell(s: Dict, signed: bool = False) -> str:
    if not s["n"]:
        return "n/a"
    mean = f"{s['mean']:+.1f}" if signed else f"{s['mean']:.1f}"
    return mean if s["std"] is None else f"{mean} ± {s['std']:.1f}"


def _diff_table(title: str, what: str, vs) -> List[str]:
    """A Markdown table of paired per-seed differences (from :func:`summarize`)."""
    out = [f"## {title}", "", f"Mean ± std of the paired per-seed differences ({what}); "
           "(k/n): seeds where the row is higher.", "",
           "| | " + " | ".join(SIZE_KEYS) + " |", "|---|" + "---|" * len(SIZE_KEYS)]
    for row, e in vs.items():
        out.append(f"| {row} | " + " | ".join(
            f"{_cell(e['bbox'][k], True)} ({e['bbox'][k]['improved']}/{e['bbox'][k]['n']})"
            for k in SIZE_KEYS) + " |")
    return out + [""]


def markdown(info: Dict, summary, vs, seeds, chart: Optional[str], notes: Optional[str],
             timings: Dict, vs_hr=None) -> str:
    """RESULTS.md: settings, bbox and segm tables, differences to the baseline, chart, per seed."""
    n_all = len(seeds)
    out = ["# SR-RCNN evidence: results over seeds", "",
           f"Generated by `{shlex.join(info['command'])}` (rerun it to reproduce; finished runs "
           f"are reused). Date: {info['date']}. Device: {info['device']}. Budget: "
           f"{info['budget']} iterations per run. Protocol: {info['protocol']}. Train: "
           f"`{info['train_dataset']}`, test: `{info['test_dataset']}`. Seeds: "
           f"{', '.join(map(str, seeds))}. Cells: mean ± sample std over seeds (COCO AP, %); "
           "n: seeds with a complete run.", ""]
    for task in TASKS:
        out += [f"## {task} AP", "", "| | " + " | ".join(AP_KEYS) + " | n |",
                "|---|" + "---|" * (len(AP_KEYS) + 1)]
        for row, e in summary.items():
            n = len(e["seeds"])
            cells = [_cell(e[task][k]) if task in e else "n/a" for k in AP_KEYS]
            out.append(f"| {row} | " + " | ".join(cells) +
                       f" | {n if n == n_all else f'{n} of {n_all}'} |")
        out.append("")
    short = [r for r, e in summary.items() if len(e["seeds"]) < n_all]
    if short:
        out += ["Fewer seeds than asked (runs missing or failed): " + ", ".join(short) + ".", ""]
    if vs:
        ref = next(iter(vs.values()))["baseline"]
        out += _diff_table(f"Difference to the baseline ({ref}), bbox",
                           "row − baseline, same seed", vs)
    if vs_hr:
        out += _diff_table("Effect of G at test, bbox", "row − the same trained models without "
                           "G (their `hr` row), same seed", vs_hr)
    if chart:
        out += ["## bbox AP by object size", "", f"![bbox AP by size]({chart})", ""]
    out += ["## Per seed (bbox)", "", "| | seed | " + " | ".join(SIZE_KEYS) + " |",
            "|---|---|" + "---|" * len(SIZE_KEYS)]
    for row, e in summary.items():
        for s in seeds:
            if s in e["seeds"] and "bbox" in e:
                i = e["seeds"].index(s)
                cells = [_cell(_stats([e["bbox"][k]["values"][i]])) for k in SIZE_KEYS]
            else:
                cells = ["missing"] + ["-"] * (len(SIZE_KEYS) - 1)
            out.append(f"| {row} | {s} | " + " | ".join(cells) + " |")
    out.append("")
    if timings:
        out += ["Seconds per run (mean; train summed over resumes): " + "; ".join(
            f"{n} train {_mean([t['train_s'] for t in ts.values() if 'train_s' in t])}, eval "
            f"{_mean([t['eval_s'] for t in ts.values() if 'eval_s' in t])}"
            for n, ts in timings.items()) + ".", ""]
    if notes is not None:
        out += ["## Notes", "", notes.rstrip("\n"), ""]
    return "\n".join(out)


def bar_chart(summary, path: str, title: str) -> bool:
    """Grouped bars of bbox AP, APs, APm, APl per row with std error bars; False if no data."""
    rows = {r: e["bbox"] for r, e in summary.items() if e["seeds"] and "bbox" in e}
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n, x = len(rows), np.arange(len(SIZE_KEYS))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * n + 4), 4.8))
    for i, (row, m) in enumerate(rows.items()):
        means = [m[k]["mean"] or 0.0 for k in SIZE_KEYS]
        errs = [m[k]["std"] or 0.0 for k in SIZE_KEYS]
        bars = ax.bar(x + (i - (n - 1) / 2) * width, means, width, yerr=errs, capsize=3,
                      label=row, color=f"C{i % 10}")
        ax.bar_label(bars, labels=["n/a" if m[k]["mean"] is None else f"{m[k]['mean']:.1f}"
                                   for k in SIZE_KEYS], padding=2, fontsize=7,
                     rotation=90 if n > 4 else 0)
    ax.set_xticks(x, ["AP (all)", "APs (small)", "APm (medium)", "APl (large)"])
    ax.set_ylabel("COCO box AP (%), mean ± std over seeds")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(n, 3), frameon=False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp", format="png", dpi=120, bbox_inches="tight",
                metadata={"Software": None})
    plt.close(fig)
    os.replace(path + ".tmp", path)
    return True


def write_report(docs_dir: str, info: Dict, variants: Dict, baseline, results, timings,
                 notes: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """
    DOCS/RESULTS.md, results.json and results_ap_by_size.png from the eval results of the
    complete runs.

    Args:
        info: the settings (command, date, device, budget, protocol, pretrain, datasets, seeds).
        variants: {name: {label, config, modes, ...}}, in table order.
        baseline: (variant name, test mode or None: its first).
        results: {variant: {"seed<k>": {mode: {task: {metric: value}}}}}.
        timings: {variant or "pretrain": {"seed<k>": {"train_s", "eval_s"}}}.
        notes: Markdown appended under "Notes".

    Returns:
        (the path of RESULTS.md, the chart's file name or None: no complete run).
    """
    rows = OrderedDict((row_label(v, m), (n, m)) for n, v in variants.items() for m in v["modes"])
    base, mode = baseline
    ref = row_label(variants[base], mode or variants[base]["modes"][0])
    seeds = info["seeds"]
    summary, vs, vs_hr = summarize(rows, results, seeds, ref)
    png = os.path.join(docs_dir, "results_ap_by_size.png")
    pretrained = ", fine-tuned" if info["pretrain"] else ""
    title = (f"{info['test_dataset']}, bbox AP by size ({len(seeds)} seeds, {info['budget']} it"
             f"{pretrained})")
    chart = os.path.basename(png) if bar_chart(summary, png, title) else None
    md = os.path.join(docs_dir, "RESULTS.md")
    write_text(md, markdown(info, summary, vs, seeds, chart, notes, timings, vs_hr))
    write_json(os.path.join(docs_dir, "results.json"), dict(
        info, variants={n: {k: v[k] for k in ("label", "config", "modes")}
                        for n, v in variants.items()},
        runs=results, summary=summary, vs_baseline=vs, vs_hr=vs_hr, timings=timings))
    return md, chart
