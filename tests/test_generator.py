# -*- coding: utf-8 -*-
"""Tests of srrcnn/generator.py: the generator G_w (SPEC §2.5)."""

import unittest

import pytest

import torch
from torch import nn

from detectron2.layers import ShapeSpec

from srrcnn.generator import (
    SRRCNN_GENERATOR_REGISTRY,
    IdentityGenerator,
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


# --- G fast at test: batch norms folded into the convolutions (issue 13, item 4) ------------

FOLDED_NORMS = ("BN", "SyncBN", "FrozenBN", "naiveSyncBN")  # running statistics: folded
KEPT_NORMS = ("GN", "LN", "")  # per-sample statistics or none: nothing to fold


def _trained_gen(norm, input_skip=False, seed=0):
    """A generator whose norms hold non-trivial statistics and affine parameters."""
    torch.manual_seed(seed)
    g = _gen(8, width=32 if norm == "GN" else 4, norm=norm, input_skip=input_skip)  # GN: 32 groups
    g.train()
    for _ in range(3):
        g(torch.randn(16, 8, 7, 7) * 3 + 1)  # running statistics of BN / SyncBN
    with torch.no_grad():
        for m in g.modules():
            if m is not g and hasattr(m, "weight") and hasattr(m, "running_var"):  # FrozenBN
                m.weight.uniform_(0.5, 2.0), m.bias.normal_()
                m.running_mean.normal_(), m.running_var.uniform_(0.5, 2.0)
    return g


@pytest.mark.parametrize("norm", FOLDED_NORMS + KEPT_NORMS)
@pytest.mark.parametrize("input_skip", [False, True])
def test_folded_generator_equals_unfolded(norm, input_skip):
    g = _trained_gen(norm, input_skip)
    g.eval()
    x = torch.randn(10, 8, 7, 7)
    reference = g(x)  # autograd on: G itself, conv then norm
    with torch.no_grad():
        module = g.inference_module()
        out = g(x)
        again = g.inference_module()
    if norm in FOLDED_NORMS:
        assert module is not g and again is module  # cached
        folded = [m for m in module.modules() if hasattr(m, "running_mean")]
        assert not folded, f"{norm}: norms left after folding: {folded}"
    else:
        assert module is g
    # folding reorders float32 arithmetic through 7 blocks: ~1e-5 apart (the CI saw 1.3e-5 on 1 of
    # 3 920 values); an unfolded or wrongly folded norm is off by O(1)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g.fold_batch_norms()(x), reference, rtol=1e-4, atol=1e-4)


def test_fold_the_thesis_generator():
    """7 blocks, 256 -> 64 channels: within 1e-5 of the output's scale."""
    g = _gen(256, num_blocks=7, width=64)
    for _ in range(2):
        g(torch.randn(32, 256, 7, 7) * 2 + 1)
    g.eval()
    x = torch.randn(50, 256, 7, 7)
    reference = g(x)
    with torch.no_grad():
        out = g(x)
    assert (out - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_batch_statistics_at_test_are_not_folded():
    g = _trained_gen("BN")
    g.test_norm_stats = "batch"
    g.eval()
    x = torch.randn(10, 8, 7, 7)
    with torch.no_grad():
        assert g.inference_module() is g
        out = g(x)
    g.train()  # batch statistics: the same output as in training mode, momentum aside
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0
    torch.testing.assert_close(out, g(x))


def test_autograd_on_uses_the_generator_itself():
    g = _trained_gen("BN").eval()
    assert g.inference_module() is g
    g(torch.randn(4, 8, 7, 7)).sum().backward()
    assert all(p.grad is not None for p in g.parameters())
    g.fold_at_test = False
    with torch.no_grad():
        assert g.inference_module() is g


def test_folding_leaves_state_dict_and_parameters_unchanged():
    g = _trained_gen("BN")
    before = {k: v.clone() for k, v in g.state_dict().items()}
    params = [id(p) for p in g.parameters()]
    g.eval()  # folds
    with torch.no_grad():
        g(torch.randn(4, 8, 7, 7))
    assert g.state_dict().keys() == before.keys()
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [id(p) for p in g.parameters()] == params
    assert not any("fold" in name for name, _ in g.named_modules())
    g.train()
    assert g.state_dict().keys() == before.keys()


def test_folded_copy_follows_weight_changes():
    """Loaded, edited in place, trained, converted: the folded copy is folded again."""
    g = _trained_gen("BN").eval()
    x = torch.randn(6, 8, 7, 7)

    def check():
        reference = g(x)
        with torch.no_grad():
            torch.testing.assert_close(g(x), reference, rtol=1e-5, atol=1e-5)

    with torch.no_grad():
        g(x)  # folded and cached
    g.load_state_dict(_trained_gen("BN", seed=1).state_dict())
    check()
    with torch.no_grad():
        nn.init.normal_(g.blocks[0].conv1.norm.weight)  # an in-place edit
        g.blocks[1].conv2.norm.running_var.mul_(3)
    check()
    optimizer = torch.optim.SGD(g.parameters(), lr=0.1)
    g.train()
    g(torch.randn(16, 8, 7, 7)).square().mean().backward()
    optimizer.step()
    g.eval()
    check()
    g.double()
    x = x.double()
    check()
    g.load_state_dict(_trained_gen("BN", seed=2).double().state_dict(), assign=True)
    check()


def test_checkpoint_saved_after_eval_loads_and_trains_identically():
    """Evaluating (and folding) in the middle of training changes nothing in training."""
    data = [torch.randn(16, 8, 7, 7) for _ in range(4)]

    def train(g, batches):
        optimizer = torch.optim.SGD(g.parameters(), lr=0.1, momentum=0.9)
        g.train()
        for x in batches:
            optimizer.zero_grad()
            g(x).square().mean().backward()
            optimizer.step()
        return {k: v.clone() for k, v in g.state_dict().items()}

    plain, evaluated = _trained_gen("BN"), _trained_gen("BN")
    train(plain, data[:2])
    train(evaluated, data[:2])
    evaluated.eval()
    with torch.no_grad():
        evaluated(torch.randn(5, 8, 7, 7))
    checkpoint = {k: v.clone() for k, v in evaluated.state_dict().items()}
    for k, v in plain.state_dict().items():
        assert torch.equal(checkpoint[k], v), k
    loaded = _trained_gen("BN", seed=3)
    loaded.load_state_dict(checkpoint)
    # optimizers restart in both, so compare the runs from the checkpoint on
    a, b = train(evaluated, data[2:]), train(loaded, data[2:])
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_copies_start_without_a_folded_copy():
    import copy
    import pickle

    g = _trained_gen("BN").eval()
    x = torch.randn(4, 8, 7, 7)
    with torch.no_grad():
        out = g(x)
    for other in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert other._fold_cache.module is None
        with torch.no_grad():
            torch.testing.assert_close(other(x), out)
            assert other.inference_module() is not g.inference_module()


# --- G's texture input (MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE, srrcnn/texture.py) ------------

@pytest.mark.parametrize("width", [4, 8])
def test_texture_channels_are_read_by_the_head_only(width):
    """(R, C + T, P, P) -> (R, C, P, P): the head conv reads all C + T channels (never an
    Identity, also with W == C); input_skip adds the first C; folding keeps the function."""
    torch.manual_seed(0)
    g = _gen(8, width=width, texture_channels=12)
    assert g.head[0].in_channels == 20 and g.head[0].out_channels == width
    assert g.tail.out_channels == 8 and g.output_shape.channels == 8
    x = torch.randn(5, 20, 7, 7)
    assert g(x).shape == (5, 8, 7, 7)
    g(x).sum().backward()
    assert g.head[0].weight.grad[:, 8:].abs().sum() > 0  # the texture reaches G's head conv

    skip = _gen(8, width=width, texture_channels=12, input_skip=True)
    skip.load_state_dict(g.state_dict())
    for training in (True, False):
        g.train(training), skip.train(training)
        torch.testing.assert_close(skip(x), x[:, :8] + g(x))
    for m in g.modules():  # non-trivial running statistics, then folded at test
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(), m.running_var.uniform_(0.5, 2.0)
    g.eval()
    reference = g(x)
    with torch.no_grad():
        assert g.inference_module() is not g
        torch.testing.assert_close(g(x), reference, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError):
        g(torch.randn(5, 8, 7, 7))  # the texture is not optional


def test_texture_scale_from_config():
    cfg = get_tiny_cfg()
    shape = ShapeSpec(channels=16, height=7, width=7)
    assert build_generator(cfg, shape).texture_channels == 0  # off by default
    cfg.MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE = 2
    g = build_generator(cfg, shape)
    assert g.texture_channels == 12 and g.head[0].in_channels == 28
    assert g(torch.randn(3, 28, 7, 7)).shape == (3, 16, 7, 7)


def test_identity_generator_returns_its_input_and_has_no_parameters():
    cfg = get_tiny_cfg()
    cfg.MODEL.SRRCNN.GENERATOR.NAME = "IdentityGenerator"
    shape = ShapeSpec(channels=8, height=7, width=7)
    g = build_generator(cfg, shape)
    assert isinstance(g, IdentityGenerator) and g.output_shape == shape
    assert list(g.parameters()) == [] and list(g.buffers()) == []
    x = torch.randn(5, 8, 7, 7)
    assert torch.equal(g(x), x) and torch.equal(g.eval()(x), x)
    # with texture channels after the RoI feature: the RoI feature alone
    assert torch.equal(g(torch.cat([x, torch.randn(5, 12, 7, 7)], dim=1)), x)
    assert g(x[:0]).shape == (0, 8, 7, 7)
