# -*- coding: utf-8 -*-
"""The generator G_w of SR-RCNN: low-resolution RoI features -> super-resolved RoI features."""
import contextlib
import copy
import itertools

import fvcore.nn.weight_init as weight_init

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

from detectron2.config import configurable
from detectron2.layers import Conv2d, FrozenBatchNorm2d, ShapeSpec, get_norm
from detectron2.utils.registry import Registry

from .texture import texture_channels as _texture_channels

SRRCNN_GENERATOR_REGISTRY = Registry("SRRCNN_GENERATOR")
SRRCNN_GENERATOR_REGISTRY.__doc__ = """
Registry for SR-RCNN generators, which turn RoI features pooled from the 0.5x image into
super-resolved RoI features of the same shape.

The registered object is called with `obj(cfg, input_shape)` and must map a tensor of shape
(R, C, P, P) to a tensor of the same shape, where `input_shape` = ShapeSpec(C, P, P); with
MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE k > 0, a tensor of shape (R, C + 3 k^2, P, P) (the RoI
feature, then its texture: :mod:`srrcnn.texture`) to (R, C, P, P).
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


def _foldable(norm) -> bool:
    """A norm that is an affine map of its input at test: a batch norm with running statistics."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return isinstance(norm, _BatchNorm) and norm.running_mean is not None


def _double(t):
    return None if t is None else t.double()


class _FoldCache:
    """
    G's folded copy for inference, and G's tensors with the version counters they had when it
    was folded (every in-place edit of a tensor, ``copy_`` by load_state_dict, an optimizer
    step, ``nn.init``, bumps its counter). A plain object, so not in G's state_dict or
    parameters; a copy or unpickling of G starts with an empty one.
    """

    def __init__(self):
        self.module, self.tensors, self.versions = None, [], None

    def stale(self) -> bool:
        return self.versions is None or [t._version for t in self.tensors] != self.versions

    def mark(self, tensors) -> None:
        """Remember `tensors` as they are now (inference tensors have no counter: and cannot
        be edited outside inference_mode)."""
        self.tensors = [t for t in tensors if not t.is_inference()]
        self.versions = [t._version for t in self.tensors]

    def __deepcopy__(self, memo):
        return _FoldCache()

    def __getstate__(self):
        return _FoldCache().__dict__


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

        [conv3x3 C+T->W + act]  (only when W != C or T > 0)
        NUM_BLOCKS x ResidualBlock(W)
        conv3x3 W->C            (plain: no norm, no activation)

    The last layer is linear so the output follows the (unbounded, signed) distribution of
    FPN features; a final activation or batch norm over the RoI batch breaks end-to-end
    training (the thesis's key change to SRGAN).

    Input (R, C + T, P, P): the RoI features, then T texture channels (T = 0 by default, see
    :mod:`srrcnn.texture`); output (R, C, P, P), e.g. (R, 256, 7, 7) with FPN.
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_blocks: int = 7, width: int = 64,
                 norm: str = "BN", activation: str = "prelu", input_skip: bool = False,
                 test_norm_stats: str = "running", fold_at_test: bool = True,
                 texture_channels: int = 0):
        """
        Args:
            input_shape: ShapeSpec(channels=C, height=P, width=P) of the RoI features.
            num_blocks: number of residual blocks (thesis: 7).
            width: channels inside the blocks, W.
            norm: normalisation inside the blocks (detectron2 `get_norm` name or "").
            activation: "prelu", "relu" or "leaky_relu".
            input_skip: return x + tail(...) (global residual learning, as VDSR) instead of
                tail(...), x the first C input channels; the output stays linear either way.
            test_norm_stats: "running", or "batch": in eval mode the batch norms normalise
                with the statistics of the input batch (running statistics untouched).
            fold_at_test: at test with "running" statistics, compute G by its folded copy
                (:meth:`inference_module`): the same function, fewer kernels. False: as in
                training, conv then norm (e.g. to measure what folding saves).
            texture_channels: T, extra input channels after the C of the RoI features, read
                by the head conv only (MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE k: T = 3 k^2).
        """
        super().__init__()
        channels = input_shape.channels
        self._output_shape = input_shape
        self.texture_channels = texture_channels
        if width != channels or texture_channels:
            self.head = nn.Sequential(Conv2d(channels + texture_channels, width, 3, padding=1),
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
        self.fold_at_test = fold_at_test
        self._fold_cache = _FoldCache()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                weight_init.c2_msra_fill(m)

    @classmethod
    def from_config(cls, cfg, input_shape):
        g = cfg.MODEL.SRRCNN.GENERATOR
        return {"input_shape": input_shape, "num_blocks": g.NUM_BLOCKS, "width": g.WIDTH,
                "norm": g.NORM, "activation": g.ACTIVATION, "input_skip": g.INPUT_SKIP,
                "test_norm_stats": g.TEST_NORM_STATS,
                "texture_channels": _texture_channels(g.TEXTURE_SCALE)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C + T, P, P) -> (R, C, P, P)."""
        module = self.inference_module()
        if module is not self:  # its forward: this module's hooks have run, not the copy's
            return module.forward(x)
        with self._norm_statistics():
            out = self.tail(self.blocks(self.head(x)))
        if not self.input_skip:
            return out
        return (x[:, :self._output_shape.channels] if self.texture_channels else x) + out

    def train(self, mode: bool = True):
        """As nn.Module.train; going to eval mode also folds the batch norms (see
        :meth:`inference_module`), going to training mode marks the folded copy stale."""
        super().train(mode)
        self._fold_cache.versions = None
        if not mode and self.fold_at_test and self.test_norm_stats == "running":
            self._refold()
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        self._fold_cache.versions = None  # loaded (also by assignment): fold again
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._fold_cache = _FoldCache()  # .to(device), .half(), ...: fold again from the new tensors
        return super()._apply(fn, *args, **kwargs)

    def inference_module(self) -> nn.Module:
        """
        The module that computes G now. At test (eval mode, ``test_norm_stats`` "running",
        autograd off, ``fold_at_test``) with batch norms to fold: a cached copy of G with
        every batch norm folded into the convolution before it (:meth:`fold_batch_norms`),
        folded again when G's weights or buffers have been loaded, trained, moved or edited in
        place since (a parameter object replaced by assignment needs ``train()`` then
        ``eval()``). Otherwise G itself: in training, with batch statistics at test, or with
        autograd on (gradients must reach G's weights, which the folded copy holds as
        constants).
        """
        if self.training or not self.fold_at_test or self.test_norm_stats != "running" \
                or torch.is_grad_enabled():
            return self
        if self._fold_cache.stale():
            self._refold()
        return self if self._fold_cache.module is None else self._fold_cache.module

    def _refold(self):
        """(Re)build the cached folded copy, in place when there is one (a torch.compile'd
        caller keeps its graph, since the copy stays the same module)."""
        cache = self._fold_cache
        if not any(_foldable(getattr(m, "norm", None)) for m in self.modules()):
            cache.module = None  # GroupNorm, LayerNorm or none: nothing to fold
        elif cache.module is None:
            cache.module = self.fold_batch_norms()
        else:
            with torch.inference_mode(False), torch.no_grad():
                cache.module.load_state_dict(self.fold_batch_norms().state_dict())
        cache.mark(itertools.chain(self.parameters(), self.buffers()))

    def fold_batch_norms(self) -> "SRResNetGenerator":
        """
        A copy of G in eval mode in which every batch norm with running statistics
        (BN, SyncBN, FrozenBN) is folded into the convolution before it: conv weight x
        gamma / sqrt(var + eps), and the matching bias (``torch.nn.utils.fusion``). At test it
        computes the same function as G (up to float rounding); other norms stay as they are.
        G itself and its state_dict are unchanged; the copy's tensors need no gradient.

        Returns:
            SRResNetGenerator mapping (R, C + T, P, P) to (R, C, P, P).
        """
        # a tensor made under inference_mode could not be updated in place outside it
        with torch.inference_mode(False), torch.no_grad():
            folded = copy.deepcopy(self)
            folded.fold_at_test = False
            for m in folded.modules():
                norm = getattr(m, "norm", None)
                if isinstance(m, nn.Conv2d) and _foldable(norm):
                    dtype = m.weight.dtype
                    weight, bias = fuse_conv_bn_weights(  # in float64, then G's dtype
                        _double(m.weight), _double(m.bias), _double(norm.running_mean),
                        _double(norm.running_var), norm.eps, _double(norm.weight),
                        _double(norm.bias))
                    m.weight, m.bias = nn.Parameter(weight.to(dtype)), nn.Parameter(bias.to(dtype))
                    m.norm = None
        return folded.requires_grad_(False).eval()

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


@SRRCNN_GENERATOR_REGISTRY.register()
class IdentityGenerator(nn.Module):
    """
    No generator, a control (beyond the thesis; issue 12): G(x) = x. D's SR-path terms (task
    and real/fake) then see G's input itself, e.g. RoI_LR for the thesis pair: a second,
    lower-resolution view of the sampled RoIs for the shared head, without super-resolution.
    It has no parameters, so G's objective trains nothing (:class:`srrcnn.gan_trainer.SRGANTrainer`
    takes no G step), and the test modes "sr" and "size_aware" give what "hr" gives.

    Input (R, C + T, P, P), output its first C channels (R, C, P, P).
    """

    def __init__(self, cfg, input_shape: ShapeSpec):
        super().__init__()
        self._output_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C + T, P, P) -> (R, C, P, P)."""
        return x[:, :self._output_shape.channels]

    @property
    def output_shape(self) -> ShapeSpec:
        return self._output_shape


def build_generator(cfg, input_shape: ShapeSpec) -> nn.Module:
    """Build the generator named by ``cfg.MODEL.SRRCNN.GENERATOR.NAME``."""
    return SRRCNN_GENERATOR_REGISTRY.get(cfg.MODEL.SRRCNN.GENERATOR.NAME)(cfg, input_shape)
