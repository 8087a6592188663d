# -*- coding: utf-8 -*-
"""Which of the sampled RoIs G trains on (MODEL.SRRCNN.G_ROIS_PER_IMAGE, G_POSITIVE_FRACTION),
by detectron2's ``subsample_labels``, as the ROI heads sample their RoIs."""
from typing import List, Optional, Tuple

import torch

from detectron2.modeling.sampling import subsample_labels
from detectron2.structures import Instances


def sample_generator_rois(proposals: List[Instances], num_per_image: int, positive_fraction: float,
                          num_classes: int, eligible: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, List[Instances]]:
    """
    The RoIs G trains on: per image at most ``num_per_image`` of the sampled proposals, up to
    ``positive_fraction`` of them foreground (foreground first, then background), or all of
    them when ``num_per_image <= 0`` (thesis).

    Args:
        proposals: per image, sampled proposals with ``gt_classes`` (K = ``num_classes``:
            background).
        eligible: None, or (R,) bool over the concatenated proposals: only these may be chosen.

    Returns:
        (R_G,) indices into the concatenated proposals, and the selected proposals per image.
    """
    if num_per_image <= 0 and eligible is None:
        total = sum(len(p) for p in proposals)
        return torch.arange(total, device=proposals[0].proposal_boxes.device), proposals
    indices, selected, offset = [], [], 0
    for p in proposals:
        labels = p.gt_classes
        if eligible is not None:
            labels = labels.clone()
            labels[~eligible[offset:offset + len(p)]] = -1  # ignored by subsample_labels
        n = num_per_image if num_per_image > 0 else len(p)
        pos, neg = subsample_labels(labels, n, positive_fraction, num_classes)
        keep = torch.cat([pos, neg])
        indices.append(keep + offset)
        selected.append(p[keep])
        offset += len(p)
    return torch.cat(indices), selected
