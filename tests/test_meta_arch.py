# -*- coding: utf-8 -*-
"""Tests of srrcnn/meta_arch.py: the 0.5x pass through the shared backbone (SPEC §2.1-2.3),
end to end as detectron2's tests/modeling/test_model_e2e.py."""

import os
import tempfile
import unittest

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from srrcnn.meta_arch import SRRCNN, downsample_batch
from srrcnn.roi_heads import LR_SUFFIX
from srrcnn.testing import get_model_no_weights, get_tiny_cfg, tiny_inputs



def _eval_inputs(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(3, h, w, generator=g) * 255} for h, w in sizes]


class _ShapeRecorder:
    """Pre- and post-forward hooks on the backbone: input shapes and output shapes per call."""

    def __init__(self, backbone):
        self.inputs, self.outputs = [], []
        backbone.register_forward_pre_hook(lambda m, args: self.inputs.append(tuple(args[0].shape)))
        backbone.register_forward_hook(
            lambda m, args, out: self.outputs.append({k: tuple(v.shape) for k, v in out.items()})
        )


class TestDownsampleBatch(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(42)

    def test_sizes(self):
        x = torch.randn(2, 3, 64, 96)
        for mode in ("antialias", "bilinear", "area"):
            y = downsample_batch(x, 0.5, mode, 32)
            self.assertEqual(y.shape, (2, 3, 32, 64), mode)  # 32x48 padded to 32x64
            # the image itself is in the top-left 32x48, zero padding to the right
            self.assertTrue(torch.equal(y[..., 48:], torch.zeros(2, 3, 32, 16)))
            self.assertGreater(y[..., :48].abs().sum().item(), 0)
            self.assertEqual(downsample_batch(x, 0.5, mode, 0).shape, (2, 3, 32, 48))
            self.assertEqual(downsample_batch(x, 0.5, mode, 1).shape, (2, 3, 32, 48))
        self.assertEqual(
            downsample_batch(torch.randn(1, 3, 128, 64), 0.5, "area", 32).shape, (1, 3, 64, 32)
        )
        self.assertEqual(
            downsample_batch(torch.randn(1, 3, 2, 2), 0.25, "bilinear", 1).shape, (1, 3, 1, 1)
        )

    def test_values(self):
        # a constant image stays constant; "area" is the 2x2 box average
        x = torch.full((1, 3, 64, 64), 3.0)
        for mode in ("antialias", "bilinear", "area"):
            torch.testing.assert_close(
                downsample_batch(x, 0.5, mode, 32), torch.full((1, 3, 32, 32), 3.0)
            )
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(
            downsample_batch(x, 0.5, "area", 32), torch.nn.functional.avg_pool2d(x, 2)
        )
        self.assertFalse(
            torch.allclose(
                downsample_batch(x, 0.5, "antialias", 32), downsample_batch(x, 0.5, "bilinear", 32)
            )
        )

    def test_bad_mode(self):
        with self.assertRaisesRegex(ValueError, "LR_RESIZE"):
            downsample_batch(torch.randn(1, 3, 64, 64), 0.5, "nearest", 32)
        cfg = get_tiny_cfg()
        cfg.MODEL.SRRCNN.LR_RESIZE = "bicubic"
        with self.assertRaisesRegex(ValueError, "LR_RESIZE"):
            get_model_no_weights(cfg)
        cfg = get_tiny_cfg()
        cfg.MODEL.SRRCNN.LR_SCALE = 1.0
        with self.assertRaisesRegex(ValueError, "LR_SCALE"):
            get_model_no_weights(cfg)


class TestSRRCNN(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(43)
        self.model = get_model_no_weights(get_tiny_cfg())

    def _train_step(self, inputs):
        self.model.train()
        with EventStorage():
            losses = self.model(inputs)
            sum(losses.values()).backward()
        return losses

    def _check_predictions(self, outputs, inputs):
        self.assertEqual(len(outputs), len(inputs))
        for out, inp in zip(outputs, inputs):
            inst = out["instances"]
            self.assertIsInstance(inst, Instances)
            self.assertEqual(inst.image_size, inp["image"].shape[1:])
            for field in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
                self.assertTrue(inst.has(field), field)
            self.assertIsInstance(inst.pred_boxes, Boxes)

    def test_build(self):
        self.assertIsInstance(self.model, SRRCNN)
        self.assertEqual((self.model.lr_scale, self.model.lr_resize), (0.5, "antialias"))

    def test_backbone_twice_in_training(self):
        rec = _ShapeRecorder(self.model.backbone)
        rpn_features = []
        self.model.proposal_generator.register_forward_pre_hook(
            lambda m, args: rpn_features.append({k: tuple(v.shape) for k, v in args[1].items()})
        )
        roi_features = []
        self.model.roi_heads.register_forward_pre_hook(
            lambda m, args: roi_features.append({k: tuple(v.shape) for k, v in args[1].items()})
        )
        losses = self._train_step(tiny_inputs(2, size=(64, 80)))
        self.assertTrue(any(k.startswith("loss_G_") for k in losses))
        self.assertIn("loss_rpn_cls", losses)

        d = self.model.backbone.size_divisibility
        self.assertEqual(d, 32)
        self.assertEqual(rec.inputs, [(2, 3, 64, 96), (2, 3, 32, 64)])  # 32x48 -> padded 32x64
        for shape in rec.inputs:
            self.assertEqual((shape[2] % d, shape[3] % d), (0, 0))
        full, low = rec.outputs
        self.assertEqual(full["p2"], (2, 32, 16, 24))
        self.assertEqual(low["p2"], (2, 32, 8, 16))
        # the RPN sees the full-resolution pyramid only
        self.assertEqual(rpn_features, [full])
        # the ROI heads see both pyramids
        self.assertEqual(roi_features[0], {**full, **{k + LR_SUFFIX: v for k, v in low.items()}})

    def test_backbone_once_at_inference(self):
        rec = _ShapeRecorder(self.model.backbone)
        rpn_features = []
        self.model.proposal_generator.register_forward_pre_hook(
            lambda m, args: rpn_features.append(set(args[1]))
        )
        self.model.eval()
        inputs = _eval_inputs([(64, 80), (50, 64)])
        for mode in ("sr", "hr"):
            self.model.roi_heads.test_mode = mode
            rec.inputs.clear()
            with torch.no_grad():
                self._check_predictions(self.model(inputs), inputs)
            self.assertEqual(rec.inputs, [(2, 3, 64, 96)], mode)
        self.assertTrue(all(not any(k.endswith(LR_SUFFIX) for k in f) for f in rpn_features))

    def test_diagnostic_modes_run_a_second_pass_at_test(self):
        """"sr_lr": the 0.5x pass; "size_aware_x2": the 2x pass; the hook is gone afterwards."""
        rec = _ShapeRecorder(self.model.backbone)
        self.model.eval()
        inputs = _eval_inputs([(64, 80), (50, 64)])
        for mode, second in (("sr_lr", (2, 3, 32, 64)), ("size_aware_x2", (2, 3, 128, 192))):
            rec.inputs.clear()
            self.model.roi_heads.test_mode = mode
            with torch.no_grad():
                self._check_predictions(self.model(inputs), inputs)
                self.assertEqual(rec.inputs, [(2, 3, 64, 96), second], mode)
                self.model.roi_heads.test_mode = "sr"
                self.model(inputs)
            self.assertEqual(len(rec.inputs), 3, mode)

    def test_downsample_modes_train(self):
        for mode in ("bilinear", "area"):
            self.model.lr_resize = mode
            # (a single 64x64 image would give a 1x1 p5 at 0.5x: GroupNorm(32) over 32 channels
            # then has one value per group and refuses to train; 64x80 pads to 64x96)
            losses = self._train_step(tiny_inputs(1, size=(64, 80)))
            self.assertTrue(all(torch.isfinite(v).item() for v in losses.values()), mode)

    # --- e2e, as detectron2's test_model_e2e.py ---

    def test_empty_data(self):
        losses = self._train_step(tiny_inputs(2, num_boxes=0))
        self.assertIn("loss_G_content", losses)
        for k, v in losses.items():
            self.assertTrue(torch.isfinite(v).item(), k)
        self.assertEqual(losses["loss_box_reg_hr"].item(), 0.0)
        self.assertEqual(losses["loss_box_reg_sr"].item(), 0.0)
        self.assertEqual(losses["loss_mask"].item(), 0.0)

    def test_half_empty_data(self):
        inputs = tiny_inputs(1, num_boxes=0, seed=1) + tiny_inputs(1, num_boxes=3, seed=2)
        losses = self._train_step(inputs)
        for k, v in losses.items():
            self.assertTrue(torch.isfinite(v).item(), k)

    def test_odd_sizes_train(self):
        inputs = tiny_inputs(1, size=(61, 77), seed=1) + tiny_inputs(1, size=(47, 53), seed=2)
        rec = _ShapeRecorder(self.model.backbone)
        losses = self._train_step(inputs)
        for k, v in losses.items():
            self.assertTrue(torch.isfinite(v).item(), k)
        self.assertEqual(rec.inputs, [(2, 3, 64, 96), (2, 3, 32, 64)])

    def test_odd_sizes_eval(self):
        self.model.eval()
        inputs = _eval_inputs([(61, 77), (47, 53)])
        inputs[0].update(height=122, width=154)  # output resolution differs from the input's
        for mode in ("sr", "hr"):
            self.model.roi_heads.test_mode = mode
            with torch.no_grad():
                outputs = self.model(inputs)
            self.assertEqual(outputs[0]["instances"].image_size, (122, 154))
            self.assertEqual(outputs[1]["instances"].image_size, (47, 53))
            for out in outputs:
                inst = out["instances"]
                for field in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
                    self.assertTrue(inst.has(field), field)

    def test_inf_nan_eval(self):
        self.model.eval()
        inputs = _eval_inputs([(64, 64), (64, 64)])
        inputs[0]["image"][:] = float("inf")
        inputs[1]["image"][:] = float("nan")
        for mode in ("sr", "hr"):
            self.model.roi_heads.test_mode = mode
            with torch.no_grad():
                outputs = self.model(inputs)
            for out in outputs:
                self.assertEqual(len(out["instances"]), 0)


class TestLoadMaskRCNN(unittest.TestCase):
    def test_load_mask_rcnn_weights(self):
        torch.manual_seed(0)
        mask_rcnn = get_model_no_weights(get_tiny_cfg(sr=False))
        torch.manual_seed(0)
        sr_rcnn = get_model_no_weights(get_tiny_cfg(sr=True))
        # perturb SR-RCNN's weights so that equality after loading is not a coincidence
        with torch.no_grad():
            for p in sr_rcnn.parameters():
                p.add_(1.0)

        with tempfile.TemporaryDirectory() as tmp:
            DetectionCheckpointer(mask_rcnn, save_dir=tmp).save("mask_rcnn")
            checkpointer = DetectionCheckpointer(sr_rcnn)
            recorded = []
            load_model = checkpointer._load_model
            checkpointer._load_model = (
                lambda ckpt: recorded.append(load_model(ckpt)) or recorded[-1]
            )
            checkpointer.load(os.path.join(tmp, "mask_rcnn.pth"))

        incompatible = recorded[0]
        self.assertTrue(incompatible.missing_keys)
        for k in incompatible.missing_keys:
            self.assertTrue(
                k.startswith(("roi_heads.generator.", "roi_heads.box_predictor.adv_score.")), k
            )
        self.assertIn("roi_heads.box_predictor.adv_score.weight", incompatible.missing_keys)
        self.assertEqual(incompatible.unexpected_keys, [])
        self.assertEqual(incompatible.incorrect_shapes, [])

        sd_mask, sd_sr = mask_rcnn.state_dict(), sr_rcnn.state_dict()
        missing = set(sd_sr) - set(sd_mask)
        self.assertEqual(set(sd_mask) - set(sd_sr), set())
        self.assertTrue(
            all(
                k.startswith(("roi_heads.generator.", "roi_heads.box_predictor.adv_score."))
                for k in missing
            )
        )
        for k in sd_mask:
            self.assertTrue(torch.equal(sd_mask[k], sd_sr[k]), k)


if __name__ == "__main__":
    unittest.main()


@pytest.mark.parametrize("pair", ["half_to_full", "full_to_double"])
def test_without_sr_terms_d_objective_is_mask_rcnns(pair, monkeypatch):
    """With D's SR and adversarial terms off, D's objective IS Mask R-CNN's: same losses and
    the same gradients on every shared weight (so a gap in AP comes from the SR terms)."""
    import srrcnn.meta_arch as meta_arch
    from detectron2.modeling import build_model

    from srrcnn.gan_trainer import split_generator_parameters

    select = meta_arch.select_windows  # the windows' draw must not shift the RoI sampling's
    monkeypatch.setattr(meta_arch, "select_windows", lambda *a, **k: select(
        *a, **k, generator=torch.Generator().manual_seed(0)))
    cfg = get_tiny_cfg()
    cfg.MODEL.SRRCNN.PAIR = pair
    cfg.MODEL.SRRCNN.X2.CROP_SIZE, cfg.MODEL.SRRCNN.X2.MAX_GT_SIZE = 32, 64.0
    cfg.MODEL.SRRCNN.D_TASK_WEIGHT, cfg.MODEL.SRRCNN.D_SR_TASK_WEIGHT = 1.0, 0.0
    cfg.MODEL.SRRCNN.ADV_WEIGHT = 0.0
    torch.manual_seed(0)
    sr = build_model(cfg)
    base_cfg = get_tiny_cfg(sr=False)
    base = build_model(base_cfg)
    base.load_state_dict({k: v for k, v in sr.state_dict().items() if k in base.state_dict()})
    data = tiny_inputs(2, size=(64, 80))
    with EventStorage():
        torch.manual_seed(5)
        sr_losses = sr(data)
        torch.manual_seed(5)
        base_losses = base(data)
    for k, v in base_losses.items():
        torch.testing.assert_close(sr_losses[k + "_hr"] if k + "_hr" in sr_losses else sr_losses[k], v)
    _, d_params = split_generator_parameters(sr)
    sum(v for k, v in sr_losses.items() if not k.startswith("loss_G_")).backward(inputs=d_params)
    sum(base_losses.values()).backward()
    shared = dict(base.named_parameters())
    for name, p in sr.named_parameters():
        if name in shared and shared[name].grad is not None:
            torch.testing.assert_close(p.grad, shared[name].grad, msg=name)
