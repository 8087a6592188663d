# -*- coding: utf-8 -*-
"""Tests of srrcnn/generator.py: the generator G_w (SPEC §2.5)."""

import unittest

import torch
from torch import nn

from detectron2.layers import ShapeSpec

from srrcnn.generator import (
    SRRCNN_GENERATOR_REGISTRY,
    ResidualBlock,
    SRResNetGenerator,
    build_generator,
)
from srrcnn.testing import get_tiny_cfg



def _gen(channels=8, res=7, **kwargs):
    kwargs.setdefault("num_blocks", 2)
    kwargs.setdefault("width", 4)
    return SRResNetGenerator(ShapeSpec(channels=channels, height=res, width=res), **kwargs)


class TestSRResNetGenerator(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(42)

    def test_shape_preserved(self):
        for channels, width, num_blocks in [(8, 4, 2), (8, 16, 1), (8, 8, 3), (4, 4, 0)]:
            g = _gen(channels, width=width, num_blocks=num_blocks)
            if width == channels:
                self.assertIsInstance(g.head, nn.Identity)  # no input conv
            else:
                self.assertEqual(g.head[0].in_channels, channels)
                self.assertEqual(g.head[0].out_channels, width)
            self.assertEqual(g.output_shape.channels, channels)
            for training in (True, False):
                g.train(training)
                x = torch.randn(5, channels, 7, 7)
                self.assertEqual(g(x).shape, x.shape)

    def test_empty_batch(self):
        for width in (4, 8):
            g = _gen(8, width=width)
            for training in (True, False):
                g.train(training)
                x = torch.randn(0, 8, 7, 7, requires_grad=True)
                y = g(x)
                self.assertEqual(y.shape, (0, 8, 7, 7))
                if training:
                    y.sum().backward()
                    self.assertEqual(x.grad.shape, x.shape)

    def test_last_layer_is_linear(self):
        g = _gen(8, width=4, norm="BN", activation="prelu")
        # the tail is a plain torch Conv2d (not detectron2's Conv2d with norm/activation)
        self.assertIs(type(g.tail), nn.Conv2d)
        self.assertIsNone(getattr(g.tail, "norm", None))
        self.assertIsNone(getattr(g.tail, "activation", None))
        self.assertEqual((g.tail.in_channels, g.tail.out_channels), (4, 8))
        # the tail is the last module registered: no BN / activation module after it
        self.assertEqual(list(g.named_children())[-1][0], "tail")

        # nothing follows the tail in forward: the output IS the tail's output
        record = {}
        g.tail.register_forward_hook(lambda m, i, o: record.update(out=o))
        for training in (True, False):
            g.train(training)
            x = 100 * torch.randn(16, 8, 7, 7)
            y = g(x)
            self.assertIs(y, record["out"])
            # signed and unbounded: no ReLU/sigmoid/tanh at the end, no BN re-centring
            self.assertLess(y.min().item(), -1.0)
            self.assertGreater(y.max().item(), 1.0)

        # with no norm in the blocks the generator is positively homogeneous up to biases:
        # scaling the input scales the output (no saturation at the end)
        g = _gen(8, width=4, norm="", activation="relu")
        g.eval()
        for p in g.parameters():
            if p.dim() == 1:
                nn.init.zeros_(p)  # biases
        x = torch.randn(4, 8, 7, 7)
        torch.testing.assert_close(g(1000 * x), 1000 * g(x), rtol=1e-4, atol=1e-2)

    def test_num_blocks(self):
        for n in (0, 1, 3, 7):
            g = _gen(8, num_blocks=n)
            blocks = [m for m in g.modules() if isinstance(m, ResidualBlock)]
            self.assertEqual(len(blocks), n)
            self.assertEqual(len(g.blocks), n)

    def test_residual_block_norm_act(self):
        b = ResidualBlock(4, "BN", "leaky_relu")
        self.assertIsInstance(b.conv1.norm, nn.BatchNorm2d)
        self.assertIsInstance(b.conv2.norm, nn.BatchNorm2d)
        self.assertIsInstance(b.act, nn.LeakyReLU)
        self.assertIsNone(b.conv1.bias)  # bias is redundant before a norm
        b = ResidualBlock(4, "", "relu")
        self.assertIsNone(b.conv1.norm)
        self.assertIsNotNone(b.conv1.bias)
        # the skip: zero convs give the identity
        for p in b.parameters():
            nn.init.zeros_(p)
        x = torch.randn(2, 4, 5, 5)
        torch.testing.assert_close(b(x), x)

    def test_from_config(self):
        cfg = get_tiny_cfg()
        cfg.MODEL.SRRCNN.GENERATOR.NUM_BLOCKS = 3
        cfg.MODEL.SRRCNN.GENERATOR.WIDTH = 8
        cfg.MODEL.SRRCNN.GENERATOR.ACTIVATION = "relu"
        cfg.MODEL.SRRCNN.GENERATOR.NORM = ""
        shape = ShapeSpec(channels=16, height=7, width=7)
        for g in (SRResNetGenerator(cfg, shape), build_generator(cfg, shape)):
            self.assertIsInstance(g, SRResNetGenerator)
            self.assertEqual(len(g.blocks), 3)
            self.assertEqual(g.head[0].out_channels, 8)
            self.assertEqual(g.blocks[0].conv1.out_channels, 8)
            self.assertIsInstance(g.blocks[0].act, nn.ReLU)
            self.assertIsNone(g.blocks[0].conv1.norm)
            self.assertEqual(g.tail.out_channels, 16)
            self.assertEqual(g(torch.randn(2, 16, 7, 7)).shape, (2, 16, 7, 7))

        cfg.MODEL.SRRCNN.GENERATOR.NORM = "BN"
        cfg.MODEL.SRRCNN.GENERATOR.ACTIVATION = "prelu"
        g = build_generator(cfg, shape)
        self.assertIsInstance(g.blocks[0].conv1.norm, nn.BatchNorm2d)
        self.assertIsInstance(g.blocks[0].act, nn.PReLU)

    def test_thesis_defaults(self):
        from detectron2.config import get_cfg

        from srrcnn.config import add_srrcnn_config

        cfg = get_cfg()
        add_srrcnn_config(cfg)
        g = build_generator(cfg, ShapeSpec(channels=256, height=7, width=7))
        self.assertEqual(len(g.blocks), 7)  # thesis: 7 residual blocks
        self.assertIsInstance(g.blocks[0].act, nn.PReLU)
        self.assertIsInstance(g.blocks[0].conv1.norm, nn.BatchNorm2d)
        self.assertIs(type(g.tail), nn.Conv2d)

    def test_bad_activation(self):
        with self.assertRaisesRegex(ValueError, "MODEL.SRRCNN.GENERATOR.ACTIVATION"):
            _gen(8, activation="gelu")
        cfg = get_tiny_cfg()
        cfg.MODEL.SRRCNN.GENERATOR.ACTIVATION = "swish"
        with self.assertRaisesRegex(ValueError, "MODEL.SRRCNN.GENERATOR.ACTIVATION.*swish"):
            build_generator(cfg, ShapeSpec(channels=8, height=7, width=7))

    def test_registry(self):
        self.assertIs(SRRCNN_GENERATOR_REGISTRY.get("SRResNetGenerator"), SRResNetGenerator)

        name = "_TestIdentityGenerator"

        class _TestIdentityGenerator(nn.Module):
            def __init__(self, cfg, input_shape):
                super().__init__()
                self.input_shape = input_shape

            def forward(self, x):
                return x

        SRRCNN_GENERATOR_REGISTRY.register(_TestIdentityGenerator)
        try:
            cfg = get_tiny_cfg()
            cfg.MODEL.SRRCNN.GENERATOR.NAME = name
            shape = ShapeSpec(channels=8, height=7, width=7)
            g = build_generator(cfg, shape)
            self.assertIsInstance(g, _TestIdentityGenerator)
            self.assertEqual(g.input_shape, shape)
        finally:
            SRRCNN_GENERATOR_REGISTRY._obj_map.pop(name)

        cfg = get_tiny_cfg()
        cfg.MODEL.SRRCNN.GENERATOR.NAME = "NoSuchGenerator"
        with self.assertRaises(KeyError):
            build_generator(cfg, ShapeSpec(channels=8, height=7, width=7))


if __name__ == "__main__":
    unittest.main()


def test_input_skip_adds_the_input():
    from detectron2.layers import ShapeSpec

    from srrcnn.generator import SRResNetGenerator

    torch.manual_seed(0)
    shape = ShapeSpec(channels=8, height=7, width=7)
    plain = SRResNetGenerator(shape, num_blocks=1, width=4)
    skip = SRResNetGenerator(shape, num_blocks=1, width=4, input_skip=True)
    skip.load_state_dict(plain.state_dict())
    plain.eval(), skip.eval()
    x = torch.randn(3, 8, 7, 7)
    assert torch.allclose(skip(x), x + plain(x))
    assert not plain.input_skip  # the thesis's generator is the default


def test_test_norm_stats_batch_uses_the_input_statistics():
    g = _gen(test_norm_stats="batch")
    g.train()
    g(torch.randn(16, 8, 7, 7) * 3 + 2)  # running statistics of other inputs
    buffers = {k: v.clone() for k, v in g.state_dict().items()}
    g.eval()
    x = torch.randn(10, 8, 7, 7)
    out = g(x)
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training or not m.track_running_stats for m in norms)  # restored
    for k, v in g.state_dict().items():  # running statistics untouched
        assert torch.equal(v, buffers[k]), k
    g.train()  # training mode = batch statistics too (momentum aside): same output
    for m in norms:
        m.momentum = 0.0
    torch.testing.assert_close(out, g(x))
    g.eval()
    g.test_norm_stats = "running"
    assert not torch.allclose(out, g(x))
