# -*- coding: utf-8 -*-
"""
G's texture input (MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE; EFPN's feature texture transfer, Deng
et al. 2021): the pixels of a RoI, which still hold the detail that its 1x RoI feature lacks,
pooled at TEXTURE_SCALE x the RoI resolution and folded into channels so that they stack on the
RoI feature: (R, 3 k^2, P, P).
"""
from typing import List, Optional, Sequence, Union

import torch

from detectron2.layers import roi_align
from detectron2.modeling.poolers import convert_boxes_to_pooler_format
from detectron2.structures import Boxes, Instances

# The ROI heads pass the (normalised, padded) image batch (N, 3, H, W) under this name in the
# `features` dict, next to the pyramid; heads that select features by name never see it.
IMAGE_KEY = "srrcnn_image"


def texture_channels(scale: int) -> int:
    """Channels of the texture of TEXTURE_SCALE ``scale``: 3 k^2 (0 when off)."""
    return 3 * scale * scale


def pool_texture(images: torch.Tensor, rois: torch.Tensor, scale: int, resolution: int) -> torch.Tensor:
    """
    The pixels of the RoIs, ROIAlignV2 (spatial scale 1, adaptive sampling, aligned) at
    (k P) x (k P), rearranged by ``pixel_unshuffle(., k)``: channel c k^2 + i k + j of output
    cell (y, x) is channel c of the pooled pixel (k y + i, k x + j).

    Args:
        images: (N, 3, H, W) the image batch (``ImageList.tensor``).
        rois: (R, 5) [batch index, x0, y0, x1, y1] in input pixels (:func:`texture_rois`).
        scale: k >= 1.
        resolution: P, the RoI features' side.

    Returns:
        (R, 3 k^2, P, P), in the images' dtype.
    """
    side = scale * resolution
    pooled = roi_align(images, rois.to(images.dtype), (side, side), 1.0, 0, True)  # (R, 3, kP, kP)
    # F.pixel_unshuffle(pooled, scale), written out: that returns an empty batch unchanged,
    # (0, 3, kP, kP) (torch 2.x), and a trace cannot branch on the RoI count
    r, c = pooled.shape[:2]
    x = pooled.reshape(r, c, resolution, scale, resolution, scale).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(r, c * scale * scale, resolution, resolution)


def texture_rois(boxes: Sequence[Union[Boxes, Instances]],
                 rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Args:
        boxes: per image, its `Boxes` or `Instances` with ``proposal_boxes``.
        rows: (R',) indices into the concatenation of all images' boxes; None: all of them.

    Returns:
        (R, 5) or (R', 5) [batch index, x0, y0, x1, y1], in the order of ``rows``.
    """
    box_lists: List[Boxes] = [b.proposal_boxes if isinstance(b, Instances) else b for b in boxes]
    rois = convert_boxes_to_pooler_format(box_lists)
    return rois if rows is None else rois[rows]
