# -*- coding: utf-8 -*-
"""Tests of srrcnn/fast_rcnn.py: the discriminator's output layers (SPEC §2.6)."""

import unittest

import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances

from srrcnn.fast_rcnn import SRFastRCNNOutputLayers
from srrcnn.losses import discriminator_adversarial_loss


def _predictor(cls=SRFastRCNNOutputLayers, input_shape=ShapeSpec(channels=8)):
    return cls(
        input_shape=input_shape,
        box2box_transform=Box2BoxTransform(weights=(10, 10, 5, 5)),
        num_classes=4,
    )


def _empty_proposals():
    proposal = Instances((10, 10))
    proposal.proposal_boxes = Boxes(torch.zeros(0, 4))
    proposal.gt_boxes = Boxes(torch.zeros(0, 4))
    proposal.gt_classes = torch.zeros(0, dtype=torch.long)
    return [proposal]


class TestSRFastRCNNOutputLayers(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(42)

    def test_forward_unchanged(self):
        pred = _predictor()
        self.assertIsInstance(pred, FastRCNNOutputLayers)
        self.assertIsInstance(pred.adv_score, nn.Linear)
        self.assertEqual((pred.adv_score.in_features, pred.adv_score.out_features), (8, 1))

        x = torch.randn(6, 8)
        scores, deltas = pred(x)
        self.assertEqual(scores.shape, (6, 5))  # K + 1
        self.assertEqual(deltas.shape, (6, 16))  # 4K

        # same outputs as detectron2's predictor with the same weights: the extra logit
        # is the only addition
        base = _predictor(FastRCNNOutputLayers)
        incompatible = base.load_state_dict(pred.state_dict(), strict=False)
        self.assertEqual(
            sorted(incompatible.unexpected_keys), ["adv_score.bias", "adv_score.weight"]
        )
        self.assertEqual(incompatible.missing_keys, [])
        base_scores, base_deltas = base(x)
        torch.testing.assert_close(scores, base_scores)
        torch.testing.assert_close(deltas, base_deltas)

    def test_real_fake_logits(self):
        pred = _predictor()
        x = torch.randn(6, 8)
        logits = pred.real_fake_logits(x)
        self.assertEqual(logits.shape, (6,))
        torch.testing.assert_close(logits, pred.adv_score(x)[:, 0])

        # 4-d box-head features are flattened
        pred = _predictor(input_shape=ShapeSpec(channels=2, height=3, width=3))
        self.assertEqual(pred.adv_score.in_features, 18)
        x = torch.randn(5, 2, 3, 3)
        self.assertEqual(pred.real_fake_logits(x).shape, (5,))
        self.assertEqual(pred(x)[0].shape, (5, 5))

    def test_from_config(self):
        from srrcnn.testing import get_tiny_cfg

        cfg = get_tiny_cfg()
        pred = SRFastRCNNOutputLayers(cfg, ShapeSpec(channels=8))
        self.assertEqual(pred.num_classes, cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        self.assertEqual(pred.adv_score.in_features, 8)

    def test_empty_batch(self):
        pred = _predictor()
        x = torch.randn(0, 8, requires_grad=True)
        scores, deltas = pred(x)
        self.assertEqual(scores.shape, (0, 5))
        self.assertEqual(deltas.shape, (0, 16))
        logits = pred.real_fake_logits(x)
        self.assertEqual(logits.shape, (0,))

        losses = pred.losses((scores, deltas), _empty_proposals())
        losses["loss_D_adv"] = discriminator_adversarial_loss(logits, logits)
        for name, v in losses.items():
            self.assertEqual(v.item(), 0.0, name)
        sum(losses.values()).backward()
        for p in (pred.cls_score.weight, pred.bbox_pred.weight, pred.adv_score.weight):
            self.assertIsNotNone(p.grad)
            self.assertEqual(p.grad.abs().sum().item(), 0.0)
        self.assertEqual(x.grad.shape, (0, 8))


if __name__ == "__main__":
    unittest.main()
