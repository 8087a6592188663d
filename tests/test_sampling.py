# -*- coding: utf-8 -*-
"""Tests of srrcnn/sampling.py: which of the sampled RoIs G trains on."""
import torch

from detectron2.structures import Boxes, Instances

from srrcnn.sampling import sample_generator_rois


def _proposals(classes_per_image):
    out = []
    for classes in classes_per_image:
        n = len(classes)
        out.append(Instances((64, 64), proposal_boxes=Boxes(torch.rand(n, 4) * 32),
                             gt_classes=torch.tensor(classes, dtype=torch.long)))
    return out


def test_all_rois_when_not_positive():
    proposals = _proposals([[0, 4, 1], [4, 4]])
    idx, selected = sample_generator_rois(proposals, 0, 0.75, 4)
    assert idx.tolist() == [0, 1, 2, 3, 4] and selected is proposals


def test_foreground_first_capped_per_image():
    torch.manual_seed(0)
    proposals = _proposals([[0, 4, 1, 4, 2, 4, 4, 3], [4, 4, 0, 4]])
    idx, selected = sample_generator_rois(proposals, 4, 0.5, 4)  # K = 4: background
    assert [len(p) for p in selected] == [4, 4]
    assert (idx[:4] < 8).all() and (idx[4:] >= 8).all()  # per image, offset into the batch
    # image 0: 2 of its 4 foreground RoIs (fraction 0.5), background fills the rest
    assert (selected[0].gt_classes < 4).sum() == 2
    # image 1: its one foreground RoI, first, then 3 background
    assert selected[1].gt_classes[0] == 0 and (selected[1].gt_classes[1:] == 4).all()
    cat = torch.cat([p.gt_classes for p in proposals])
    assert torch.equal(cat[idx], torch.cat([p.gt_classes for p in selected]))


def test_only_eligible_rois():
    proposals = _proposals([[0, 1, 4, 4], [2, 4]])
    eligible = torch.tensor([False, True, False, True, True, False])
    idx, selected = sample_generator_rois(proposals, 0, 0.75, 4, eligible=eligible)
    assert sorted(idx.tolist()) == [1, 3, 4]
    assert [len(p) for p in selected] == [2, 1]
