# -*- coding: utf-8 -*-
"""Shared test setup."""
import os
import tempfile

import pytest
import torch

# Generated datasets go to a fresh folder, never into the checkout or a user's cache. Set
# before any test module imports srrcnn (which registers the default names under this root).
os.environ["SRRCNN_DATASETS"] = tempfile.mkdtemp(prefix="srrcnn_test_datasets_")


@pytest.fixture(scope="session", autouse=True)
def one_intra_op_thread():
    # the test machine's few cores are shared: one intra-op thread avoids oversubscription
    # stalls (seconds per step) and keeps the suite's time predictable
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def catalog_names():
    """Names registered by a test; removed from both catalogs afterwards (they are global)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = []
    yield names
    for name in names:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


class RoIHeadsCase:
    """
    Builds SR-RCNN's ROI heads, or its predictor alone from kwargs, and inputs of the shapes
    they take: the FPN pyramid of a batch of 256 px images (and its 0.5x copy), proposals with
    their ground truth. One seeded instance a test: the ``roi`` fixture.
    """

    IMAGE_SIZE = 256  # large enough that proposals span several FPN levels
    LEVELS = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    CHANNELS = 32  # get_tiny_cfg's FPN.OUT_CHANNELS

    def cfg(self, sr=True, **srrcnn_keys):
        """get_tiny_cfg, with MODEL.SRRCNN keys ("SIZE_AWARE.MAX_SIZE"=... as SIZE_AWARE__MAX_SIZE)."""
        from srrcnn.testing import get_tiny_cfg

        cfg = get_tiny_cfg(sr=sr)
        for key, value in srrcnn_keys.items():
            *path, name = key.split("__")
            node = cfg.MODEL.SRRCNN
            for p in path:
                node = node[p]
            setattr(node, name, value)
        return cfg

    def heads(self, cfg=None, **srrcnn_keys):
        """The ROI heads of ``cfg`` (default: :meth:`cfg` with ``srrcnn_keys``)."""
        from detectron2.layers import ShapeSpec
        from detectron2.modeling import build_roi_heads

        shape = {k: ShapeSpec(channels=self.CHANNELS, stride=s) for k, s in self.LEVELS.items()}
        return build_roi_heads(cfg or self.cfg(**srrcnn_keys), shape)

    def eval_heads(self, test_mode, **srrcnn_keys):
        """:meth:`heads` in eval mode, in ``test_mode``."""
        heads = self.heads(**srrcnn_keys).eval()
        heads.test_mode = test_mode
        return heads

    def predictor(self, cls=None, channels=8, height=None, width=None, num_classes=4):
        """SRFastRCNNOutputLayers (or ``cls``) from kwargs, on (R, channels[, height, width])."""
        from detectron2.layers import ShapeSpec
        from detectron2.modeling.box_regression import Box2BoxTransform

        from srrcnn.fast_rcnn import SRFastRCNNOutputLayers

        return (cls or SRFastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=channels, height=height, width=width),
            box2box_transform=Box2BoxTransform(weights=(10, 10, 5, 5)), num_classes=num_classes)

    def features(self, num_images=2, lr=True, seed=1, suffix=None, scale=1):
        """{"p2": (N, C, H, W), ...}; with ``lr`` also the 0.5x pyramid (names + LR_SUFFIX).
        ``suffix``: instead, one pyramid under the names + suffix, ``scale`` x the size."""
        from srrcnn.roi_heads import LR_SUFFIX

        g = torch.Generator().manual_seed(seed)
        feats = {}
        for k, s in self.LEVELS.items():
            n = self.IMAGE_SIZE // s
            if suffix is not None:
                feats[k + suffix] = torch.randn(num_images, self.CHANNELS, scale * n, scale * n, generator=g)
                continue
            feats[k] = torch.randn(num_images, self.CHANNELS, n, n, generator=g)
            if lr:  # the 0.5x pyramid: half the size
                m = max(n // 2, 1)
                feats[k + LR_SUFFIX] = torch.randn(num_images, self.CHANNELS, m, m, generator=g)
        return feats

    def _boxes(self, n, g, min_size=8, max_size=None):
        max_size = max_size or self.IMAGE_SIZE - 1
        wh = min_size + torch.rand(n, 2, generator=g) * (max_size - min_size)
        xy = torch.rand(n, 2, generator=g) * (self.IMAGE_SIZE - wh)
        return torch.cat([xy, xy + wh], dim=1)

    def proposals_and_targets(self, num_images=2, num_proposals=40, num_gt=3, seed=2):
        """Per image, proposals (jittered ground truth, then random boxes of all sizes) and
        targets (gt_boxes, gt_classes, square gt_masks)."""
        from detectron2.structures import Boxes, Instances, PolygonMasks

        g = torch.Generator().manual_seed(seed)
        size = (self.IMAGE_SIZE, self.IMAGE_SIZE)
        proposals, targets = [], []
        for _ in range(num_images):
            gt = self._boxes(num_gt, g, 16, 200)
            t = Instances(size, gt_boxes=Boxes(gt), gt_classes=torch.randint(4, (num_gt,), generator=g))
            t.gt_masks = PolygonMasks([[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in gt.tolist()])
            targets.append(t)
            jitter = gt.repeat(4, 1) + torch.randn(4 * num_gt, 4, generator=g) * 4
            boxes = Boxes(torch.cat([jitter, self._boxes(num_proposals - len(jitter), g)]))
            boxes.clip(size)
            proposals.append(Instances(size, proposal_boxes=boxes,
                                       objectness_logits=torch.randn(num_proposals, generator=g)))
        return proposals, targets

    def empty_proposals(self):
        """One image without proposals, with (empty) ground-truth fields."""
        from detectron2.structures import Boxes, Instances

        return [Instances((10, 10), proposal_boxes=Boxes(torch.zeros(0, 4)),
                          gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0, dtype=torch.long))]

    @staticmethod
    def train(heads, feats, proposals, targets):
        """One training forward of the heads (in an EventStorage); returns the loss dict."""
        from detectron2.utils.events import EventStorage

        heads.train()
        with EventStorage():
            _, losses = heads(None, feats, proposals, targets)
        return losses

    @staticmethod
    def predict(heads, feats, proposals):
        """The heads' detections, without gradient."""
        with torch.no_grad():
            return heads(None, feats, proposals)[0]

    @staticmethod
    def record_pooler(pooler):
        """A list that gets (features, box tensors, output) of each call of ``pooler``."""
        calls, forward = [], pooler.forward

        def recorded(x, box_lists):
            out = forward(x, box_lists)
            calls.append((list(x), [b.tensor.clone() for b in box_lists], out))
            return out

        pooler.forward = recorded
        return calls

    @staticmethod
    def record_inputs(module):
        """A list that gets the first input of each call of ``module`` (a forward hook)."""
        inputs = []
        module.register_forward_hook(lambda m, i, o: inputs.append(i[0]))
        return inputs


@pytest.fixture
def roi():
    """:class:`RoIHeadsCase`, with torch's global seed set (as detectron2's tests in setUp)."""
    torch.manual_seed(42)
    return RoIHeadsCase()
