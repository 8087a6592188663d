# -*- coding: utf-8 -*-
"""SR-RCNN's meta-architecture: GeneralizedRCNN whose backbone also sees the 0.5x image."""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch.autograd.profiler import record_function

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

from .rng import X2_CROPS, training_step_stream
from .roi_heads import LR_SUFFIX
from .x2_crops import X2_SCALE, X2_SUFFIX, X2_WINDOWS, select_windows, upscale_crops

LR_RESIZE_MODES = ("antialias", "bilinear", "area")


def downsample_batch(x: torch.Tensor, scale: float, mode: str, size_divisibility: int) -> torch.Tensor:
    """
    The low-resolution copy of a padded, normalised image batch (or, with scale > 1, the
    upsampled one of a test-time diagnostic).

    Args:
        x: (N, 3, H, W), H and W multiples of `size_divisibility` (ImageList padding).
        scale: e.g. 0.5 (or 2); the output is exactly `scale` x the input where H*scale is whole.
        mode: "antialias", "bilinear" or "area" (see MODEL.SRRCNN.LR_RESIZE).
        size_divisibility: the backbone's; the output is zero-padded to a multiple of it
            (the same padding value as ImageList.from_tensors uses).

    Returns:
        (N, 3, H', W') with H' = ceil(round(H * scale) / d) * d.
    """
    if mode not in LR_RESIZE_MODES:
        raise ValueError(f"MODEL.SRRCNN.LR_RESIZE must be one of {LR_RESIZE_MODES}, got {mode!r}")
    size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
    if mode == "area":
        y = F.interpolate(x, size=size, mode="area")
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                          antialias=(mode == "antialias"))
    d = max(size_divisibility, 1)
    pad_h, pad_w = -size[0] % d, -size[1] % d
    return F.pad(y, (0, pad_w, 0, pad_h)) if pad_h or pad_w else y


@META_ARCH_REGISTRY.register()
class SRRCNN(GeneralizedRCNN):
    """
    Mask R-CNN whose backbone also runs on a 0.5x copy of every training image (SPEC §2.1-2.3).

    Training: one backbone (shared weights) on the batch and on its 0.5x copy; the RPN sees
    only the full-resolution features; the ROI heads (:class:`SRROIHeads`) get both pyramids.
    Inference is GeneralizedRCNN's, unchanged: there is no 0.5x pass at test time.
    """

    @configurable
    def __init__(self, *, lr_scale: float = 0.5, lr_resize: str = "antialias",
                 pair: str = "half_to_full", x2_crop_size: int = 64, x2_max_crops: int = 4,
                 x2_max_gt_size: float = 32.0, **kwargs):
        """
        Args:
            lr_scale: scale of the low-resolution copy (0.5).
            lr_resize: how it is made, see :func:`downsample_batch`.
            pair: MODEL.SRRCNN.PAIR. "full_to_double": no 0.5x pass; instead a 2x pass over
                crops around small ground-truth objects (:mod:`srrcnn.x2_crops`).
            x2_crop_size, x2_max_crops, x2_max_gt_size: MODEL.SRRCNN.X2.*.
            kwargs: as for :class:`GeneralizedRCNN`.
        """
        super().__init__(**kwargs)
        d = max(self.backbone.size_divisibility, 1)
        if pair == "full_to_double" and (2 * x2_crop_size) % d:
            raise ValueError(f"MODEL.SRRCNN.X2.CROP_SIZE * 2 must be a multiple of the backbone's "
                             f"size divisibility {d}, got CROP_SIZE {x2_crop_size}")
        self.pair = pair
        self.x2_crop_size, self.x2_max_crops, self.x2_max_gt_size = x2_crop_size, x2_max_crops, x2_max_gt_size
        if lr_resize not in LR_RESIZE_MODES:
            raise ValueError(f"MODEL.SRRCNN.LR_RESIZE must be one of {LR_RESIZE_MODES}, got {lr_resize!r}")
        if not 0 < lr_scale < 1:
            raise ValueError(f"MODEL.SRRCNN.LR_SCALE must be in (0, 1), got {lr_scale}")
        self.lr_scale = lr_scale
        self.lr_resize = lr_resize

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        sr = cfg.MODEL.SRRCNN
        ret.update(lr_scale=sr.LR_SCALE, lr_resize=sr.LR_RESIZE, pair=sr.PAIR,
                   x2_crop_size=sr.X2.CROP_SIZE, x2_max_crops=sr.X2.MAX_CROPS_PER_IMAGE,
                   x2_max_gt_size=sr.X2.MAX_GT_SIZE)
        return ret

    def inference(self, batched_inputs: List[Dict[str, torch.Tensor]], *args, **kwargs):
        """
        GeneralizedRCNN's inference; in the diagnostic test modes the backbone's output also
        holds a second pyramid: "sr_lr", the 0.5x one (names + LR_SUFFIX), made as in
        training; "size_aware_x2", the image upsampled 2x (bilinear, as the training crops;
        names + X2_SUFFIX).
        """
        extra = {"sr_lr": (self.lr_scale, self.lr_resize, LR_SUFFIX),
                 "size_aware_x2": (X2_SCALE, "bilinear", X2_SUFFIX)}.get(self.roi_heads.test_mode)
        if extra is None:
            return super().inference(batched_inputs, *args, **kwargs)
        scale, resize, suffix = extra

        def add_pyramid(backbone, args, features):
            handle.remove()  # the second pass below must not call this hook again
            images = downsample_batch(args[0], scale, resize, backbone.size_divisibility)
            features.update({k + suffix: v for k, v in backbone(images).items()})
            return features

        handle = self.backbone.register_forward_hook(add_pyramid)
        try:
            return super().inference(batched_inputs, *args, **kwargs)
        finally:
            handle.remove()

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        """
        Args and returns: as :meth:`GeneralizedRCNN.forward`. In training the dict of losses
        holds G's terms (``loss_G_*``) and D's terms (all others).
        """
        if not self.training:
            return self.inference(batched_inputs)
        if "instances" not in batched_inputs[0]:
            raise ValueError("SRRCNN training needs 'instances' (ground truth) in every input")
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]

        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        if self.pair == "full_to_double":
            features.update(self.double_crop_features(images, gt_instances))
        else:
            with record_function("srrcnn.backbone_lr"):
                lr_images = downsample_batch(images.tensor, self.lr_scale, self.lr_resize,
                                             self.backbone.size_divisibility)
                lr_features = self.backbone(lr_images)
            features.update({k + LR_SUFFIX: v for k, v in lr_features.items()})
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)

        if self.vis_period > 0:
            from detectron2.utils.events import get_event_storage

            storage = get_event_storage()
            if storage.iter % self.vis_period == 0:
                self.visualize_training(batched_inputs, proposals)

        losses = {}
        losses.update(detector_losses)
        losses.update(proposal_losses)
        return losses

    @torch.no_grad()
    def double_crop_features(self, images, gt_instances) -> Dict[str, torch.Tensor]:
        """
        The "full_to_double" targets' pyramid: the backbone, without gradient, on 2x crops
        around small ground-truth objects.

        Returns:
            {name + X2_SUFFIX: (K, C, H', W') for each pyramid level, X2_WINDOWS: (K, 5)}.
        """
        with record_function("srrcnn.backbone_x2"):
            with training_step_stream(X2_CROPS):
                windows = select_windows(gt_instances, images.image_sizes, self.x2_crop_size,
                                         self.x2_max_gt_size, self.x2_max_crops)
            out = {X2_WINDOWS: windows}
            if len(windows):
                crops = upscale_crops(images.tensor, windows, self.x2_crop_size)
                out.update({k + X2_SUFFIX: v for k, v in self.backbone(crops).items()})
            return out
