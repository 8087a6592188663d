#!/usr/bin/env python
"""COCO AP and time of sliced inference (srrcnn.sliced) beside whole-image inference, one model.

Every image of the dataset (or the first --num-images) is predicted with the same weights:
whole, as DefaultPredictor does (resized to INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), by slices
(SlicedPredictor: TEST.SLICE.*, the flags below override them) and, with --native, whole at
its own resolution (no test resize: what slicing must beat at a similar cost). Each is scored
by its own COCOEvaluator (AP, AP50, AP75, APs, APm, APl; bbox, and segm with a mask head) with
maxDets = TEST.DETECTIONS_PER_IMAGE; the wall-clock time of the predictor calls is measured
per image. An SR-RCNN model is evaluated in every --test-modes mode. The tables are logged and
everything is written to --output as json. srrcnn_shapes datasets are generated on first use.

  OMP_NUM_THREADS=1 python tools/sliced_eval.py \\
      --config-file configs/quick_schedules/mask_rcnn_R_18_FPN_shapes_cpu.yaml \\
      --dataset srrcnn_shapes_large_val --slice-size 320 --slice-overlap 0.2 \\
      --output out/sliced_eval.json MODEL.WEIGHTS output/mask_rcnn_shapes_cpu/model_final.pth
"""
import argparse
import copy
import json
import logging
import os
import sys
import time

import torch

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.logger import setup_logger

from srrcnn import add_srrcnn_config
from srrcnn.data import ensure_generated
from srrcnn.evaluation import AP_KEYS, TEST_MODE_NAMES, ap_table, evaluate_test_modes
from srrcnn.gan_trainer import get_generator
from srrcnn.sliced import MERGE_METHODS, MERGE_METRICS, KeepSize, SlicedPredictor, slice_grid

logger = logging.getLogger("sliced_eval")

TIME_KEY = "ms/img"  # wall-clock time of the predictor call per image, in the tables


def get_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--dataset", help="a registered dataset (default: DATASETS.TEST[0])")
    p.add_argument("--num-images", type=int, default=0, help="the first N images (0: all)")
    p.add_argument("--slice-size", type=int, help="TEST.SLICE.SIZE, pixels")
    p.add_argument("--slice-overlap", type=float, help="TEST.SLICE.OVERLAP, ratio in [0, 1)")
    p.add_argument("--full-image-pass", action="store_true", default=None,
                   help="TEST.SLICE.FULL_IMAGE_PASS: merge a whole-image pass in")
    p.add_argument("--merge", choices=MERGE_METHODS, help="TEST.SLICE.MERGE")
    p.add_argument("--merge-metric", choices=MERGE_METRICS, help="TEST.SLICE.MERGE_METRIC")
    p.add_argument("--merge-thresh", type=float, help="TEST.SLICE.MERGE_THRESH")
    p.add_argument("--batch-size", type=int, help="TEST.SLICE.BATCH_SIZE: slices per forward")
    p.add_argument("--native", action="store_true",
                   help="also the whole image at its own resolution (no test resize)")
    p.add_argument("--test-modes", nargs="+", default=["size_aware"],
                   choices=list(TEST_MODE_NAMES),
                   help="SR-RCNN test modes to evaluate (ignored for other models)")
    p.add_argument("--output", default="sliced_eval.json", help="json file to write")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="config KEY VALUE pairs (MODEL.WEIGHTS ...)")
    return p


def setup(args):
    """cfg from the config file, the KEY VALUE opts, then the slicing flags that were given."""
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    flags = {"SIZE": args.slice_size, "OVERLAP": args.slice_overlap,
             "FULL_IMAGE_PASS": args.full_image_pass, "MERGE": args.merge,
             "MERGE_METRIC": args.merge_metric, "MERGE_THRESH": args.merge_thresh,
             "BATCH_SIZE": args.batch_size}
    cfg.TEST.SLICE.update({k: v for k, v in flags.items() if v is not None})
    cfg.freeze()
    return cfg


def evaluate(predictor, dicts, dataset, tasks, max_dets, native=False):
    """
    Each method over ``dicts``: {method: {task: {metric: value}, TIME_KEY: ms per image}}.
    """
    predict = {"whole": predictor.whole_image, "sliced": predictor}
    if native:
        at_own_size = copy.copy(predictor)  # the same model, another test resize
        at_own_size.aug = KeepSize()
        predict["native"] = at_own_size.whole_image
    evaluators = {m: COCOEvaluator(dataset, tasks=tasks, distributed=False,
                                   max_dets_per_image=max_dets) for m in predict}
    seconds = dict.fromkeys(predict, 0.0)
    for e in evaluators.values():
        e.reset()
    for i, d in enumerate(dicts):
        image = read_image(d["file_name"], format="BGR")
        for method in predict:
            start = time.perf_counter()
            output = predict[method](image)
            seconds[method] += time.perf_counter() - start
            evaluators[method].process([d], [output])
        if (i + 1) % 5 == 0 or i + 1 == len(dicts):
            logger.info("%d/%d images; s/img so far: %s", i + 1, len(dicts),
                        {m: round(s / (i + 1), 3) for m, s in seconds.items()})
    img_ids = [d["image_id"] for d in dicts]
    out = {}
    for method in predict:
        out[method] = dict(evaluators[method].evaluate(img_ids=img_ids))
        out[method][TIME_KEY] = 1000.0 * seconds[method] / max(1, len(dicts))
    return out


def main(args):
    cfg = setup(args)
    setup_logger(name="sliced_eval")
    setup_logger(name="srrcnn")
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    ensure_generated(dataset)
    dicts = DatasetCatalog.get(dataset)
    dicts = dicts[:args.num_images] if args.num_images > 0 else dicts
    predictor = SlicedPredictor(cfg)
    tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
    windows = len(slice_grid(dicts[0]["height"], dicts[0]["width"],
                             cfg.TEST.SLICE.SIZE, cfg.TEST.SLICE.OVERLAP))
    logger.info("%s: %d images, %d slices per image (first image), slicing %s", dataset,
                len(dicts), windows, predictor.slice_args)
    with torch.no_grad():
        predictor.whole_image(read_image(dicts[0]["file_name"], format="BGR"))  # warm-up

    by_mode = evaluate_test_modes(
        predictor.model, args.test_modes,
        lambda m: evaluate(predictor, dicts, dataset, tasks, cfg.TEST.DETECTIONS_PER_IMAGE,
                           args.native),
    )
    has_g = get_generator(predictor.model) is not None
    for task in tasks:
        rows = {(f"{TEST_MODE_NAMES[mode]}, " if has_g else "") + method: dict(
            r[method][task], **{TIME_KEY: r[method][TIME_KEY]})
            for mode, r in by_mode.items() for method in r}
        logger.info(f"{task} on {dataset}:\n" + ap_table(rows, AP_KEYS + (TIME_KEY,)))
    info = dict(command=" ".join(sys.argv), config_file=args.config_file,
                weights=cfg.MODEL.WEIGHTS, dataset=dataset, num_images=len(dicts),
                slices_per_image=windows, slice=predictor.slice_args,
                min_size_test=cfg.INPUT.MIN_SIZE_TEST, max_size_test=cfg.INPUT.MAX_SIZE_TEST,
                torch_threads=torch.get_num_threads())
    ratio = {mode: {m: r[m][TIME_KEY] / r["whole"][TIME_KEY] for m in r if m != "whole"}
             for mode, r in by_mode.items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"info": info, "results": by_mode, "time_ratio": ratio}, f, indent=2)
    logger.info("time over whole-image time: %s; wrote %s", ratio, args.output)
    return by_mode


if __name__ == "__main__":
    main(get_parser().parse_args())
