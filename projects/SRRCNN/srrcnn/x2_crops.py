# -*- coding: utf-8 -*-
"""
The "full_to_double" generator pair (MODEL.SRRCNN.PAIR): G's target is the RoI feature of the
same box in a 2x pass, computed only on crops around small ground-truth objects.

In training the meta-architecture picks up to K windows per image (square, CROP_SIZE input
pixels, centred on small ground-truth boxes, shifted inside the image), upsamples each 2x
(bilinear, as a resize of the image would), runs the backbone on them without gradient and
hands their pyramids to the ROI heads (feature names + X2_SUFFIX, windows under X2_WINDOWS).
The ROI heads train G on the sampled proposals that lie inside a window: G's input is the
proposal's RoI feature of the normal (1x) pass, the same kind of input G meets at test.
"""
from typing import List, Optional, Tuple

import torch

from detectron2.layers import ROIAlign
from detectron2.structures import Instances

# the 2x crops' pyramid levels, under the full pyramid's names plus this suffix ("p2_x2")
X2_SUFFIX = "_x2"
# (K, 5) float windows [image index, x0, y0, x1, y1] in input pixels, in `features`
X2_WINDOWS = "x2_windows"
X2_SCALE = 2.0


def select_windows(gt_instances: List[Instances], image_sizes: List[Tuple[int, int]],
                   crop_size: int, max_gt_size: float, max_per_image: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """
    Square windows around small ground-truth objects, at most `max_per_image` per image,
    chosen at random among the objects with sqrt(box area) < `max_gt_size`.

    Args:
        gt_instances: per image, with ``gt_boxes``.
        image_sizes: per image, (h, w) of the image before padding.
        crop_size: the side of a window in input pixels; a window is centred on its object and
            shifted to lie inside the image (an image smaller than it gets none).
        generator: for the random choice (None: torch's global one).

    Returns:
        (K, 5) float [image index, x0, y0, x1, y1], on the boxes' device.
    """
    device = gt_instances[0].gt_boxes.device if gt_instances else torch.device("cpu")
    windows = []
    for i, (inst, (h, w)) in enumerate(zip(gt_instances, image_sizes)):
        if h < crop_size or w < crop_size or len(inst) == 0:
            continue
        boxes = inst.gt_boxes
        small = torch.nonzero(boxes.area().clamp(min=0).sqrt() < max_gt_size).squeeze(1)
        if len(small) == 0:
            continue
        order = torch.randperm(len(small), generator=generator).to(small.device)
        chosen = small[order[:max_per_image]]
        center = boxes.get_centers()[chosen]  # (k, 2)
        x0 = (center[:, 0] - crop_size / 2).round().clamp(0, w - crop_size)
        y0 = (center[:, 1] - crop_size / 2).round().clamp(0, h - crop_size)
        index = torch.full_like(x0, float(i))
        windows.append(torch.stack([index, x0, y0, x0 + crop_size, y0 + crop_size], dim=1))
    if not windows:
        return torch.zeros(0, 5, device=device)
    return torch.cat(windows)


def upscale_crops(images: torch.Tensor, windows: torch.Tensor, crop_size: int,
                  scale: float = X2_SCALE) -> torch.Tensor:
    """
    The windows of a (normalised, padded) image batch, each upsampled by `scale` with
    bilinear interpolation (ROIAlignV2 with one sample per output pixel: exactly a bilinear
    resize with half-pixel centres).

    Args:
        images: (N, 3, H, W).
        windows: (K, 5) from :func:`select_windows`.

    Returns:
        (K, 3, S', S') with S' = round(crop_size * scale).
    """
    side = int(round(crop_size * scale))
    align = ROIAlign((side, side), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    return align(images, windows.to(images.dtype))


def assign_to_windows(proposals: List[Instances], windows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    For every proposal (concatenated over images), the first window of its image that holds
    its whole box, or -1.

    Args:
        proposals: per image, with ``proposal_boxes`` in input pixels.
        windows: (K, 5) from :func:`select_windows`.

    Returns:
        (R,) long window index or -1, and (R,) bool "inside a window".
    """
    boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])  # (R, 4)
    image = torch.cat([torch.full((len(p),), i, device=boxes.device, dtype=torch.long)
                       for i, p in enumerate(proposals)])
    if len(windows) == 0 or len(boxes) == 0:
        none = torch.full((len(boxes),), -1, dtype=torch.long, device=boxes.device)
        return none, none >= 0
    w = windows.to(boxes.device)
    inside = ((image[:, None] == w[None, :, 0].long())
              & (boxes[:, None, 0] >= w[None, :, 1]) & (boxes[:, None, 1] >= w[None, :, 2])
              & (boxes[:, None, 2] <= w[None, :, 3]) & (boxes[:, None, 3] <= w[None, :, 4]))
    found = inside.any(dim=1)
    first = inside.float().argmax(dim=1)  # first True per row (0 where none: masked below)
    return torch.where(found, first, torch.full_like(first, -1)), found
