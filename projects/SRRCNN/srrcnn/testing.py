# -*- coding: utf-8 -*-
"""Test-only helpers, as detectron2/utils/testing.py: tiny configs, models and inputs on CPU."""
import os
from typing import Dict, List

import numpy as np
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, PolygonMasks

from .config import add_srrcnn_config

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CONFIG_DIR = os.path.join(REPO_ROOT, "configs")


def get_tiny_cfg(sr: bool = True, config_file: str = "quick_schedules/Base-Shapes-CPU.yaml"):
    """
    A CPU config of the quick schedule shrunk for unit tests: ResNet-18-FPN with 32 channels,
    64 px images, 32 RoIs per image, 4 classes, no weights. ``sr`` selects SR-RCNN or Mask R-CNN.
    """
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIG_DIR, config_file))
    if sr:
        cfg.MODEL.META_ARCHITECTURE = "SRRCNN"
        cfg.MODEL.ROI_HEADS.NAME = "SRROIHeads"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32  # GroupNorm(32) in the quick config: a multiple of 32
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.SRRCNN.GENERATOR.WIDTH = 16
    cfg.MODEL.SRRCNN.GENERATOR.NUM_BLOCKS = 2
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.SRRCNN.G_ROIS_PER_IMAGE = 0  # G on every sampled RoI, as the thesis (subset: own tests)
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 32
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 64
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 64
    return cfg


def get_model_no_weights(cfg) -> torch.nn.Module:
    """Build the model of `cfg` on the CPU without loading weights."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    return build_model(cfg)


def tiny_inputs(num_images: int = 2, size=(64, 80), num_boxes: int = 3, seed: int = 0,
                num_classes: int = 4) -> List[Dict]:
    """
    Random training inputs in detectron2's format: "image" (3, H, W) float in [0, 255] and
    "instances" with gt_boxes, gt_classes and square polygon gt_masks. ``num_boxes=0``
    gives images without objects.
    """
    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = []
    for _ in range(num_images):
        inst = Instances((h, w))
        xy = torch.rand(num_boxes, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = 4 + torch.rand(num_boxes, 2, generator=g) * torch.tensor([w * 0.4 - 4, h * 0.4 - 4])
        boxes = torch.cat([xy, xy + wh], dim=1)
        inst.gt_boxes = Boxes(boxes)
        inst.gt_classes = torch.randint(num_classes, (num_boxes,), generator=g)
        inst.gt_masks = PolygonMasks(
            [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in boxes.tolist()]
        )
        image = torch.rand(3, h, w, generator=g) * 255
        out.append({"image": image, "instances": inst, "height": h, "width": w})
    return out


def write_yolo_sample(root, class_names, num_images: int = 4, size=(128, 96), seed: int = 0):
    """
    Write a tiny YOLO folder under ``root``: ``images/<i>.png`` with 1-3 filled rectangles on
    noise (colour by class), ``labels/<i>.txt`` with their normalized boxes, ``names.txt``.

    Returns:
        (image_dir, label_dir, names_file), as ``--register-yolo`` takes them.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    image_dir, label_dir = os.path.join(root, "images"), os.path.join(root, "labels")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    for i in range(num_images):
        image = rng.integers(0, 64, (h, w, 3), dtype=np.uint8)
        lines = []
        for _ in range(rng.integers(1, 4)):
            c = int(rng.integers(len(class_names)))
            bw, bh = int(rng.integers(12, w // 2)), int(rng.integers(12, h // 2))
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            image[y0:y0 + bh, x0:x0 + bw] = 255 * (np.arange(3) == c % 3)
            lines.append(f"{c} {(x0 + bw / 2) / w} {(y0 + bh / 2) / h} {bw / w} {bh / h}")
        Image.fromarray(image).save(os.path.join(image_dir, f"{i}.png"))
        with open(os.path.join(label_dir, f"{i}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    names_file = os.path.join(root, "names.txt")
    with open(names_file, "w") as f:
        f.write("\n".join(class_names) + "\n")
    return image_dir, label_dir, names_file
