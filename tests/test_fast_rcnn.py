# -*- coding: utf-8 -*-
"""Tests of srrcnn/fast_rcnn.py: the discriminator's output layers (SPEC §2.6). The predictor
is built from kwargs by the ``roi`` fixture."""
import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers

from srrcnn.fast_rcnn import SRFastRCNNOutputLayers
from srrcnn.losses import discriminator_adversarial_loss


def test_forward_unchanged(roi):
    pred = roi.predictor()
    assert isinstance(pred, FastRCNNOutputLayers) and isinstance(pred.adv_score, nn.Linear)
    assert (pred.adv_score.in_features, pred.adv_score.out_features) == (8, 1)

    x = torch.randn(6, 8)
    scores, deltas = pred(x)
    assert scores.shape == (6, 5)  # K + 1
    assert deltas.shape == (6, 16)  # 4K

    # same outputs as detectron2's predictor with the same weights: the extra logit
    # is the only addition
    base = roi.predictor(FastRCNNOutputLayers)
    incompatible = base.load_state_dict(pred.state_dict(), strict=False)
    assert sorted(incompatible.unexpected_keys) == ["adv_score.bias", "adv_score.weight"]
    assert incompatible.missing_keys == []
    base_scores, base_deltas = base(x)
    torch.testing.assert_close(scores, base_scores)
    torch.testing.assert_close(deltas, base_deltas)


def test_real_fake_logits(roi):
    pred = roi.predictor()
    x = torch.randn(6, 8)
    logits = pred.real_fake_logits(x)
    assert logits.shape == (6,)
    torch.testing.assert_close(logits, pred.adv_score(x)[:, 0])

    # 4-d box-head features are flattened
    pred = roi.predictor(channels=2, height=3, width=3)
    assert pred.adv_score.in_features == 18
    x = torch.randn(5, 2, 3, 3)
    assert pred.real_fake_logits(x).shape == (5,)
    assert pred(x)[0].shape == (5, 5)


def test_from_config(roi):
    cfg = roi.cfg()
    pred = SRFastRCNNOutputLayers(cfg, ShapeSpec(channels=8))
    assert pred.num_classes == cfg.MODEL.ROI_HEADS.NUM_CLASSES
    assert pred.adv_score.in_features == 8


def test_empty_batch(roi):
    pred = roi.predictor()
    x = torch.randn(0, 8, requires_grad=True)
    scores, deltas = pred(x)
    assert scores.shape == (0, 5) and deltas.shape == (0, 16)
    logits = pred.real_fake_logits(x)
    assert logits.shape == (0,)

    losses = pred.losses((scores, deltas), roi.empty_proposals())
    losses["loss_D_adv"] = discriminator_adversarial_loss(logits, logits)
    for name, v in losses.items():
        assert v.item() == 0.0, name
    sum(losses.values()).backward()
    for p in (pred.cls_score.weight, pred.bbox_pred.weight, pred.adv_score.weight):
        assert p.grad is not None and p.grad.abs().sum().item() == 0.0
    assert x.grad.shape == (0, 8)
