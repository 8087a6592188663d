#!/usr/bin/env python
"""Compare the COCO AP of two or more evaluations: a Markdown table and a bar chart by size.

Each entry is NAME=PATH[:MODE], PATH an eval_results.json written by ``train_net.py
--eval-only`` and MODE a test mode in it ("sr" = with G, "hr" = without G). A PATH without
MODE gives one row per mode in the file (named "NAME, <mode name>" when there are several).
The table is printed and optionally written (--out-md); the bar chart groups AP, APs, APm and
APl, one bar per entry (--out-png); --per-class adds per-class AP to both.

  python tools/compare_results.py "Mask R-CNN=out/mask/eval_results.json" \
      "SR-RCNN (with G)=out/sr/eval_results.json:sr" \
      "SR-RCNN (without G)=out/sr/eval_results.json:hr" \
      --task bbox --per-class --out-md out/ap.md --out-png out/ap.png
"""
import argparse
import json
import logging
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from srrcnn.evaluation import TEST_MODE_NAMES, ap_table, results_by_task

logger = logging.getLogger("compare_results")

SIZE_KEYS = ("AP", "APs", "APm", "APl")  # bar-chart groups: overall, then COCO size bins
CLASS_PREFIX = "AP-"  # COCOEvaluator's per-class keys: "AP-<class name>"


def parse_entry(entry: str) -> Tuple[str, str, Optional[str]]:
    """
    Split "NAME=PATH[:MODE]" into (name, path, mode or None). A PATH that exists as given
    (a ":" in a file name) is taken whole; otherwise the text after its last ":" is the mode.
    """
    name, sep, rest = entry.partition("=")
    if not sep or not name.strip() or not rest:
        raise ValueError(f"bad entry {entry!r}: expected NAME=PATH[:MODE]")
    path, mode = rest, None
    if not os.path.exists(rest) and ":" in rest:
        head, _, tail = rest.rpartition(":")
        if tail and os.sep not in tail:
            path, mode = head, tail
    return name.strip(), path, mode


def load_entry(name: str, path: str, mode: Optional[str], task: str) -> Dict[str, Dict]:
    """
    The rows of one entry: {row name: {metric: value}} for `task`, one row per selected mode.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: not an eval_results.json, `mode` not in it, or `task` not evaluated.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no such file {path!r}")
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name}: {path!r} is not valid json ({e})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise ValueError(f"{name}: {path!r} holds no 'results' (expected eval_results.json)")
    if mode is not None and mode not in results:
        raise ValueError(f"{name}: mode {mode!r} not in {path!r}; available modes: {list(results)}")
    modes = [mode] if mode is not None else list(results)
    rows = {}
    for m in modes:
        by_task = results_by_task(results[m])
        if task not in by_task:
            raise ValueError(f"{name}: task {task!r} not in {path!r} (mode {m!r}); "
                             f"available tasks: {list(by_task)}")
        row_name = name if len(modes) == 1 else f"{name}, {TEST_MODE_NAMES.get(m, m)}"
        rows[row_name] = by_task[task]
    return rows


def collect_rows(entries: Sequence[str], task: str) -> Dict[str, Dict[str, float]]:
    """All entries' rows in the order given; duplicate row names are an error."""
    rows: Dict[str, Dict[str, float]] = {}
    for entry in entries:
        for row_name, metrics in load_entry(*parse_entry(entry), task).items():
            if row_name in rows:
                raise ValueError(f"duplicate row name {row_name!r}: give entries distinct NAMEs")
            rows[row_name] = metrics
    return rows


def class_keys(rows: Dict[str, Dict[str, float]]) -> List[str]:
    """The "AP-<class>" keys of all rows, in first-seen order."""
    keys: List[str] = []
    for metrics in rows.values():
        keys += [k for k in metrics if k.startswith(CLASS_PREFIX) and k not in keys]
    return keys


def markdown(rows: Dict[str, Dict[str, float]], task: str, per_class: bool) -> str:
    """The AP table (srrcnn.evaluation.ap_table) and, with `per_class`, a per-class table."""
    text = f"**{task}**\n\n" + ap_table(rows)
    if per_class:
        keys = class_keys(rows)
        if keys:
            text += f"\n\n**{task}, per class**\n\n" + ap_table(rows, keys)
        else:
            logger.warning("--per-class: no %s* keys in the results", CLASS_PREFIX)
    return text + "\n"


def _value(metrics: Dict[str, float], key: str) -> Optional[float]:
    """A finite number, or None for a missing / NaN metric (COCO gives NaN for empty bins)."""
    v = metrics.get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _grouped_bars(ax, rows: Dict[str, Dict[str, float]], keys: Sequence[str], labels):
    """One group per key, one bar per row, value labels on the bars ("n/a" for missing)."""
    import numpy as np

    n = len(rows)
    width = 0.8 / n
    x = np.arange(len(keys))
    top = 0.0
    for i, (row_name, metrics) in enumerate(rows.items()):
        values = [_value(metrics, k) for k in keys]
        heights = [0.0 if v is None else v for v in values]
        top = max([top] + heights)
        bars = ax.bar(x + (i - (n - 1) / 2) * width, heights, width, label=row_name,
                      color=f"C{i % 10}")
        texts = ["n/a" if v is None else f"{v:.1f}" for v in values]
        ax.bar_label(bars, labels=texts, padding=2, fontsize=7 if n > 3 else 8,
                     rotation=90 if n > 4 else 0)
    ax.set_xticks(x, labels)
    ax.set_ylabel("COCO AP (%)")
    ax.set_ylim(0, max(top, 1.0) * (1.25 if n > 4 else 1.12))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def bar_chart(rows: Dict[str, Dict[str, float]], path: str, title: str, per_class: bool) -> None:
    """Write the AP-by-size bar chart (and a per-class panel with `per_class`) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = class_keys(rows) if per_class else []
    panels = 2 if keys else 1
    fig, axes = plt.subplots(panels, 1, squeeze=False,
                             figsize=(max(7.0, 1.2 * len(rows) + 4), 4.5 * panels))
    names = {"AP": "AP (all)", "APs": "APs (small)", "APm": "APm (medium)", "APl": "APl (large)"}
    _grouped_bars(axes[0, 0], rows, SIZE_KEYS, [names[k] for k in SIZE_KEYS])
    axes[0, 0].set_title(title)
    if keys:
        _grouped_bars(axes[1, 0], rows, keys, [k[len(CLASS_PREFIX):] for k in keys])
        axes[1, 0].set_title("AP per class")
    axes[-1, 0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.1),
                       ncol=min(len(rows), 3), frameon=False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # no "Software" / date metadata: the same inputs give the same bytes
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Command line entry point; returns the Markdown text (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("entries", nargs="+", metavar="NAME=PATH[:MODE]")
    parser.add_argument("--task", default="bbox", choices=("bbox", "segm"))
    parser.add_argument("--out-md", help="write the Markdown table here")
    parser.add_argument("--out-png", help="write the bar chart here")
    parser.add_argument("--per-class", action="store_true", help="add per-class AP")
    parser.add_argument("--title", help="chart title (default: '<task> AP by object size')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    try:
        rows = collect_rows(args.entries, args.task)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    text = markdown(rows, args.task, args.per_class)
    print(text, end="")
    if args.out_md:
        os.makedirs(os.path.dirname(os.path.abspath(args.out_md)), exist_ok=True)
        with open(args.out_md, "w") as f:
            f.write(text)
        logger.info("Wrote %s", args.out_md)
    if args.out_png:
        bar_chart(rows, args.out_png, args.title or f"{args.task} AP by object size",
                  args.per_class)
        logger.info("Wrote %s", args.out_png)
    return text


if __name__ == "__main__":
    main()
