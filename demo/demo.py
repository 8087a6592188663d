# -*- coding: utf-8 -*-
"""
SR-RCNN demo, in the spirit of detectron2's demo/demo.py: run detectron2's DefaultPredictor on
images, draw boxes, masks and class names with detectron2's Visualizer, and write one COCO
results json for all images. With --slice-size, --slice-overlap, --full-image-pass or
--slice-merge it predicts by overlapping slices instead (srrcnn.SlicedPredictor, for large
images; docs/LARGE_IMAGES.md); the settings not given come from the config's TEST.SLICE.*.

Usage::

    .venv/bin/python demo/demo.py \\
        --config-file configs/quick_schedules/sr_rcnn_R_18_FPN_shapes_cpu.yaml \\
        --input images/ 'more/*.png' one.jpg --output out/ --confidence-threshold 0.3 \\
        --test-mode hr \\
        --opts MODEL.WEIGHTS output/sr_rcnn_shapes_cpu/model_final.pth MODEL.DEVICE cpu

    # a large image, by 320 px slices overlapping by 20 %, plus the whole image
    .venv/bin/python demo/demo.py --config-file ... --input large.png --output out/ \
        --slice-size 320 --slice-overlap 0.2 --full-image-pass --opts MODEL.WEIGHTS ...

Class names come from the metadata of DATASETS.TEST[0]; a dataset of your own is registered with
train_net.py's flags (--register-coco, --register-yolo, --register-visdrone; srrcnn.data.cli),
e.g. ``--register-yolo mine images/ labels/ names.txt --opts DATASETS.TEST '("mine",)' ...``.

Outputs, in --output:

* ``<image stem>.png``: the image with predictions drawn, same size as the input (a repeated stem,
  e.g. a.jpg and a.png, gets ``<stem>_<index>.png``).
* ``results.json``: COCO results, a list of {"image_id", "file_name", "category_id", "bbox"
  (XYWH, absolute pixels), "score", "segmentation" (RLE, counts as str)}. "image_id" is the
  image's 0-based index in the input list (each folder or glob sorted, duplicates dropped; an
  int, as COCO tools expect); "file_name" is the input path. "category_id" is the dataset's
  id (metadata thing_dataset_id_to_contiguous_id of DATASETS.TEST[0]) when known, else the
  contiguous id + 1.

--input takes image files, folders (their images, not recursive) and glob patterns. A missing
config file, a bad config key or value (slice settings included), a --register-* path that does
not exist or an input that matches nothing stops the demo with status 2; an unreadable image is
skipped with a warning, and the demo exits with status 1 after writing everything else.
"""
import argparse
import glob
import json
import os
import sys

import cv2
import tqdm

import srrcnn  # noqa: F401  (registers SR-RCNN and its datasets)
from srrcnn.data import add_register_arguments, register_from_args
from srrcnn.roi_heads import TEST_MODES
from srrcnn.sliced import MERGE_METHODS, SlicedPredictor, slice_grid
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import ColorMode, Visualizer

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # folder listing
# the sliced-inference flags (argparse dest) and the TEST.SLICE keys they set
SLICE_FLAGS = {"slice_size": "SIZE", "slice_overlap": "OVERLAP",
               "full_image_pass": "FULL_IMAGE_PASS", "slice_merge": "MERGE"}
RESULTS_FILE = "results.json"


def get_parser():
    parser = argparse.ArgumentParser(
        description="SR-RCNN demo on images (DefaultPredictor, or SlicedPredictor by slices)")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--input", nargs="+", required=True,
                        help="image files, folders or glob patterns such as 'dir/*.png'")
    parser.add_argument("--output", required=True, help="folder for drawn images and results.json")
    parser.add_argument("--confidence-threshold", type=float, default=0.5,
                        help="minimum score of the detections kept")
    parser.add_argument("--test-mode", choices=TEST_MODES, default=None,
                        help="MODEL.SRRCNN.TEST_MODE: sr = with the generator, hr = without, "
                             "size_aware = G on RoIs predicted small (default: the config's)")
    sliced = parser.add_argument_group(
        "sliced inference", "any of these predicts by slices (srrcnn.SlicedPredictor); settings "
        "not given come from TEST.SLICE.*")
    sliced.add_argument("--slice-size", type=int, metavar="PIXELS",
                        help="side of a square slice in image pixels (TEST.SLICE.SIZE)")
    sliced.add_argument("--slice-overlap", type=float, metavar="RATIO",
                        help="overlap of neighbouring slices, a fraction of the side in [0, 1) "
                             "(TEST.SLICE.OVERLAP)")
    sliced.add_argument("--full-image-pass", action="store_true", default=None,
                        help="also merge in a pass over the whole image (TEST.SLICE.FULL_IMAGE_PASS)")
    sliced.add_argument("--slice-merge", choices=MERGE_METHODS,
                        help="merge across slices: nms (batched_nms) or nmm (non-maximum "
                             "merging) (TEST.SLICE.MERGE)")
    add_register_arguments(parser)  # as train_net.py: class names of your own DATASETS.TEST
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS x.pth")
    return parser


def setup_cfg(args):
    """get_cfg + add_srrcnn_config + the file + --opts, then the demo's own flags on top."""
    cfg = get_cfg()
    srrcnn.add_srrcnn_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    # as detectron2's demo: one threshold for every kind of instance predictor
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = args.confidence_threshold
    if args.test_mode is not None:
        cfg.MODEL.SRRCNN.TEST_MODE = args.test_mode
    for dest, key in SLICE_FLAGS.items():
        if getattr(args, dest) is not None:
            cfg.TEST.SLICE[key] = getattr(args, dest)
    cfg.freeze()
    return cfg


def build_predictor(cfg, args, logger):
    """
    SlicedPredictor (settings: TEST.SLICE.*, which the flags set) when a slice flag is given,
    else DefaultPredictor. Raises ValueError on a bad setting.
    """
    if all(getattr(args, dest) is None for dest in SLICE_FLAGS):
        return DefaultPredictor(cfg)
    predictor = SlicedPredictor(cfg)
    logger.info("Sliced inference: %s", ", ".join(f"{k}={v}" for k, v in predictor.slice_args.items()))
    return predictor


def expand_inputs(patterns):
    """
    Returns:
        list[str]: image paths, sorted within each pattern, first occurrence kept.

    Raises:
        FileNotFoundError: naming the first pattern that matches no file.
    """
    paths = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if os.path.isdir(pattern):
            matched = [os.path.join(pattern, f) for f in sorted(os.listdir(pattern))
                       if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif any(c in pattern for c in "*?["):
            matched = [p for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]
        else:
            matched = [pattern] if os.path.isfile(pattern) else []
        if not matched:
            raise FileNotFoundError(f"--input {pattern!r} matched no image file")
        paths.extend(matched)
    return list(dict.fromkeys(paths))


def get_metadata(cfg):
    """Metadata of DATASETS.TEST[0] if that dataset is registered (class names), else empty."""
    if len(cfg.DATASETS.TEST) and cfg.DATASETS.TEST[0] in DatasetCatalog.list():
        return MetadataCatalog.get(cfg.DATASETS.TEST[0])
    return MetadataCatalog.get("__unused")


def log_class_names(cfg, metadata, logger):
    """Say which class names the pictures show, or why they show class ids."""
    names = metadata.get("thing_classes", None)
    if names:
        logger.info("Class names of %s: %s", cfg.DATASETS.TEST[0], ", ".join(names))
    else:
        logger.warning("No class names: DATASETS.TEST[0] (%s) is not a registered dataset, so the "
                       "pictures show class ids (register it with --register-coco, "
                       "--register-yolo or --register-visdrone)",
                       cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "empty")


def to_coco_results(instances, image_id, file_name, metadata):
    """COCO results of one image; category ids mapped back to the dataset's as COCOEvaluator."""
    results = instances_to_coco_json(instances, image_id)
    mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None)
    reverse = {v: k for k, v in mapping.items()} if mapping else None
    for r in results:
        r["file_name"] = file_name
        r["category_id"] = reverse[r["category_id"]] if reverse else r["category_id"] + 1
        r.pop("keypoints", None)
    return results


def output_path(output_dir, path, index, used):
    """<output>/<stem>.png, or <stem>_<index>.png when another input already took that name."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = f"{stem}.png" if f"{stem}.png" not in used else f"{stem}_{index}.png"
    used.add(name)
    return os.path.join(output_dir, name)


def run(cfg, paths, output_dir, logger, predictor=None):
    """
    Predict, draw and collect COCO results for every path.

    Args:
        predictor: DefaultPredictor(cfg) when None, or e.g. a SlicedPredictor.

    Returns:
        (list[dict], list[str]): the COCO results and the paths that could not be read.
    """
    predictor = DefaultPredictor(cfg) if predictor is None else predictor
    slice_args = getattr(predictor, "slice_args", None)
    metadata = get_metadata(cfg)
    log_class_names(cfg, metadata, logger)
    results, failed, used = [], [], set()
    for index, path in enumerate(tqdm.tqdm(paths, desc="demo", unit="image")):
        try:
            image = read_image(path, format="BGR")
        except (OSError, ValueError, SyntaxError) as e:
            logger.warning("Skipping unreadable image %s: %s", path, e)
            failed.append(path)
            continue
        instances = predictor(image)["instances"].to("cpu")
        visualizer = Visualizer(image[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
        drawn = visualizer.draw_instance_predictions(instances).get_image()
        cv2.imwrite(output_path(output_dir, path, index, used), drawn[:, :, ::-1])
        results.extend(to_coco_results(instances, index, path, metadata))
        if slice_args:
            slices = len(slice_grid(*image.shape[:2], slice_args["slice_size"], slice_args["overlap"]))
            logger.info("%s: %d instances (%d slices)", path, len(instances), slices)
        else:
            logger.info("%s: %d instances", path, len(instances))
    return results, failed


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logger(name="fvcore")
    setup_logger(name="srrcnn")
    logger = setup_logger()
    logger.info("Arguments: %s", args)
    if not os.path.isfile(args.config_file):
        logger.error("Config file not found: %s", args.config_file)
        return 2
    try:
        paths = expand_inputs(args.input)
    except FileNotFoundError as e:
        logger.error("%s", e)
        return 2
    try:
        register_from_args(args)  # class names only: files are read if the dataset is used
    except SystemExit as e:
        logger.error("%s", e)
        return 2
    try:
        cfg = setup_cfg(args)
    except (KeyError, AssertionError, ValueError) as e:  # yacs: unknown key, bad value type
        logger.error("Config error: %s (keys SR-RCNN adds: docs/CONFIG.md)",
                     e.args[0] if e.args else e)
        return 2
    try:
        predictor = build_predictor(cfg, args, logger)
    except ValueError as e:  # a value the model or the slicing rejects, e.g. an overlap of 1.5
        logger.error("Config error: %s", e)
        return 2
    os.makedirs(args.output, exist_ok=True)
    results, failed = run(cfg, paths, args.output, logger, predictor)
    with open(os.path.join(args.output, RESULTS_FILE), "w") as f:
        json.dump(results, f)
    logger.info("Wrote %d of %d images and %d detections to %s",
                len(paths) - len(failed), len(paths), len(results), args.output)
    if failed:
        logger.error("%d unreadable image(s): %s", len(failed), ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
