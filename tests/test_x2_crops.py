# -*- coding: utf-8 -*-
"""Tests of srrcnn/x2_crops.py and the "full_to_double" pair it serves (ROI heads, meta-arch)."""

import unittest

import pytest
import torch
import torch.nn.functional as F

from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from srrcnn.roi_heads import LR_SUFFIX
from srrcnn.testing import get_model_no_weights, get_tiny_cfg, tiny_inputs
from srrcnn.x2_crops import X2_SUFFIX, X2_WINDOWS, assign_to_windows, select_windows, upscale_crops


def _gt(boxes, size=(100, 120)):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return inst


def _proposals(boxes, size=(100, 120)):
    p = Instances(size)
    p.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return p


def _double_cfg():
    cfg = get_tiny_cfg()
    cfg.MODEL.SRRCNN.PAIR = "full_to_double"
    cfg.MODEL.SRRCNN.X2.CROP_SIZE = 32
    cfg.MODEL.SRRCNN.X2.MAX_GT_SIZE = 64.0  # tiny_inputs' boxes are up to ~30 px
    cfg.MODEL.SRRCNN.G_ROIS_PER_IMAGE = 8
    return cfg


class TestCrops(unittest.TestCase):
    def test_upscale_is_a_bilinear_2x_resize_of_the_window(self):
        g = torch.Generator().manual_seed(0)
        images = torch.randn(2, 3, 40, 56, generator=g)
        windows = torch.tensor([[1.0, 8, 6, 24, 22], [0.0, 30, 20, 46, 36]])
        crops = upscale_crops(images, windows, 16)
        self.assertEqual(crops.shape, (2, 3, 32, 32))
        full = F.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
        for crop, (i, x0, y0, x1, y1) in zip(crops, windows.long().tolist()):
            torch.testing.assert_close(crop, full[i, :, 2 * y0:2 * y1, 2 * x0:2 * x1])

    def test_windows_around_small_objects_inside_the_image(self):
        gts = [_gt([[0, 0, 10, 10], [50, 40, 150, 90], [100, 80, 118, 98]]),  # small, large, small
               _gt([[10, 10, 60, 60]]),  # no small object
               _gt([[5, 5, 9, 9]], size=(20, 20))]  # smaller than a window
        windows = select_windows(gts, [(100, 120), (100, 120), (20, 20)], 32, 32.0, 4,
                                 torch.Generator().manual_seed(0))
        self.assertEqual(sorted(windows[:, 1:].tolist()),
                         [[0, 0, 32, 32], [88, 68, 120, 100]])  # centred, then shifted inside
        self.assertTrue((windows[:, 0] == 0).all())
        capped = select_windows(gts, [(100, 120)] * 2 + [(20, 20)], 32, 32.0, 1)
        self.assertEqual(len(capped), 1)
        self.assertEqual(select_windows(gts[1:2], [(100, 120)], 32, 32.0, 4).shape, (0, 5))

    def test_assign_to_windows(self):
        windows = torch.tensor([[0.0, 0, 0, 32, 32], [1.0, 0, 0, 32, 32], [1.0, 10, 10, 42, 42]])
        proposals = [_proposals([[2, 2, 20, 20], [20, 20, 40, 40]]),
                     _proposals([[12, 12, 40, 40], [2, 2, 8, 8], [0, 0, 60, 60]])]
        index, inside = assign_to_windows(proposals, windows)
        self.assertEqual(index.tolist(), [0, -1, 2, 1, -1])
        self.assertEqual(inside.tolist(), [True, False, True, True, False])
        index, inside = assign_to_windows(proposals, windows[:0])
        self.assertEqual(index.tolist(), [-1] * 5)


class TestFullToDouble(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.model = get_model_no_weights(_double_cfg())
        self.model.train()

    def test_crops_through_the_backbone_without_gradient(self):
        inputs = []
        self.model.backbone.register_forward_pre_hook(
            lambda m, args: inputs.append((tuple(args[0].shape), torch.is_grad_enabled())))
        roi_features = []
        self.model.roi_heads.register_forward_pre_hook(lambda m, args: roi_features.append(args[1]))
        with EventStorage():
            losses = self.model(tiny_inputs(2, size=(64, 80)))
        full, crops = inputs  # no 0.5x pass
        self.assertEqual(full, ((2, 3, 64, 96), True))
        self.assertEqual(crops[0][1:], (3, 64, 64))
        self.assertFalse(crops[1])
        feats = roi_features[0]
        self.assertFalse(any(k.endswith(LR_SUFFIX) for k in feats))
        self.assertEqual(feats["p2" + X2_SUFFIX].shape[0], len(feats[X2_WINDOWS]))
        self.assertEqual(crops[0][0], len(feats[X2_WINDOWS]))
        sum(losses.values()).backward()
        self.assertIsNotNone(self.model.roi_heads.generator.tail.weight.grad)

    def test_generator_maps_rois_of_the_image_to_rois_of_the_crops(self):
        heads = self.model.roi_heads
        pooled, gen_inputs = [], []
        forward = heads.box_pooler.forward

        def record(x, box_lists):
            pooled.append((x, box_lists))
            return forward(x, box_lists)

        heads.box_pooler.forward = record
        heads.generator.register_forward_hook(lambda m, i, o: gen_inputs.append(i[0]))
        roi_features = []
        heads.register_forward_pre_hook(lambda m, args: roi_features.append((args[1], args[2])))
        with EventStorage():
            losses = self.model(tiny_inputs(2, size=(64, 80)))
        feats, proposals = roi_features[0]
        (x_hr, boxes_hr), (x_x2, boxes_x2) = pooled[:2]
        self.assertIs(x_x2[0], feats["p2" + X2_SUFFIX])
        windows = feats[X2_WINDOWS]
        self.assertEqual(len(boxes_x2), len(windows))
        # every target box is a proposal inside its window, in crop coordinates at 2x
        hr = torch.cat([b.tensor for b in boxes_hr])
        for w, b in zip(windows, boxes_x2):
            back = b.tensor / 2 + w[1:3].repeat(2)
            self.assertTrue((back[:, :2] >= w[1:3] - 1e-4).all() and (back[:, 2:] <= w[3:] + 1e-4).all())
            for box in back:
                self.assertTrue(torch.isclose(hr, box, atol=1e-4).all(dim=1).any())
        num_g = sum(len(b) for b in boxes_x2)
        self.assertGreater(num_g, 0)
        self.assertEqual(gen_inputs[0].shape[0], num_g)
        # D's SR terms at D_TASK_WEIGHT (0.5) x G's, all finite
        torch.testing.assert_close(losses["loss_cls_sr"], 0.5 * losses["loss_G_cls"])
        self.assertTrue(all(torch.isfinite(v) for v in losses.values()))

    def test_d_sr_task_weight(self):
        cfg = _double_cfg()
        cfg.MODEL.SRRCNN.D_TASK_WEIGHT = 1.0
        cfg.MODEL.SRRCNN.D_SR_TASK_WEIGHT = 0.25
        model = get_model_no_weights(cfg)
        model.train()
        with EventStorage():
            losses = model(tiny_inputs(2, size=(64, 80)))
        torch.testing.assert_close(losses["loss_cls_sr"], 0.25 * losses["loss_G_cls"])

    def test_no_small_object_gives_zero_generator_terms(self):
        inputs = tiny_inputs(2, size=(64, 80))
        self.model.x2_max_gt_size = 1.0  # no object is that small: no window, no G RoI
        with EventStorage():
            losses = self.model(inputs)
        for k in ("loss_G_content", "loss_G_cls", "loss_cls_sr", "loss_D_adv"):
            self.assertEqual(losses[k].item(), 0.0, k)
        sum(losses.values()).backward()

    def test_test_time_is_size_aware_on_the_image(self):
        self.model.eval()
        calls = []
        self.model.backbone.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape))
        with torch.no_grad():
            out = self.model([{"image": torch.rand(3, 64, 80) * 255}])
        self.assertEqual(len(calls), 1)  # no crops at test
        self.assertIn("instances", out[0])

    def test_crop_size_must_fit_the_size_divisibility(self):
        cfg = _double_cfg()
        cfg.MODEL.SRRCNN.X2.CROP_SIZE = 40
        with self.assertRaisesRegex(ValueError, "CROP_SIZE"):
            get_model_no_weights(cfg)

    def test_bad_pair(self):
        cfg = _double_cfg()
        cfg.MODEL.SRRCNN.PAIR = "double"
        with self.assertRaisesRegex(ValueError, "MODEL.SRRCNN.PAIR"):
            get_model_no_weights(cfg)


def test_d_content_weight_reaches_the_backbone_through_generator_input():
    cfg = _double_cfg()
    cfg.MODEL.SRRCNN.D_CONTENT_WEIGHT = 0.5
    torch.manual_seed(0)
    model = get_model_no_weights(cfg)
    model.train()
    with EventStorage():
        losses = model(tiny_inputs(2, size=(64, 80)))
    torch.testing.assert_close(losses["loss_content_d"], 0.5 * losses["loss_G_content"])
    losses["loss_content_d"].backward()
    stem = model.backbone.bottom_up.stem.conv1.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert "loss_content_d" not in get_model_no_weights(_double_cfg()).roi_heads.gan_losses(
        *[torch.zeros(0, 32, 7, 7)] * 2, torch.zeros(0), torch.zeros(0),
        {"loss_cls": torch.zeros(()), "loss_box_reg": torch.zeros(())},
        {"loss_cls": torch.zeros(()), "loss_box_reg": torch.zeros(())})


def test_d_x2_task_weight_trains_the_head_on_the_real_2x_features():
    """loss_*_x2: the predictor's losses on the 2x targets of G's RoIs (their labels and box
    targets: deltas are scale-free), weighted; they reach the box head but neither G nor the
    backbone (the 2x pass has no gradient). Needs the full_to_double pair."""
    cfg = _double_cfg()
    cfg.MODEL.SRRCNN.D_X2_TASK_WEIGHT = 0.7
    torch.manual_seed(0)
    model = get_model_no_weights(cfg)
    model.train()
    heads, targets = model.roi_heads, []
    heads.box_pooler.register_forward_hook(lambda m, i, o: targets.append(o))
    seen = []
    losses_fn = heads.box_predictor.losses
    heads.box_predictor.losses = lambda p, props: seen.append((p, props)) or losses_fn(p, props)
    with EventStorage():
        losses = model(tiny_inputs(2, size=(64, 80)))
    (scores, deltas), props = seen[2]  # after the HR and SR terms
    assert len(scores) == sum(len(p) for p in props) > 0
    with torch.no_grad():
        expected = heads.box_predictor(heads.box_head(targets[1]))  # the 2x targets
    torch.testing.assert_close(scores, expected[0])
    with EventStorage():
        plain = losses_fn((scores, deltas), props)
    for k in ("loss_cls", "loss_box_reg"):
        torch.testing.assert_close(losses[k + "_x2"], 0.7 * plain[k])
    (losses["loss_cls_x2"] + losses["loss_box_reg_x2"]).backward()
    assert heads.box_head.fc1.weight.grad.abs().sum() > 0
    for w in (heads.generator.tail.weight, model.backbone.bottom_up.stem.conv1.weight):
        assert w.grad is None or not w.grad.any()
    cfg.MODEL.SRRCNN.PAIR = "half_to_full"
    with pytest.raises(ValueError, match="D_X2_TASK_WEIGHT"):
        get_model_no_weights(cfg)
