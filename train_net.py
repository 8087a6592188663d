#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""
SR-RCNN (and the Mask R-CNN baseline) training and evaluation script.

This script is a simplified version of detectron2's tools/train_net.py. What SR-RCNN's
training adds (two optimizers and LR schedulers, exact resume, atomic checkpoints) is in
srrcnn.SRRCNNTrainer; this Trainer only chooses the evaluator.
"""
import os

import detectron2.utils.comm as comm
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.logger import setup_logger

from srrcnn import AtomicDetectionCheckpointer, SRRCNNTrainer, add_srrcnn_config
from srrcnn.data import add_register_arguments, register_from_args


class Trainer(SRRCNNTrainer):
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """COCO box AP (and mask AP with MASK_ON), with APs/APm/APl."""
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluator(dataset_name, output_dir=output_folder)


def setup(args):
    """
    Create configs and perform basic setups.
    """
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    try:
        cfg.merge_from_file(args.config_file)
        cfg.merge_from_list(args.opts)
    except (KeyError, AssertionError, ValueError) as e:
        # yacs: KeyError / AssertionError for unknown keys or a missing file, ValueError for types
        raise SystemExit(f"Config error: {str(e.args[0] if e.args else e).rstrip('.!')}. "
                         "The keys SR-RCNN adds are listed in docs/CONFIG.md.")
    cfg.freeze()
    default_setup(cfg, args)
    # Setup logger for "srrcnn" module
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="srrcnn")
    return cfg


def main(args):
    register_from_args(args, load=True)
    cfg = setup(args)

    if args.eval_only:
        if not cfg.DATASETS.TEST:
            raise SystemExit("--eval-only: no dataset to evaluate; set DATASETS.TEST, e.g. "
                             "DATASETS.TEST '(\"my_val\",)'")
        model = Trainer.build_model(cfg)
        AtomicDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        by_mode = Trainer.test_modes(cfg, model, args.test_modes or [cfg.MODEL.SRRCNN.TEST_MODE])
        return by_mode if len(by_mode) > 1 else next(iter(by_mode.values()))

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def argument_parser():
    parser = add_register_arguments(default_argument_parser())  # --register-coco, -yolo, ...
    parser.add_argument(
        "--test-modes", type=lambda s: s.split(","), metavar="sr,hr",
        help="with --eval-only: evaluate SR-RCNN in each test mode (sr: with G, hr: without G, "
        "size_aware: G on RoIs predicted small) side by side; default: MODEL.SRRCNN.TEST_MODE",
    )
    return parser


if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
