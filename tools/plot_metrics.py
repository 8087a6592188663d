#!/usr/bin/env python
"""Plot training curves of one or more runs from detectron2's metrics.json into one PNG.

Panels: (a) G and D total losses (total_loss for a run without them), (b) the content loss,
(c) the adversarial terms, (d) the task losses (cls / box, hr / sr or plain), (e) the
learning rates (log scale). Series a run did not log (a Mask R-CNN run has no G terms) are
skipped with a note in the panel. Lines without losses (evaluation results) and a truncated
last line (a run still writing) are tolerated. --smooth N draws a centred moving median of N
points of each loss over its faint raw curve.

  python tools/plot_metrics.py --metrics out/sr/metrics.json --metrics out/mask/metrics.json \
      --labels SR-RCNN "Mask R-CNN" --smooth 5 --out out/training_curves.png
"""
import argparse
import json
import logging
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger("plot_metrics")

# (title, series keys, log-scale y, note a run lacking some keys); the first panel falls back
# to FALLBACK_TOTAL for a run without G/D totals; (d)'s plain and hr/sr names are alternatives
PANELS = (
    ("(a) total losses", ("G_total_loss", "D_total_loss"), False, False),
    ("(b) content loss", ("loss_G_content",), False, True),
    ("(c) adversarial terms", ("loss_G_adv", "loss_D_adv"), False, True),
    ("(d) task losses", ("loss_cls_hr", "loss_cls_sr", "loss_box_reg_hr", "loss_box_reg_sr",
                         "loss_cls", "loss_box_reg"), False, False),
    ("(e) learning rates", ("lr", "lr_G"), True, True),
)
FALLBACK_TOTAL = "total_loss"
LINESTYLES = ("-", "--", ":", "-.")  # one per run; colours are one per series key
STYLE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}


def load_metrics(path: str) -> List[Dict]:
    """
    The json objects of a metrics.json, one per line. Blank lines are skipped; a line that is
    not json (a truncated last line of a run still writing) is skipped with a warning.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such metrics file {path!r}")
    records = []
    with open(path) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            where = "truncated last line" if i == len(lines) - 1 else f"bad line {i + 1}"
            logger.warning("%s: %s skipped", path, where)
            continue
        if isinstance(record, dict) and "iteration" in record:
            records.append(record)
    return records


def series(records: Sequence[Dict], key: str) -> Tuple[np.ndarray, np.ndarray]:
    """
    (iterations, values) of `key`, sorted by iteration; records without a finite number for
    it are skipped; a repeated iteration (a resumed run) keeps its last value.
    """
    points = {}
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            points[int(r["iteration"])] = float(v)
    its = sorted(points)
    return np.array(its, dtype=np.int64), np.array([points[i] for i in its], dtype=np.float64)


def moving_median(values: np.ndarray, n: int) -> np.ndarray:
    """Centred moving median over `n` points (fewer at the ends, no lag); n <= 1 is identity."""
    if n <= 1:
        return values
    lo, hi = (n - 1) // 2, n // 2
    return np.array([np.median(values[max(0, i - lo): i + hi + 1]) for i in range(len(values))])


def panel_keys(records: Sequence[Dict], keys: Sequence[str], first_panel: bool) -> List[str]:
    """The keys of a panel this run logged; panel (a) falls back to total_loss."""
    present = [k for k in keys if len(series(records, k)[0])]
    if first_panel and not present and len(series(records, FALLBACK_TOTAL)[0]):
        present = [FALLBACK_TOTAL]
    return present


def draw_panel(ax, runs: Dict[str, List[Dict]], panel: Tuple, smooth: int) -> None:
    """Draw one panel of PANELS: every run's logged series, a note for what a run lacks."""
    title, keys, log, note_partial = panel
    first_panel = panel is PANELS[0]
    all_keys = list(keys) + ([FALLBACK_TOTAL] if first_panel else [])
    missing, drawn = [], 0
    for j, (label, records) in enumerate(runs.items()):
        present = panel_keys(records, keys, first_panel)
        absent = [k for k in keys if k not in present]
        if not present:
            missing.append(f"{label}: none logged")
        elif note_partial and absent:
            missing.append(f"{label}: no {', '.join(absent)}")
        for k in present:
            its, vals = series(records, k)
            color = f"C{all_keys.index(k) % 10}"
            style = LINESTYLES[j % len(LINESTYLES)]
            name = k if len(runs) == 1 else f"{label}: {k}"
            if smooth > 1 and "loss" in k:  # losses only: a learning rate is exact
                ax.plot(its, vals, style, color=color, alpha=0.25, linewidth=0.8)
                vals = moving_median(vals, smooth)
            ax.plot(its, vals, style, color=color, label=name, linewidth=1.4)
            drawn += 1
    ax.set_title(title, fontsize=10, loc="left")
    if not drawn:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, f"no data: {', '.join(keys)}\nnot logged by " + ", ".join(runs),
                transform=ax.transAxes, fontsize=8, color="0.35", ha="center", va="center")
        return
    ax.set_xlabel("iteration")
    ax.grid(alpha=0.3)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper right")
    if missing:  # right of the panel title, clear of the curves
        ax.set_title("not logged: " + "\n".join(missing), loc="right", fontsize=7, color="0.35")


def plot(runs: Dict[str, List[Dict]], out: str, title: str, smooth: int = 1) -> None:
    """Write the five panels of `runs` ({label: records}) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(12, 11))
    for ax, panel in zip(axes.flat, PANELS):
        draw_panel(ax, runs, panel, smooth)
    for ax in axes.flat[len(PANELS):]:
        ax.axis("off")
    legend = ", ".join(f"{STYLE_NAMES[LINESTYLES[j % len(LINESTYLES)]]}: {label}"
                       for j, label in enumerate(runs))
    fig.suptitle(title + (f"\nline styles: {legend}" if len(runs) > 1 else "")
                 + (f"  (moving median of {smooth})" if smooth > 1 else ""), fontsize=12)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metrics", action="append", required=True,
                        help="a metrics.json (repeat for several runs)")
    parser.add_argument("--labels", nargs="+", help="one label per --metrics "
                        "(default: the metrics file's folder name)")
    parser.add_argument("--smooth", type=int, default=1, help="moving median of N points")
    parser.add_argument("--out", default="training_curves.png", help="output PNG")
    parser.add_argument("--title", default="Training curves")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p)))
                             for p in args.metrics]
    if len(labels) != len(args.metrics):
        parser.error(f"{len(labels)} --labels for {len(args.metrics)} --metrics files")
    if len(set(labels)) != len(labels):
        parser.error(f"labels must differ: {labels} (give --labels)")
    runs = {}
    for label, path in zip(labels, args.metrics):
        try:
            runs[label] = load_metrics(path)
        except OSError as e:
            parser.error(str(e))
        if not runs[label]:
            parser.error(f"{path!r} holds no metrics lines")
        logger.info("%s: %d lines from %s", label, len(runs[label]), path)
    plot(runs, args.out, args.title, args.smooth)
    logger.info("Wrote %s", args.out)


if __name__ == "__main__":
    main()
