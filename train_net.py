#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""
SR-RCNN (and the Mask R-CNN baseline) training and evaluation script.

This script is a simplified version of detectron2's tools/train_net.py: the Trainer differs
only in what SR-RCNN needs (two optimizers and two LR schedulers; see srrcnn.gan_trainer).
"""
import os
import weakref

import detectron2.utils.comm as comm
from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, TrainerBase, default_argument_parser, default_setup, hooks, launch
from detectron2.evaluation import COCOEvaluator, verify_results
from detectron2.utils.logger import setup_logger

from srrcnn import (
    AtomicDetectionCheckpointer,
    DataResumeHook,
    GeneratorLRScheduler,
    RNGStateHook,
    SRGANTrainer,
    add_srrcnn_config,
    build_discriminator_optimizer,
    build_generator_lr_scheduler,
    build_resumable_train_loader,
    build_step_trainer,
)
from srrcnn.data import CheckedDatasetMapper, add_register_arguments, register_from_args
from srrcnn.evaluation import evaluate_test_modes, report_test_modes


class Trainer(DefaultTrainer):
    """
    DefaultTrainer that trains SR-RCNN with :class:`SRGANTrainer` (G and D steps every
    iteration) and any other model as detectron2 does. Checkpoints are written atomically and
    hold what an exact ``--resume`` needs (both optimizers and schedulers, RNG states).
    """

    def __init__(self, cfg):
        # DefaultTrainer.__init__, except that the per-iteration trainer is chosen by
        # build_step_trainer (DefaultTrainer hard-codes SimpleTrainer / AMPTrainer), the data
        # stream can resume mid-way, and checkpoints are atomic.
        TrainerBase.__init__(self)
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader, self._sampler = build_resumable_train_loader(cfg, CheckedDatasetMapper(cfg, True))
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicDetectionCheckpointer(self._trainer.model, cfg.OUTPUT_DIR,
                                                        trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        ret = super().build_hooks()
        ret.insert(0, RNGStateHook())
        if self._sampler is not None:
            images_per_worker = self.cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
            ret.insert(0, DataResumeHook(self._sampler, images_per_worker))
        if isinstance(self._trainer, SRGANTrainer):
            g_opt = self._trainer.g_optimizer
            g_sched = build_generator_lr_scheduler(self.cfg, g_opt)
            d_sched = next(i for i, h in enumerate(ret) if type(h) is hooks.LRScheduler)
            ret.insert(d_sched + 1, GeneratorLRScheduler(g_opt, g_sched))
        return ret

    @classmethod
    def build_optimizer(cls, cfg, model):
        """D's SGD optimizer: every parameter but the generator's (G has its own AdamW)."""
        return build_discriminator_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=CheckedDatasetMapper(cfg, True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=CheckedDatasetMapper(cfg, False))

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
                         "The keys SR-RCNN adds are listed in README.md, 'Config keys'.")
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
        modes = args.test_modes or [cfg.MODEL.SRRCNN.TEST_MODE]
        by_mode = evaluate_test_modes(model, modes, lambda m: Trainer.test(cfg, m))
        if comm.is_main_process():
            for res in by_mode.values():
                verify_results(cfg, res)
            report_test_modes(cfg, by_mode)
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
