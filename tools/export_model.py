#!/usr/bin/env python
"""Export a Mask R-CNN or SR-RCNN model to TorchScript or ONNX (srrcnn.export; docs/EXPORT.md).

The model is built from the config and MODEL.WEIGHTS, traced (or, Mask R-CNN only, scripted)
through detectron2's export path on a sample image (--sample-image, or the first image of
DATASETS.TEST[0]) resized as DefaultPredictor resizes it, and written to --output. The
exported model is then run on the sample image beside the eager model and the largest
differences are logged; --run-eval also evaluates it on DATASETS.TEST[0] (COCO AP).

  python tools/export_model.py --config-file configs/quick_schedules/sr_rcnn_R_18_FPN_shapes_cpu.yaml \\
      --format onnx --export-method tracing --output out/export_sr \\
      MODEL.WEIGHTS output/sr_rcnn_shapes_cpu/model_final.pth MODEL.SRRCNN.TEST_MODE size_aware
"""
import argparse
import logging

import torch

import detectron2.data.transforms as T
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.data.detection_utils import read_image
from detectron2.evaluation import COCOEvaluator, inference_on_dataset, print_csv_format
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.utils.logger import setup_logger

from srrcnn import AtomicDetectionCheckpointer, add_srrcnn_config
from srrcnn.data import ensure_generated
from srrcnn.data.cli import add_register_arguments, register_from_args
from srrcnn.export import (
    EXPORT_METHODS,
    FORMATS,
    ONNX_OPSET,
    ExportedModel,
    export_scripting,
    export_tracing,
)

logger = logging.getLogger("export_model")


def get_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--format", choices=FORMATS, default="torchscript")
    p.add_argument("--export-method", choices=EXPORT_METHODS, default="tracing",
                   help="scripting: Mask R-CNN, TorchScript only")
    p.add_argument("--sample-image", help="image to trace on (default: first of DATASETS.TEST[0])")
    p.add_argument("--output", required=True, help="folder for model.ts / model.onnx")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help="ONNX opset (>= 16)")
    p.add_argument("--run-eval", action="store_true",
                   help="evaluate the exported model on DATASETS.TEST[0] (tracing only)")
    add_register_arguments(p)  # --register-coco / -yolo / -visdrone, as train_net.py
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="config KEY VALUE pairs (MODEL.WEIGHTS, MODEL.SRRCNN.TEST_MODE ...)")
    return p


def setup(args):
    """The datasets of the --register-* flags, then cfg from the file and the opts."""
    register_from_args(args)
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.freeze()
    return cfg


def sample_image(cfg, path=None) -> torch.Tensor:
    """(3, H, W) float32: the image read in INPUT.FORMAT and resized as DefaultPredictor does."""
    if path is None:
        if not cfg.DATASETS.TEST:
            raise SystemExit("No --sample-image and DATASETS.TEST is empty: give one of them")
        ensure_generated(cfg.DATASETS.TEST[0])
        path = DatasetCatalog.get(cfg.DATASETS.TEST[0])[0]["file_name"]
    image = read_image(path, format=cfg.INPUT.FORMAT)
    aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    image = aug.get_transform(image).apply_image(image)
    return torch.as_tensor(image.astype("float32").transpose(2, 0, 1))


def max_differences(expected, actual):
    """{field: largest absolute difference} of two Instances; None where the counts differ."""
    if len(expected) != len(actual):
        return None
    out = {}
    for k, v in expected.get_fields().items():
        a, b = getattr(v, "tensor", v), getattr(actual.get(k), "tensor", actual.get(k))
        out[k] = (a.float() - b.float()).abs().max().item() if len(a) else 0.0
    return out


def main(args):
    if args.export_method == "scripting" and (args.format != "torchscript" or args.run_eval):
        raise SystemExit("--export-method scripting: TorchScript only, without --run-eval")
    setup_logger(name="export_model")
    setup_logger(name="srrcnn")
    cfg = setup(args)
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        AtomicDetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting randomly initialised weights")
    image = sample_image(cfg, args.sample_image).to(model.device)
    try:
        if args.export_method == "scripting":
            path, adapter = export_scripting(model, args.output), None
        else:
            path, adapter = export_tracing(model, image, args.format, args.output, args.opset)
    except ValueError as e:
        raise SystemExit(f"Cannot export: {e}")

    exported = ExportedModel(path, adapter)
    with torch.no_grad():
        expected = model.inference([{"image": image}], do_postprocess=False)[0]
    diff = max_differences(expected.to("cpu"), exported(image))
    logger.info("Exported vs eager on the sample image (%d detections): largest |difference| %s",
                len(expected), diff if diff is not None else "n/a: the numbers of detections differ")
    if diff is None or max(diff.values(), default=0.0) > 1e-3:
        logger.warning("The exported model's outputs differ from the eager model's")

    if args.run_eval:
        if not cfg.DATASETS.TEST:
            raise SystemExit("--run-eval: DATASETS.TEST is empty; set it")
        dataset = cfg.DATASETS.TEST[0]
        ensure_generated(dataset)

        def run_exported(inputs):
            # the exported model leaves out the final resize to the original image size
            outputs = []
            for x in inputs:
                instances = exported(x["image"].float())
                instances = detector_postprocess(instances, x["height"], x["width"])
                outputs.append({"instances": instances})
            return outputs

        evaluator = COCOEvaluator(dataset, output_dir=args.output)
        loader = build_detection_test_loader(cfg, dataset)
        results = inference_on_dataset(run_exported, loader, evaluator)
        print_csv_format(results)
        return results
    return diff


if __name__ == "__main__":
    main(get_parser().parse_args())
