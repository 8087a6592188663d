#!/usr/bin/env python
"""
Training-iteration time of SR-RCNN over Mask R-CNN, measured side by side in one process.

Both models are built from the same config except for what SR-RCNN adds, get the same batches
of the same dataset, and alternate: one Mask R-CNN step, one SR-RCNN step, ... (each with its
real optimizer step(s): SGD for Mask R-CNN; SRGANTrainer's G and D steps for SR-RCNN). Prints
the median seconds per iteration of each and, last, one line of name=value ratios.

    python benchmarks/train_speed.py [--config-file CFG] [--iters 10] [--warmup 2] [opts ...]
"""
import argparse
import itertools
import statistics
import time

import torch

from detectron2.config import get_cfg
from detectron2.data import build_detection_train_loader
from detectron2.engine import SimpleTrainer
from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from srrcnn import (
    SRGANTrainer,
    add_srrcnn_config,
    build_discriminator_optimizer,
    build_generator_optimizer,
)
from srrcnn.data import CheckedDatasetMapper


def make_cfg(config_file, opts, sr):
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    if sr:
        cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.ROI_HEADS.NAME = "SRRCNN", "SRROIHeads"
    else:
        cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.ROI_HEADS.NAME = "GeneralizedRCNN", "StandardROIHeads"
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg


def build_trainer(cfg, batches):
    seed_all_rng(0)
    model = build_model(cfg)
    opt = build_discriminator_optimizer(cfg, model)
    data = itertools.cycle(batches)
    if cfg.MODEL.META_ARCHITECTURE == "SRRCNN":
        return SRGANTrainer(model, data, opt, build_generator_optimizer(cfg, model))
    return SimpleTrainer(model, data, opt)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--config-file", default="configs/quick_schedules/mask_rcnn_R_18_FPN_shapes_cpu.yaml")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    base_cfg, sr_cfg = (make_cfg(args.config_file, args.opts, sr) for sr in (False, True))
    loader = iter(build_detection_train_loader(base_cfg, mapper=CheckedDatasetMapper(base_cfg, True)))
    batches = [next(loader) for _ in range(args.iters + args.warmup)]
    trainers = {"mask_rcnn": build_trainer(base_cfg, batches), "sr_rcnn": build_trainer(sr_cfg, batches)}
    times = {k: [] for k in trainers}
    with EventStorage(0) as storage:
        for i in range(args.iters + args.warmup):
            for name, tr in trainers.items():  # interleaved, same batch
                tr.storage, tr.iter = storage, i
                t = time.perf_counter()
                tr.run_step()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"device={base_cfg.MODEL.DEVICE} threads={torch.get_num_threads()} "
          f"batch={base_cfg.SOLVER.IMS_PER_BATCH} iters={args.iters}")
    for k, v in med.items():
        print(f"{k}: median {v:.3f} s/iter (min {min(times[k]):.3f}, max {max(times[k]):.3f})")
    print(f"train_iter_ratio={med['sr_rcnn'] / med['mask_rcnn']:.3f}")


if __name__ == "__main__":
    main()
