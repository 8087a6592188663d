# -*- coding: utf-8 -*-
"""Tests of srrcnn/losses.py: content and adversarial losses (SPEC §3)."""

import unittest

import torch
import torch.nn.functional as F

from srrcnn.losses import content_loss, discriminator_adversarial_loss, generator_adversarial_loss


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


if __name__ == "__main__":
    unittest.main()
