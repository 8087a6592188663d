# -*- coding: utf-8 -*-
"""Tests of srrcnn/losses.py: content and adversarial losses, G's size weights and the
weighted objectives (SPEC §3)."""

import unittest

import torch
import torch.nn.functional as F

from detectron2.structures import Boxes, Instances

from srrcnn.losses import (
    G_LOSS_PREFIX,
    content_loss,
    discriminator_adversarial_loss,
    gan_losses,
    generator_adversarial_loss,
    roi_sides,
    roi_size_weights,
)


class TestLosses(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(42)

    def test_content_loss(self):
        R, C, P = 5, 4, 3
        sr, hr = torch.randn(R, C, P, P), torch.randn(R, C, P, P)
        mean = content_loss(sr, hr)  # default: "mean"
        torch.testing.assert_close(mean, F.mse_loss(sr, hr))
        torch.testing.assert_close(content_loss(sr, hr, "mean"), F.mse_loss(sr, hr))
        per_roi = content_loss(sr, hr, "sum_per_roi")
        expected = torch.stack([(sr[i] - hr[i]).norm() ** 2 for i in range(R)]).mean()
        torch.testing.assert_close(per_roi, expected)
        torch.testing.assert_close(per_roi, mean * C * P * P)
        self.assertEqual(content_loss(hr, hr).item(), 0.0)

    def test_generator_adversarial_loss(self):
        x = torch.randn(50, dtype=torch.float64) * 3
        d = torch.sigmoid(x)
        sat = generator_adversarial_loss(x)  # default: the thesis's saturating form
        torch.testing.assert_close(sat, torch.log(1 - d).mean(), atol=1e-6, rtol=0)
        torch.testing.assert_close(generator_adversarial_loss(x, "saturating"), sat)
        self.assertLessEqual(sat.item(), 0.0)
        ns = generator_adversarial_loss(x, "non_saturating")
        torch.testing.assert_close(ns, (-torch.log(d)).mean(), atol=1e-6, rtol=0)
        self.assertGreaterEqual(ns.item(), 0.0)
        # float32 too, and no overflow for large logits
        x32 = torch.tensor([-50.0, -3.0, 0.0, 2.0, 50.0])
        self.assertTrue(torch.isfinite(generator_adversarial_loss(x32)).item())
        self.assertTrue(torch.isfinite(generator_adversarial_loss(x32, "non_saturating")).item())
        torch.testing.assert_close(
            generator_adversarial_loss(x32[1:4]),
            torch.log(1 - torch.sigmoid(x32[1:4])).mean(),
            atol=1e-6,
            rtol=0,
        )
        # minimising it makes the fake logits "more real" (D_adv larger)
        for mode in ("saturating", "non_saturating"):
            y = torch.zeros(3, requires_grad=True)
            generator_adversarial_loss(y, mode).backward()
            self.assertTrue((y.grad < 0).all())

    def test_discriminator_adversarial_loss(self):
        real, fake = torch.randn(7) * 2, torch.randn(7) * 2
        expected = F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        torch.testing.assert_close(
            discriminator_adversarial_loss(real, fake), expected, atol=1e-6, rtol=0
        )
        # -[log D(HR) + log(1 - D(SR))]
        expected = -(
            torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean()
        )
        torch.testing.assert_close(
            discriminator_adversarial_loss(real, fake), expected, atol=1e-6, rtol=0
        )

    def test_empty(self):
        sr = torch.randn(0, 4, 3, 3, requires_grad=True)
        hr = torch.randn(0, 4, 3, 3)
        logits = torch.randn(0, requires_grad=True)
        losses = [
            content_loss(sr, hr, "mean"),
            content_loss(sr, hr, "sum_per_roi"),
            generator_adversarial_loss(logits, "saturating"),
            generator_adversarial_loss(logits, "non_saturating"),
            discriminator_adversarial_loss(logits, logits),
        ]
        for loss in losses:
            self.assertEqual(loss.shape, ())
            self.assertTrue(torch.isfinite(loss).item())
            self.assertEqual(loss.item(), 0.0)
            self.assertTrue(loss.requires_grad)  # still part of the graph
        sum(losses).backward()
        self.assertEqual(sr.grad.shape, sr.shape)
        self.assertEqual(logits.grad.shape, logits.shape)

    def test_backward(self):
        sr = torch.randn(3, 2, 2, 2, requires_grad=True)
        logits = torch.randn(3, requires_grad=True)
        loss = (
            content_loss(sr, torch.zeros(3, 2, 2, 2))
            + generator_adversarial_loss(logits)
            + discriminator_adversarial_loss(logits, logits)
        )
        loss.backward()
        self.assertGreater(sr.grad.abs().sum().item(), 0)
        self.assertGreater(logits.grad.abs().sum().item(), 0)

    def test_bad_modes(self):
        x = torch.randn(2, 4, 3, 3)
        with self.assertRaisesRegex(ValueError, "CONTENT_REDUCTION"):
            content_loss(x, x, "sum")
        with self.assertRaisesRegex(ValueError, "ADV_LOSS"):
            generator_adversarial_loss(torch.randn(2), "wgan")

    def test_weighted(self):
        sr, hr = torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2)
        w = torch.tensor([1.0, 0.5, 0.0])
        per_roi = (sr - hr).pow(2).flatten(1).mean(1)
        torch.testing.assert_close(content_loss(sr, hr, "mean", w), (per_roi * w).sum() / 1.5)
        torch.testing.assert_close(content_loss(sr, hr, "mean", torch.ones(3)), content_loss(sr, hr))
        logits = torch.randn(3)
        torch.testing.assert_close(generator_adversarial_loss(logits, "saturating", w),
                                   (-F.softplus(logits) * w).sum() / 1.5)


def test_roi_size_weights():
    p = Instances((256, 256))
    p.proposal_boxes = Boxes(torch.tensor([[0, 0, 10, 10], [0, 0, 100, 100], [0, 0, 64, 64.]]))
    p.gt_boxes = Boxes(torch.tensor([[0, 0, 16, 16], [0, 0, 128, 128], [0, 0, 1, 1.]]))
    p.gt_classes = torch.tensor([0, 1, 4])  # the last one is background (4 classes)
    # small ground truth: 1; large: 32 / 128; background: from its own box, 32 / 64
    torch.testing.assert_close(roi_size_weights([p], 32.0, 4), torch.tensor([1.0, 0.25, 0.5]))
    assert roi_size_weights([p], 0.0, 4) is None and roi_size_weights([], 32.0, 4) is None
    torch.testing.assert_close(roi_sides([p], 4), torch.tensor([16.0, 128.0, 64.0]))


def test_gan_losses_weights_and_names():
    g = torch.Generator().manual_seed(0)
    roi_hr, roi_sr = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    adv_hr, adv_sr = torch.randn(3, generator=g), torch.randn(3, generator=g)
    hr = {"loss_cls": torch.tensor(2.0), "loss_box_reg": torch.tensor(3.0)}
    sr = {"loss_cls": torch.tensor(5.0), "loss_box_reg": torch.tensor(7.0)}
    losses = gan_losses(roi_hr, roi_sr, adv_hr, adv_sr, hr, sr)  # the config's defaults
    assert list(losses) == ["loss_D_adv", "loss_cls_hr", "loss_box_reg_hr", "loss_cls_sr",
                            "loss_box_reg_sr", "loss_G_adv", "loss_G_cls", "loss_G_box_reg",
                            "loss_G_content"]
    assert all(k.startswith(G_LOSS_PREFIX) == k.startswith("loss_G_") for k in losses)
    torch.testing.assert_close(losses["loss_D_adv"], 0.001 * discriminator_adversarial_loss(adv_hr, adv_sr))
    torch.testing.assert_close(losses["loss_G_adv"], 0.001 * generator_adversarial_loss(adv_sr))
    assert [float(losses[k]) for k in ("loss_cls_hr", "loss_box_reg_hr", "loss_cls_sr",
                                       "loss_box_reg_sr", "loss_G_cls", "loss_G_box_reg")] \
        == [1.0, 1.5, 2.5, 3.5, 5.0, 7.0]  # D_TASK_WEIGHT 0.5 on both paths, G_TASK_WEIGHT 1
    torch.testing.assert_close(losses["loss_G_content"], content_loss(roi_sr, roi_hr))
    w = torch.tensor([1.0, 0.5, 0.0])
    losses = gan_losses(roi_hr, roi_sr, adv_hr, adv_sr, hr, sr, w, d_task_weight=1.0,
                        d_sr_task_weight=0.0, d_content_weight=0.25, content_weight=2.0)
    assert float(losses["loss_cls_hr"]) == 2.0 and float(losses["loss_cls_sr"]) == 0.0
    content = content_loss(roi_sr, roi_hr, "mean", w)
    torch.testing.assert_close(losses["loss_G_content"], 2.0 * content)
    torch.testing.assert_close(losses["loss_content_d"], 0.25 * content)
    torch.testing.assert_close(losses["loss_G_adv"], 0.001 * generator_adversarial_loss(adv_sr, weights=w))


def test_gan_losses_content_target_is_detached():
    roi_hr = torch.randn(2, 4, 2, 2, requires_grad=True)
    roi_sr = torch.randn(2, 4, 2, 2, requires_grad=True)
    task = {"loss_cls": torch.tensor(0.0), "loss_box_reg": torch.tensor(0.0)}
    gan_losses(roi_hr, roi_sr, torch.zeros(2), torch.zeros(2), task, task)["loss_G_content"].backward()
    assert roi_hr.grad is None and roi_sr.grad.abs().sum() > 0


if __name__ == "__main__":
    unittest.main()
