# -*- coding: utf-8 -*-
"""Tests of srrcnn/roi_heads.py: RoI_HR / RoI_LR pooling, G, D and their losses (SPEC §2-§3)."""

import unittest

import torch

from detectron2.layers import ShapeSpec
from detectron2.modeling import StandardROIHeads, build_roi_heads
from detectron2.modeling.poolers import assign_boxes_to_levels
from detectron2.structures import Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from srrcnn.fast_rcnn import SRFastRCNNOutputLayers
from srrcnn.roi_heads import LR_SUFFIX, SRROIHeads
from srrcnn.testing import get_tiny_cfg
from srrcnn.x2_crops import X2_SUFFIX

# 256 px images: large enough that proposals span several FPN levels
IMAGE_SIZE = 256
LEVELS = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
CHANNELS = 32  # get_tiny_cfg's FPN.OUT_CHANNELS

EXPECTED_LOSS_KEYS = {
    "loss_D_adv",
    "loss_cls_hr",
    "loss_box_reg_hr",
    "loss_cls_sr",
    "loss_box_reg_sr",
    "loss_G_adv",
    "loss_G_cls",
    "loss_G_box_reg",
    "loss_G_content",
    "loss_mask",
}



def _input_shape():
    return {k: ShapeSpec(channels=CHANNELS, stride=s) for k, s in LEVELS.items()}


def _features(num_images=2, lr=True, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = {}
    for k, s in LEVELS.items():
        n = IMAGE_SIZE // s
        feats[k] = torch.randn(num_images, CHANNELS, n, n, generator=g)
        if lr:  # the 0.5x pyramid: half the size
            m = max(n // 2, 1)
            feats[k + LR_SUFFIX] = torch.randn(num_images, CHANNELS, m, m, generator=g)
    return feats


def _boxes(n, g, min_size=8, max_size=IMAGE_SIZE - 1):
    wh = min_size + torch.rand(n, 2, generator=g) * (max_size - min_size)
    xy = torch.rand(n, 2, generator=g) * (IMAGE_SIZE - wh)
    return torch.cat([xy, xy + wh], dim=1)


def _proposals_and_targets(num_images=2, num_proposals=40, num_gt=3, seed=2):
    g = torch.Generator().manual_seed(seed)
    proposals, targets = [], []
    for _ in range(num_images):
        gt = _boxes(num_gt, g, 16, 200)
        t = Instances((IMAGE_SIZE, IMAGE_SIZE))
        t.gt_boxes = Boxes(gt)
        t.gt_classes = torch.randint(4, (num_gt,), generator=g)
        t.gt_masks = PolygonMasks(
            [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in gt.tolist()]
        )
        targets.append(t)
        # proposals: jittered ground truth (foreground) and random boxes of all sizes
        jitter = gt.repeat(4, 1) + torch.randn(4 * num_gt, 4, generator=g) * 4
        p = Instances((IMAGE_SIZE, IMAGE_SIZE))
        boxes = Boxes(torch.cat([jitter, _boxes(num_proposals - len(jitter), g)]))
        boxes.clip((IMAGE_SIZE, IMAGE_SIZE))
        p.proposal_boxes = boxes
        p.objectness_logits = torch.randn(num_proposals, generator=g)
        proposals.append(p)
    return proposals, targets


def _train(heads, feats, proposals, targets):
    """One training forward of the heads; returns the loss dict."""
    heads.train()
    with EventStorage():
        _, losses = heads(None, feats, proposals, targets)
    return losses


def _heads(cfg=None):
    cfg = cfg or get_tiny_cfg()
    return build_roi_heads(cfg, _input_shape())


class _PoolerRecorder:
    """Wraps a ROIPooler's forward; records (features, box tensors, output) per call."""

    def __init__(self, pooler):
        self.calls = []
        self._forward = pooler.forward
        pooler.forward = self

    def __call__(self, x, box_lists):
        out = self._forward(x, box_lists)
        self.calls.append((list(x), [b.tensor.clone() for b in box_lists], out))
        return out


class TestSRROIHeads(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(42)

    def test_build(self):
        heads = _heads()
        self.assertIsInstance(heads, SRROIHeads)
        self.assertIsInstance(heads.box_predictor, SRFastRCNNOutputLayers)
        self.assertEqual(
            heads.generator.output_shape, ShapeSpec(channels=CHANNELS, height=7, width=7)
        )
        self.assertEqual(heads.lr_scale, 0.5)
        self.assertEqual(heads.test_mode, "size_aware")
        self.assertEqual((heads.adv_weight, heads.d_task_weight), (0.001, 0.5))
        self.assertEqual(type(heads.box_pooler.level_poolers[0]).__name__, "ROIAlign")
        self.assertTrue(heads.box_pooler.level_poolers[0].aligned)  # ROIAlignV2

    def test_training_losses(self):
        heads = _heads()
        proposals, targets = _proposals_and_targets()
        losses = _train(heads, _features(), proposals, targets)
        self.assertEqual(set(losses), EXPECTED_LOSS_KEYS)
        for k, v in losses.items():
            self.assertEqual(v.shape, (), k)
            self.assertTrue(torch.isfinite(v).item(), k)
            self.assertTrue(v.requires_grad, k)
        # weights of SPEC §3: D sees 0.5 x the SR task losses that G sees with weight 1
        torch.testing.assert_close(losses["loss_cls_sr"], 0.5 * losses["loss_G_cls"])
        torch.testing.assert_close(losses["loss_box_reg_sr"], 0.5 * losses["loss_G_box_reg"])

    def test_lr_rois_pooled_with_half_boxes(self):
        heads = _heads()
        box_rec = _PoolerRecorder(heads.box_pooler)
        mask_rec = _PoolerRecorder(heads.mask_pooler)
        gen_inputs = []
        heads.generator.register_forward_hook(lambda m, i, o: gen_inputs.append(i[0]))
        feats = _features()
        proposals, targets = _proposals_and_targets()
        _train(heads, feats, proposals, targets)

        self.assertEqual(len(box_rec.calls), 2)
        (x_hr, boxes_hr, roi_hr), (x_lr, boxes_lr, roi_lr) = box_rec.calls
        # RoI_HR from the full pyramid, RoI_LR from the "_lr" pyramid
        for t, k in zip(x_hr, heads.box_in_features):
            self.assertIs(t, feats[k])
        for t, k in zip(x_lr, heads.box_in_features):
            self.assertIs(t, feats[k + LR_SUFFIX])
        # the same proposals, scaled by exactly 0.5
        self.assertEqual(len(boxes_hr), len(boxes_lr))
        for b_hr, b_lr in zip(boxes_hr, boxes_lr):
            self.assertTrue(torch.equal(b_lr, b_hr * 0.5))
        self.assertEqual(roi_hr.shape, roi_lr.shape)
        # G runs once, on RoI_LR
        self.assertEqual(len(gen_inputs), 1)
        self.assertIs(gen_inputs[0], roi_lr)

        # the FPN level is chosen from the scaled box: one level lower unless already lowest
        p = heads.box_pooler
        args = (p.min_level, p.max_level, p.canonical_box_size, p.canonical_level)
        lvl_hr = assign_boxes_to_levels([Boxes(b) for b in boxes_hr], *args)
        lvl_lr = assign_boxes_to_levels([Boxes(b) for b in boxes_lr], *args)
        above_min = lvl_hr > 0
        self.assertGreater(int(above_min.sum()), 0, "test proposals should span several levels")
        self.assertTrue((lvl_lr <= lvl_hr).all())
        self.assertTrue((lvl_lr[above_min] < lvl_hr[above_min]).all())
        self.assertTrue(torch.equal(lvl_lr[above_min], lvl_hr[above_min] - 1))

        # the mask head only sees the full-resolution pyramid
        self.assertEqual(len(mask_rec.calls), 1)
        for t, k in zip(mask_rec.calls[0][0], heads.mask_in_features):
            self.assertIs(t, feats[k])

    def _eval(self, heads, mode):
        heads.eval()
        heads.test_mode = mode
        calls = []
        handle = heads.generator.register_forward_hook(lambda m, i, o: calls.append(i[0]))
        box_rec = _PoolerRecorder(heads.box_pooler)
        feats = _features(lr=False)  # no 0.5x pyramid at test time
        proposals, _ = _proposals_and_targets()
        with torch.no_grad():
            pred, _ = heads(None, feats, proposals)
        handle.remove()
        return pred, calls, box_rec, feats, proposals

    def test_eval_hr_skips_generator(self):
        heads = _heads()
        pred, calls, _, _, _ = self._eval(heads, "hr")
        self.assertEqual(len(calls), 0)
        self.assertEqual(len(pred), 2)
        for inst in pred:
            self.assertTrue(inst.has("pred_boxes") and inst.has("scores"))
            self.assertTrue(inst.has("pred_classes") and inst.has("pred_masks"))

    def test_eval_sr_calls_generator_on_full_resolution_rois(self):
        heads = _heads()
        pred, calls, box_rec, feats, proposals = self._eval(heads, "sr")
        self.assertEqual(len(calls), 1)
        # the box pooler ran once, on the full pyramid and the unscaled proposals, and G got it
        self.assertEqual(len(box_rec.calls), 1)
        x, boxes, roi = box_rec.calls[0]
        for t, k in zip(x, heads.box_in_features):
            self.assertIs(t, feats[k])
        for b, p in zip(boxes, proposals):
            self.assertTrue(torch.equal(b, p.proposal_boxes.tensor))
        self.assertIs(calls[0], roi)
        self.assertEqual(calls[0].shape, (sum(len(p) for p in proposals), CHANNELS, 7, 7))
        for inst in pred:
            self.assertTrue(inst.has("pred_boxes") and inst.has("scores"))
            self.assertTrue(inst.has("pred_classes") and inst.has("pred_masks"))

    def test_hr_mode_and_mask_head_are_mask_rcnn(self):
        """TEST_MODE "hr" + the mask head give exactly Mask R-CNN's heads with the same weights."""
        heads = _heads()
        base = _heads(get_tiny_cfg(sr=False))
        self.assertIs(type(base), StandardROIHeads)
        incompatible = base.load_state_dict(heads.state_dict(), strict=False)
        self.assertEqual(incompatible.missing_keys, [])
        self.assertTrue(
            all(
                k.startswith(("generator.", "box_predictor.adv_score."))
                for k in incompatible.unexpected_keys
            )
        )
        base.eval()
        pred, _, _, feats, proposals = self._eval(heads, "hr")
        with torch.no_grad():
            expected, _ = base(None, feats, proposals)
        for a, b in zip(pred, expected):
            self.assertGreater(len(a), 0)
            torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
            torch.testing.assert_close(a.scores, b.scores)
            torch.testing.assert_close(a.pred_masks, b.pred_masks)

        # in training, the mask loss is Mask R-CNN's on the same sampled proposals
        proposals, targets = _proposals_and_targets()
        feats = _features()
        torch.manual_seed(3)
        losses = _train(heads, feats, proposals, targets)
        torch.manual_seed(3)
        base_losses = _train(
            base, {k: v for k, v in feats.items() if not k.endswith(LR_SUFFIX)}, proposals, targets
        )
        torch.testing.assert_close(losses["loss_mask"], base_losses["loss_mask"])
        torch.testing.assert_close(losses["loss_cls_hr"], 0.5 * base_losses["loss_cls"])
        torch.testing.assert_close(losses["loss_box_reg_hr"], 0.5 * base_losses["loss_box_reg"])

    def test_bad_test_mode(self):
        cfg = get_tiny_cfg()
        cfg.MODEL.SRRCNN.TEST_MODE = "both"
        with self.assertRaisesRegex(ValueError, "TEST_MODE"):
            _heads(cfg)

    def test_train_on_pred_boxes_rejected(self):
        cfg = get_tiny_cfg()
        cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = True
        with self.assertRaisesRegex(ValueError, "TRAIN_ON_PRED_BOXES"):
            _heads(cfg)

    def test_loss_regression(self):
        heads = _heads()
        proposals, targets = _proposals_and_targets()
        losses = {k: v.detach() for k, v in _train(heads, _features(), proposals, targets).items()}
        expected_losses = {
            "loss_D_adv": 0.001374468,
            "loss_cls_hr": 0.8020185,
            "loss_box_reg_hr": 0.1738037,
            "loss_cls_sr": 0.7909752,
            "loss_box_reg_sr": 0.1743468,
            "loss_G_adv": -0.0006775153,
            "loss_G_cls": 1.58195,
            "loss_G_box_reg": 0.3486936,
            "loss_G_content": 2.066499,
            "loss_mask": 0.6937273,
        }
        self.assertEqual(set(losses), set(expected_losses))
        for name, value in expected_losses.items():
            ok = torch.allclose(losses[name], torch.tensor(value), rtol=1e-4, atol=1e-6)
            if not ok:
                print("New losses:", {k: float(v) for k, v in losses.items()})
            self.assertTrue(ok, f"{name}: {float(losses[name])} != expected {value}")


class TestGeneratorRoIs(unittest.TestCase):
    """MODEL.SRRCNN.G_ROIS_PER_IMAGE / G_POSITIVE_FRACTION / G_SIZE_WEIGHT_REF."""

    def _run(self, **keys):
        cfg = get_tiny_cfg()
        for k, v in keys.items():
            setattr(cfg.MODEL.SRRCNN, k, v)
        heads = _heads(cfg)
        box_rec = _PoolerRecorder(heads.box_pooler)
        gen_inputs = []
        heads.generator.register_forward_hook(lambda m, i, o: gen_inputs.append(i[0]))
        sampled = []
        label = heads.label_and_sample_proposals
        heads.label_and_sample_proposals = lambda *a: sampled.extend(label(*a)) or sampled
        torch.manual_seed(0)
        proposals, targets = _proposals_and_targets(num_proposals=60)
        losses = _train(heads, _features(), proposals, targets)
        return heads, box_rec, gen_inputs[0], sampled, losses

    def test_subset_is_foreground_first_and_capped(self):
        heads, box_rec, roi_lr, sampled, losses = self._run(G_ROIS_PER_IMAGE=8, G_POSITIVE_FRACTION=0.75)
        (_, boxes_hr, _), (_, boxes_lr, _) = box_rec.calls
        self.assertEqual([len(b) for b in boxes_hr], [len(p) for p in sampled])
        self.assertEqual([len(b) for b in boxes_lr], [8, 8])
        self.assertEqual(roi_lr.shape[0], 16)
        for p, b_lr in zip(sampled, boxes_lr):
            fg = (p.gt_classes < heads.num_classes).sum().item()
            self.assertGreaterEqual(fg, 6)  # this test's proposals have enough foreground
            # each LR box is one of this image's sampled proposals at 0.5x ...
            hr = p.proposal_boxes.tensor * 0.5
            match = (b_lr[:, None, :] == hr[None]).all(-1)
            self.assertTrue(match.any(1).all())
            cls = p.gt_classes[match.float().argmax(1)]
            # ... 6 foreground (0.75 x 8) and background for the rest
            self.assertEqual(int((cls < heads.num_classes).sum()), 6)
        for v in losses.values():
            self.assertTrue(torch.isfinite(v))

    def test_all_rois_when_zero(self):
        _, box_rec, roi_lr, sampled, _ = self._run(G_ROIS_PER_IMAGE=0)
        (_, boxes_hr, _), (_, boxes_lr, _) = box_rec.calls
        for b_hr, b_lr in zip(boxes_hr, boxes_lr):
            self.assertTrue(torch.equal(b_lr, b_hr * 0.5))

    def test_size_weights(self):
        heads = _heads()
        heads.g_size_weight_ref = 32.0
        p = Instances((IMAGE_SIZE, IMAGE_SIZE))
        p.proposal_boxes = Boxes(torch.tensor([[0, 0, 10, 10], [0, 0, 100, 100], [0, 0, 64, 64.]]))
        p.gt_boxes = Boxes(torch.tensor([[0, 0, 16, 16], [0, 0, 128, 128], [0, 0, 1, 1.]]))
        p.gt_classes = torch.tensor([0, 1, heads.num_classes])  # the last one is background
        w = heads.generator_roi_weights([p])
        # small ground truth: 1; large: 32 / 128; background: from its own box, 32 / 64
        torch.testing.assert_close(w, torch.tensor([1.0, 0.25, 0.5]))
        heads.g_size_weight_ref = 0.0
        self.assertIsNone(heads.generator_roi_weights([p]))

    def test_size_weighted_losses_finite(self):
        _, _, _, _, losses = self._run(G_ROIS_PER_IMAGE=8, G_SIZE_WEIGHT_REF=32.0)
        self.assertEqual(set(losses), EXPECTED_LOSS_KEYS)
        for v in losses.values():
            self.assertTrue(torch.isfinite(v))


class TestSizeAware(unittest.TestCase):
    """TEST_MODE "size_aware": G only on the RoIs the plain pass predicts small."""

    def _heads(self, **keys):
        cfg = get_tiny_cfg()
        for k, v in keys.items():
            setattr(cfg.MODEL.SRRCNN.SIZE_AWARE, k, v)
        heads = _heads(cfg)
        heads.eval()
        heads.test_mode = "size_aware"
        return heads

    def _predictions(self, heads, sizes, scores):
        """Proposals of the given sizes; plain-pass predictions with zero deltas and the
        given top-class probabilities (class 0)."""
        p = Instances((IMAGE_SIZE, IMAGE_SIZE))
        p.proposal_boxes = Boxes(torch.tensor([[0, 0, s, s] for s in sizes], dtype=torch.float))
        k = heads.num_classes
        probs = torch.full((len(sizes), k + 1), 1e-3)
        probs[:, 0] = torch.tensor(scores)
        probs[:, k] = 1 - probs[:, :k].sum(1)
        return (probs.log(), torch.zeros(len(sizes), 4 * k)), [p]

    def test_selection(self):
        heads = self._heads(MAX_SIZE=64.0, MIN_SCORE=0.1, MAX_ROIS_PER_IMAGE=2)
        preds, props = self._predictions(heads, [10, 100, 30, 50, 20], [0.9, 0.9, 0.05, 0.5, 0.3])
        sel = heads.select_size_aware(preds, props)
        # small and likely: 0, 3, 4; at most 2, the most likely: 0 and 3
        self.assertEqual(sorted(sel.tolist()), [0, 3])
        heads.size_aware_max_rois = 0
        self.assertEqual(sorted(heads.select_size_aware(preds, props).tolist()), [0, 3, 4])

    def test_merge(self):
        heads = self._heads()
        scores = torch.log_softmax(torch.randn(4, heads.num_classes + 1), -1)
        deltas = torch.randn(4, 4 * heads.num_classes)
        sr_scores, sr_deltas = torch.randn(2, heads.num_classes + 1), torch.randn(2, 4 * heads.num_classes)
        sel = torch.tensor([1, 3])
        s, d = heads.merge_predictions((scores, deltas), (sr_scores, sr_deltas), sel)
        mean = (scores[sel].softmax(-1) + sr_scores.softmax(-1)) / 2
        torch.testing.assert_close(s[sel].softmax(-1), mean)
        torch.testing.assert_close(d[sel], (deltas[sel] + sr_deltas) / 2)
        torch.testing.assert_close(s[[0, 2]], scores[[0, 2]])  # the others untouched
        torch.testing.assert_close(d[[0, 2]], deltas[[0, 2]])
        heads.size_aware_merge = "replace"
        s, d = heads.merge_predictions((scores, deltas), (sr_scores, sr_deltas), sel)
        torch.testing.assert_close(s[sel], sr_scores)
        torch.testing.assert_close(d[sel], sr_deltas)

    def test_generator_runs_on_selected_rois_only(self):
        heads = self._heads(MIN_SCORE=0.0, MAX_SIZE=60.0, MAX_ROIS_PER_IMAGE=5)
        calls = []
        heads.generator.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
        proposals, _ = _proposals_and_targets()
        with torch.no_grad():
            pred, _ = heads(None, _features(lr=False), proposals)
        self.assertEqual(len(calls), 1)
        self.assertLessEqual(calls[0], 10)  # at most 5 per image
        self.assertGreater(calls[0], 0)
        for inst in pred:
            self.assertTrue(inst.has("pred_boxes") and inst.has("pred_masks"))
        # nothing small: G never runs and the result is the plain ("hr") one
        heads.size_aware_max_size = 0.0
        calls.clear()
        with torch.no_grad():
            pred, _ = heads(None, _features(lr=False), proposals)
            heads.test_mode = "hr"
            expected, _ = heads(None, _features(lr=False), proposals)
        self.assertEqual(calls, [])
        for a, b in zip(pred, expected):
            torch.testing.assert_close(a.scores, b.scores)

    def test_x2_oracle_pools_the_selected_rois_from_the_2x_pyramid(self):
        """"size_aware_x2": size_aware's selection and merge, with G's output replaced by the
        selected boxes x 2 pooled from the 2x pyramid; G does not run."""
        heads = self._heads(MIN_SCORE=0.0, MAX_SIZE=60.0, MAX_ROIS_PER_IMAGE=5)
        heads.test_mode = "size_aware_x2"
        calls, selected = [], []
        heads.generator.register_forward_hook(lambda m, i, o: calls.append(i[0]))
        select = heads.select_size_aware
        heads.select_size_aware = lambda *a: selected.append(select(*a)) or selected[-1]
        feats = _features(lr=False)
        g = torch.Generator().manual_seed(3)
        feats.update({k + X2_SUFFIX: torch.randn(2, CHANNELS, 2 * v.shape[2], 2 * v.shape[3], generator=g)
                      for k, v in _features(lr=False).items()})
        proposals, _ = _proposals_and_targets()
        rec = _PoolerRecorder(heads.box_pooler)
        with torch.no_grad():
            pred, _ = heads(None, feats, proposals)
        self.assertEqual(calls, [])
        (sel,) = selected
        self.assertGreater(len(sel), 0)
        x, boxes, _ = rec.calls[1]  # after the plain pass
        self.assertTrue(all(a is feats[f + X2_SUFFIX] for a, f in zip(x, heads.box_in_features)))
        all_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        torch.testing.assert_close(torch.cat(boxes), all_boxes[sel] * 2)
        self.assertTrue(all(inst.has("pred_boxes") for inst in pred))

    def test_bad_merge(self):
        with self.assertRaisesRegex(ValueError, "SIZE_AWARE.MERGE"):
            self._heads(MERGE="max")


if __name__ == "__main__":
    unittest.main()


def test_lr_pool_level_full_box_keeps_the_full_boxes_level():
    cfg = get_tiny_cfg()
    cfg.MODEL.SRRCNN.LR_POOL_LEVEL = "full_box"
    heads = _heads(cfg)
    rec, rec_hr = _PoolerRecorder(heads.lr_box_pooler), _PoolerRecorder(heads.box_pooler)
    proposals, targets = _proposals_and_targets()
    _train(heads, _features(), proposals, targets)  # G on all sampled RoIs (tiny cfg)
    (_, boxes_lr, _), = rec.calls
    (_, boxes_hr, _), = rec_hr.calls
    p = heads.box_pooler
    args = (p.min_level, p.max_level, p.canonical_box_size, p.canonical_level)
    full = assign_boxes_to_levels([Boxes(b) for b in boxes_hr], *args)
    assert full.unique().numel() > 1
    lr_args = (p.min_level, p.max_level, heads.lr_box_pooler.canonical_box_size, p.canonical_level)
    assert torch.equal(assign_boxes_to_levels([Boxes(b) for b in boxes_lr], *lr_args), full)
    assert heads.lr_box_pooler is not heads.box_pooler
    default = _heads()
    assert default.lr_box_pooler is default.box_pooler


def test_eval_sr_lr_runs_generator_on_lr_rois():
    heads = _heads()
    heads.eval()
    heads.test_mode = "sr_lr"
    calls = []
    heads.generator.register_forward_hook(lambda m, i, o: calls.append(i[0]))
    rec = _PoolerRecorder(heads.box_pooler)
    feats = _features()
    proposals, _ = _proposals_and_targets()
    with torch.no_grad():
        pred, _ = heads(None, feats, proposals)
    x, boxes, roi = rec.calls[0]
    assert x[0] is feats["p2" + LR_SUFFIX]
    assert torch.equal(boxes[0], proposals[0].proposal_boxes.tensor * 0.5)
    assert calls[0] is roi and len(pred) == 2
