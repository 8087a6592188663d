# -*- coding: utf-8 -*-
"""Evaluation helpers: COCO AP in both test modes (with / without G) and AP tables by size."""
import json
import logging
import os
from contextlib import contextmanager
from typing import Dict, Sequence

from .gan_trainer import get_generator

logger = logging.getLogger(__name__)

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# MODEL.SRRCNN.TEST_MODE values, as named in tables
TEST_MODE_NAMES = {"sr": "with G (sr)", "hr": "without G (hr)",
                   "size_aware": "size-aware G (size_aware)",
                   "sr_lr": "with G on 0.5x RoIs (sr_lr)",
                   "size_aware_x2": "real 2x features on RoIs predicted small (size_aware_x2)"}


@contextmanager
def test_mode(model, mode: str):
    """Temporarily set the ROI heads' test mode (TEST_MODE_NAMES) of an SR-RCNN model."""
    heads = getattr(model, "module", model).roi_heads
    old = heads.test_mode
    heads.test_mode = mode
    try:
        yield model
    finally:
        heads.test_mode = old


def evaluate_test_modes(model, modes: Sequence[str], test_fn) -> Dict[str, Dict]:
    """
    Evaluate `model` once per test mode.

    Args:
        model: an SR-RCNN model (a model without a generator is evaluated once, as "hr").
        modes: e.g. ("sr", "hr").
        test_fn: ``test_fn(model) -> results`` (e.g. ``lambda m: Trainer.test(cfg, m)``).

    Returns:
        {mode: results}, results as detectron2's evaluators return them.
    """
    bad = [m for m in modes if m not in TEST_MODE_NAMES]
    if bad:
        raise ValueError(f"unknown test mode(s) {bad}; choose from {list(TEST_MODE_NAMES)}")
    if get_generator(model) is None:
        return {"hr": test_fn(model)}
    out = {}
    for mode in modes:
        logger.info("Evaluating with MODEL.SRRCNN.TEST_MODE=%s", mode)
        with test_mode(model, mode):
            out[mode] = test_fn(model)
    return out


def ap_table(rows: Dict[str, Dict[str, float]], keys: Sequence[str] = AP_KEYS) -> str:
    """
    A Markdown table, one row per entry.

    Args:
        rows: {row name: {"AP": 12.3, "AP50": ..., ...}} (missing keys print as "-").
    """
    lines = ["| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, r in rows.items():
        cells = [f"{r[k]:.1f}" if isinstance(r.get(k), (int, float)) else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_by_task(results: Dict) -> Dict[str, Dict[str, float]]:
    """
    {task: {metric: value}} from what DefaultTrainer.test returns: that already for one test
    dataset, {dataset: {task: ...}} for several (then only one is accepted here).
    """
    first = next(iter(results.values()), {})
    if first and all(isinstance(v, dict) for v in first.values()):
        if len(results) > 1:
            raise ValueError(f"results of several datasets: {list(results)}; pass one")
        results = first
    return {task: dict(metrics) for task, metrics in results.items()}


def save_eval_results(path: str, by_mode: Dict[str, Dict], **info) -> None:
    """Write {"info": ..., "results": {mode: {task: {metric: value}}}} as json (atomic)."""
    data = {"info": info, "results": {m: results_by_task(r) for m, r in by_mode.items()}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".partial", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".partial", path)


def mode_table(by_mode: Dict[str, Dict], task: str = "bbox") -> str:
    """Side-by-side AP table of the test modes for one task ("bbox" or "segm")."""
    rows = {TEST_MODE_NAMES.get(m, m): results_by_task(r).get(task, {}) for m, r in by_mode.items()}
    return ap_table(rows)


def report_test_modes(cfg, by_mode: Dict[str, Dict]) -> None:
    """Log side-by-side AP tables of the test modes and write OUTPUT_DIR/eval_results.json."""
    for task in ("bbox", "segm"):
        if len(by_mode) > 1 and all(task in results_by_task(r) for r in by_mode.values()):
            logger.info(f"{task} AP by test mode:\n" + mode_table(by_mode, task))
    save_eval_results(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), by_mode,
                      weights=cfg.MODEL.WEIGHTS, datasets=list(cfg.DATASETS.TEST))
