# -*- coding: utf-8 -*-
"""Tests of srrcnn/slice_merge.py: merging the detections of overlapping slices (the slices
themselves: test_sliced.py)."""
import pytest
import torch

from detectron2.structures import Boxes, Instances

from srrcnn.slice_merge import ROI_MASKS, merge_detections, merge_groups, nmm_groups


def test_merge_is_class_wise_and_nmm_takes_the_union():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 8], [20, 20, 30, 30.]])
    inst = Instances((40, 40), pred_boxes=Boxes(boxes), scores=torch.tensor([0.9, 0.8, 0.7, 0.6]),
                     pred_classes=torch.tensor([0, 1, 1, 1]))
    nms = merge_detections(inst, "nms", "iou", 0.5)
    assert nms.pred_classes.tolist() == [0, 1, 1]
    assert nms.scores.tolist() == pytest.approx([0.9, 0.8, 0.6])
    inst.pred_boxes.tensor[2] = torch.tensor([0, 2, 12, 10.])  # IoU 0.67, IoS 0.8 with box 1
    nmm = merge_detections(inst, "nmm", "ios", 0.75)
    assert nmm.pred_boxes.tensor[1].tolist() == [0, 0, 12, 10] and len(nmm) == 3
    assert len(merge_detections(inst, "nmm", "iou", 0.75)) == 4


def test_nmm_groups_lead_with_the_best_score_and_stay_in_their_class():
    boxes = Boxes(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60.]]))
    scores, classes = torch.tensor([0.5, 0.9, 0.8, 0.7]), torch.tensor([0, 0, 1, 0])
    groups = nmm_groups(boxes, scores, classes, 0.5, "iou")
    assert [g.tolist() for g in groups] == [[1, 0], [2], [3]]


def test_merge_groups_pastes_the_union_of_the_members_masks():
    boxes = torch.tensor([[0, 0, 4, 4], [2, 2, 8, 8.]])
    inst = Instances((10, 10), pred_boxes=Boxes(boxes), scores=torch.tensor([0.9, 0.8]),
                     pred_classes=torch.tensor([0, 0]))
    inst.set(ROI_MASKS, torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)]))
    merged = merge_groups(inst, [torch.tensor([0, 1])])
    assert merged.pred_boxes.tensor.tolist() == [[0, 0, 8, 8]]  # the union box
    assert not merged.has(ROI_MASKS) and merged.pred_masks.shape == (1, 10, 10)
    # the leader's (empty) mask pasted into the union box, the member's into its own box
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[2:8, 2:8] = True
    assert torch.equal(merged.pred_masks[0], expected)
