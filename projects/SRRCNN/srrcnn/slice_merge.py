# -*- coding: utf-8 -*-
"""
Merging the detections of overlapping slices (:mod:`srrcnn.sliced`), class-wise: detectron2's
``batched_nms``, or greedy non-maximum merging (SAHI's NMM: a group becomes one detection with
the union box and masks). Masks come as the mask head's M x M RoI masks (ROI_MASKS) and are
pasted into the image only for the detections kept.
"""
from typing import List, Sequence

import numpy as np
import torch

from detectron2.layers import batched_nms
from detectron2.structures import Boxes, Instances, ROIMasks, pairwise_iou
from detectron2.structures.boxes import pairwise_intersection

MERGE_METHODS = ("nms", "nmm")
MERGE_METRICS = ("iou", "ios")  # intersection over union / over the smaller box's area
# RoI masks (N, 1, M, M) of the windows' detections, in image coordinates until pasting
ROI_MASKS = "pred_roi_masks"
MASK_THRESHOLD = 0.5  # soft mask -> binary, as detector_postprocess's default


def nmm_groups(boxes: Boxes, scores: torch.Tensor, classes: torch.Tensor, thresh: float,
               metric: str = "iou") -> List[torch.Tensor]:
    """
    Greedy non-maximum merging, class-wise: the best-scoring detection not yet in a group leads
    a new group with every other ungrouped detection of its class that overlaps it by at least
    ``thresh`` (``metric`` "iou", or "ios": intersection over the smaller area).

    Args:
        boxes: N boxes; scores: (N,); classes: (N,) int.

    Returns:
        groups, each a (k,) long tensor of indices, its leader first; in descending leader score.
    """
    order = torch.argsort(scores, descending=True)
    groups = []
    for c in classes.unique():
        idx = order[classes[order] == c]  # this class, best first
        b = boxes[idx]
        if metric == "iou":
            overlap = pairwise_iou(b, b)
        else:
            area = b.area()
            overlap = pairwise_intersection(b, b) / torch.min(area[:, None], area[None, :])
        match = (overlap >= thresh).cpu().numpy()
        free = np.ones(len(idx), dtype=bool)
        for i in range(len(idx)):
            if free[i]:
                members = np.flatnonzero(match[i] & free)
                members = np.concatenate([[i], members[members != i]])
                free[members] = False
                groups.append(idx[torch.as_tensor(members, device=idx.device)])
    groups.sort(key=lambda g: -float(scores[g[0]]))  # stable: ties keep their class order
    return groups


def merge_groups(instances: Instances, groups: Sequence[torch.Tensor]) -> Instances:
    """
    One detection per group: the union box of its members, its leader's (first) score and
    class, the union of the members' masks. Masks, if any, are pasted into the image only now,
    for these detections, as the model's postprocessing (detector_postprocess) pastes them.

    Args:
        instances: N detections in image coordinates, with pred_boxes, scores, pred_classes and
            optionally ROI_MASKS (N, 1, M, M).
        groups: (k,) long index tensors, leader first.

    Returns:
        Instances with pred_boxes, scores, pred_classes (and pred_masks (len(groups), H, W)
        bool), like a model's output.
    """
    leaders = torch.stack([g[0] for g in groups]) if groups else torch.zeros(0, dtype=torch.long)
    merged = instances[leaders.to(instances.scores.device)]
    boxes = instances.pred_boxes.tensor
    multi = [i for i, g in enumerate(groups) if len(g) > 1]
    for i in multi:
        g = groups[i]
        merged.pred_boxes.tensor[i] = torch.cat([boxes[g, :2].min(0).values,
                                                 boxes[g, 2:].max(0).values])
    if merged.has(ROI_MASKS):
        height, width = merged.image_size
        merged.pred_masks = _paste(merged.get(ROI_MASKS), merged.pred_boxes, height, width)
        for i in multi:  # the other members' masks, one group at a time (bounded memory)
            g = groups[i][1:]
            rois, member_boxes = instances.get(ROI_MASKS)[g], instances.pred_boxes[g]
            merged.pred_masks[i] |= _paste(rois, member_boxes, height, width).any(0)
        merged.remove(ROI_MASKS)
    return merged


def _paste(roi_masks: torch.Tensor, boxes: Boxes, height: int, width: int) -> torch.Tensor:
    """(N, 1, M, M) soft RoI masks -> (N, height, width) bool, as detector_postprocess."""
    return ROIMasks(roi_masks[:, 0]).to_bitmasks(boxes, height, width, MASK_THRESHOLD).tensor


def merge_detections(instances: Instances, merge: str = "nms", metric: str = "iou",
                     thresh: float = 0.5, max_detections: int = 100) -> Instances:
    """
    Merge the detections of overlapping windows (and of the whole-image pass) class-wise.

    "nms": detectron2's ``batched_nms`` at IoU ``thresh``. "nmm": :func:`nmm_groups` at
    ``thresh`` of ``metric``, each group merged by :func:`merge_groups`. At most
    ``max_detections`` are kept, the best first.

    Args:
        instances: N detections in image coordinates, with pred_boxes, scores, pred_classes and
            optionally ROI_MASKS (N, 1, M, M).

    Returns:
        Instances as :func:`merge_groups` returns them.
    """
    boxes, scores, classes = instances.pred_boxes, instances.scores, instances.pred_classes
    if merge == "nms":
        groups = list(batched_nms(boxes.tensor, scores, classes, thresh)[:max_detections, None])
    else:
        groups = nmm_groups(boxes, scores, classes, thresh, metric)[:max_detections]
    return merge_groups(instances, groups)
