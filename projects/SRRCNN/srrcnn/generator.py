# -*- coding: utf-8 -*-
"""The generator G_w of SR-RCNN: low-resolution RoI features -> super-resolved RoI features."""
import contextlib

import fvcore.nn.weight_init as weight_init

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.utils.registry import Registry

SRRCNN_GENERATOR_REGISTRY = Registry("SRRCNN_GENERATOR")
SRRCNN_GENERATOR_REGISTRY.__doc__ = """
Registry for SR-RCNN generators, which turn RoI features pooled from the 0.5x image into
super-resolved RoI features of the same shape.

The registered object is called with `obj(cfg, input_shape)` and must map a tensor of shape
(R, C, P, P) to a tensor of the same shape, where `input_shape` = ShapeSpec(C, P, P).
"""


def _activation(name: str, channels: int) -> nn.Module:
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(
        f"MODEL.SRRCNN.GENERATOR.ACTIVATION must be 'prelu', 'relu' or 'leaky_relu', got {name!r}"
    )


class ResidualBlock(nn.Module):
    """SRGAN's residual block: x + norm(conv3x3(act(norm(conv3x3(x))))). Shape-preserving."""

    def __init__(self, channels: int, norm: str, activation: str):
        super().__init__()
        self.conv1 = Conv2d(channels, channels, 3, padding=1, bias=not norm,
                            norm=get_norm(norm, channels))
        self.act = _activation(activation, channels)
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=not norm,
                            norm=get_norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


@SRRCNN_GENERATOR_REGISTRY.register()
class SRResNetGenerator(nn.Module):
    """
    SRGAN-style residual generator without upsampling (thesis §3.3, SPEC §2.5):

        [conv3x3 C->W + act]  (only when W != C)
        NUM_BLOCKS x ResidualBlock(W)
        conv3x3 W->C          (plain: no norm, no activation)

    The last layer is linear so the output follows the (unbounded, signed) distribution of
    FPN features; a final activation or batch norm over the RoI batch breaks end-to-end
    training (the thesis's key change to SRGAN).

    Input and output: (R, C, P, P), e.g. (R, 256, 7, 7) with FPN.
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_blocks: int, width: int,
                 norm: str = "BN", activation: str = "prelu", input_skip: bool = False,
                 test_norm_stats: str = "running"):
        """
        Args:
            input_shape: ShapeSpec(channels=C, height=P, width=P) of the RoI features.
            num_blocks: number of residual blocks (thesis: 7).
            width: channels inside the blocks, W.
            norm: normalisation inside the blocks (detectron2 `get_norm` name or "").
            activation: "prelu", "relu" or "leaky_relu".
            input_skip: return x + tail(...) (global residual learning, as VDSR) instead of
                tail(...); the output stays linear either way.
            test_norm_stats: "running", or "batch": in eval mode the batch norms normalise
                with the statistics of the input batch (running statistics untouched).
        """
        super().__init__()
        channels = input_shape.channels
        self._output_shape = input_shape
        if width != channels:
            self.head = nn.Sequential(Conv2d(channels, width, 3, padding=1),
                                      _activation(activation, width))
        else:
            self.head = nn.Identity()
        self.blocks = nn.Sequential(*[ResidualBlock(width, norm, activation)
                                      for _ in range(num_blocks)])
        # the linear tail: no norm, no activation
        self.tail = nn.Conv2d(width, channels, 3, padding=1)
        self.input_skip = input_skip
        if test_norm_stats not in ("running", "batch"):
            raise ValueError("MODEL.SRRCNN.GENERATOR.TEST_NORM_STATS must be 'running' or 'batch', "
                             f"got {test_norm_stats!r}")
        self.test_norm_stats = test_norm_stats
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                weight_init.c2_msra_fill(m)

    @classmethod
    def from_config(cls, cfg, input_shape):
        g = cfg.MODEL.SRRCNN.GENERATOR
        return {"input_shape": input_shape, "num_blocks": g.NUM_BLOCKS, "width": g.WIDTH,
                "norm": g.NORM, "activation": g.ACTIVATION, "input_skip": g.INPUT_SKIP,
                "test_norm_stats": g.TEST_NORM_STATS}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, P, P) -> (R, C, P, P)."""
        with self._norm_statistics():
            out = self.tail(self.blocks(self.head(x)))
        return x + out if self.input_skip else out

    @contextlib.contextmanager
    def _norm_statistics(self):
        """With test_norm_stats "batch" in eval mode: batch norms use the batch's statistics."""
        if self.training or self.test_norm_stats == "running":  # the usual path: nothing to do
            yield
            return
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:  # training mode without tracking: batch statistics, buffers untouched
            m.train()
            m.track_running_stats = False
        try:
            yield
        finally:
            for m in norms:
                m.eval()
                m.track_running_stats = True

    @property
    def output_shape(self) -> ShapeSpec:
        return self._output_shape


def build_generator(cfg, input_shape: ShapeSpec) -> nn.Module:
    """Build the generator named by ``cfg.MODEL.SRRCNN.GENERATOR.NAME``."""
    return SRRCNN_GENERATOR_REGISTRY.get(cfg.MODEL.SRRCNN.GENERATOR.NAME)(cfg, input_shape)
