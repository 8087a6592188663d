# -*- coding: utf-8 -*-
"""
SR-RCNN's box path at test (MODEL.SRRCNN.TEST_MODE, SPEC §5): which RoIs go through G, and how
G's predictions are merged with the plain path's. The mask head is Mask R-CNN's in every mode.

- "hr": StandardROIHeads' box path, no G;
- "sr": G on every RoI, then the box head and predictor (thesis);
- "size_aware": the plain path, then G only on the RoIs it predicts small and likely an object
  (:meth:`SRTestModes.select_size_aware`), both predictions merged for them
  (:meth:`SRTestModes.merge_predictions`);
- diagnostics that need a second backbone pass (:meth:`SRRCNN.inference` adds it): "sr_lr"
  (thesis pair), G on RoI_LR of a 0.5x pass, its training input; "size_aware_x2" (an oracle
  for G), "size_aware" with G's output replaced by the real RoI feature of a 2x pass.

G's pass runs through :class:`SRBoxPass` (under torch.compile with MODEL.SRRCNN.TEST_COMPILE).
"""
from typing import Dict, List, Tuple

import torch
from torch.autograd.profiler import record_function

from detectron2.layers import cat
from detectron2.structures import Boxes, Instances

from .export import select_per_image_traceable
from .sr_box_pass import SRBoxPass
from .x2_crops import X2_SCALE, X2_SUFFIX

# Diagnostics: "sr_lr" (thesis pair): G on RoI_LR of a 0.5x pass run at test too;
# "size_aware_x2" (an oracle for G): size_aware with G's output replaced by the real feature of
# the same box in a 2x pass of the whole image, run at test
TEST_MODES = ("sr", "hr", "size_aware", "sr_lr", "size_aware_x2")
SIZE_AWARE_MERGES = ("mean", "replace")


class SRTestModes:
    """
    The test modes, as a mixin of a StandardROIHeads subclass that has a ``generator``,
    ``generator_input(features, proposals, roi, rows=None)`` (G's input for RoI features
    ``roi`` of the proposals, or of those in ``rows``: ``roi``, or ``roi`` with the boxes'
    texture, :meth:`SRROIHeads.generator_input`) and, for "sr_lr", ``pool_lr``: listed
    before StandardROIHeads among its bases, it overrides
    ``_forward_box`` at test; its keyword arguments and config keys pass through ``__init__``
    and ``from_config``, which call super().
    """

    def __init__(self, *, test_mode: str = "size_aware", size_aware_max_size: float = 64.0,
                 size_aware_min_score: float = 0.05, size_aware_max_rois: int = 100,
                 size_aware_merge: str = "mean", test_compile_backend: str = "",
                 test_compile_mode: str = "default", **kwargs):
        """
        Args:
            test_mode: one of TEST_MODES, see the module docstring. An attribute: may be switched.
            size_aware_max_size, size_aware_min_score, size_aware_max_rois: the "size_aware"
                selection, see :meth:`select_size_aware`.
            size_aware_merge: one of SIZE_AWARE_MERGES, see :meth:`merge_predictions`.
            test_compile_backend, test_compile_mode: at test, G and the box head's pass on its
                output under ``torch.compile`` with this backend and mode; "": eager.
            kwargs: for the next base class (StandardROIHeads).
        """
        super().__init__(**kwargs)
        if test_mode not in TEST_MODES:
            raise ValueError(f"MODEL.SRRCNN.TEST_MODE must be one of {TEST_MODES}, got {test_mode!r}")
        if size_aware_merge not in SIZE_AWARE_MERGES:
            raise ValueError(f"MODEL.SRRCNN.SIZE_AWARE.MERGE must be one of {SIZE_AWARE_MERGES}, "
                             f"got {size_aware_merge!r}")
        self.test_mode = test_mode
        self.size_aware_max_size = size_aware_max_size
        self.size_aware_min_score = size_aware_min_score
        self.size_aware_max_rois = size_aware_max_rois
        self.size_aware_merge = size_aware_merge
        self.sr_box_pass = SRBoxPass(test_compile_backend, test_compile_mode)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sr = cfg.MODEL.SRRCNN
        ret.update(test_mode=sr.TEST_MODE, size_aware_max_size=sr.SIZE_AWARE.MAX_SIZE,
                   size_aware_min_score=sr.SIZE_AWARE.MIN_SCORE,
                   size_aware_max_rois=sr.SIZE_AWARE.MAX_ROIS_PER_IMAGE,
                   size_aware_merge=sr.SIZE_AWARE.MERGE,
                   test_compile_backend=sr.TEST_COMPILE.BACKEND,
                   test_compile_mode=sr.TEST_COMPILE.MODE)
        return ret

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """As :meth:`StandardROIHeads._forward_box`; at test, in ``test_mode``."""
        if self.training or self.test_mode == "hr":
            return super()._forward_box(features, proposals)
        return self._inference_with_generator(features, proposals)

    def _inference_with_generator(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """Test modes "sr" (G on every RoI), "sr_lr" (G on every RoI_LR), "size_aware" and
        "size_aware_x2" (``features`` then also hold the 2x pyramid, names + X2_SUFFIX)."""
        hr = [features[f] for f in self.box_in_features]
        if self.test_mode == "sr_lr":
            roi = self.pool_lr(features, proposals)
        else:
            roi = self.box_pooler(hr, [x.proposal_boxes for x in proposals])  # (R, C, P, P)
        if self.test_mode in ("sr", "sr_lr"):
            g_in = self.generator_input(features, proposals, roi)  # "sr_lr": roi (no texture)
            with record_function("srrcnn.sr_box_pass"):  # G, box head, predictor
                predictions = self.sr_box_pass(self.generator, self.box_head, self.box_predictor, g_in)
        else:
            predictions = self.box_predictor(self.box_head(roi))
            select = self.select_size_aware(predictions, proposals)
            # a trace always holds G's pass, for any number of selected RoIs, none included
            if torch.jit.is_tracing() or select.numel() > 0:
                if self.test_mode == "size_aware_x2":
                    sr_roi = self.pool_x2_selected(features, proposals, select)
                    sr_predictions = self.box_predictor(self.box_head(sr_roi))
                else:
                    g_in = self.generator_input(features, proposals, roi[select], select)
                    with record_function("srrcnn.sr_box_pass"):
                        sr_predictions = self.sr_box_pass(self.generator, self.box_head,
                                                          self.box_predictor, g_in)
                predictions = self.merge_predictions(predictions, sr_predictions, select)
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances

    def pool_x2_selected(self, features: Dict[str, torch.Tensor], proposals: List[Instances],
                         select: torch.Tensor) -> torch.Tensor:
        """
        (R_S, C, P, P): the selected RoIs (indices into the concatenated proposals, grouped by
        image as :meth:`select_size_aware` returns them) pooled from the 2x pyramid of the
        whole image, with boxes x X2_SCALE.
        """
        boxes, offset = [], 0
        for p in proposals:
            rows = select[(select >= offset) & (select < offset + len(p))] - offset
            boxes.append(Boxes(p.proposal_boxes.tensor[rows] * X2_SCALE))
            offset += len(p)
        return self.box_pooler([features[f + X2_SUFFIX] for f in self.box_in_features], boxes)

    def select_size_aware(self, predictions: Tuple[torch.Tensor, torch.Tensor],
                          proposals: List[Instances]) -> torch.Tensor:
        """
        The RoIs that the "size_aware" test mode sends through G, decided from the plain
        (no G) pass: the box predictor's own refined box for its top foreground class is
        smaller than ``size_aware_max_size`` (sqrt of the area, input pixels) and that
        class's probability is at least ``size_aware_min_score``; per image at most
        ``size_aware_max_rois`` of them, the most likely first.

        Args:
            predictions: (scores (R, K+1), deltas (R, 4K)) of the plain pass.
            proposals: per image, with ``proposal_boxes``.

        Returns:
            (R_S,) indices into the concatenated proposals.
        """
        probs = cat(self.box_predictor.predict_probs(predictions, proposals))  # (R, K+1)
        score, cls = probs[:, :-1].max(dim=1)
        deltas = predictions[1]
        if deltas.shape[1] > 4:  # class-specific: decode only the top class's box
            r = deltas.shape[0]  # not len(): a trace keeps it a size, not a constant
            deltas = deltas.view(r, -1, 4)[torch.arange(r, device=deltas.device), cls]
        b = self.box_predictor.box2box_transform.apply_deltas(
            deltas, cat([p.proposal_boxes.tensor for p in proposals]))  # (R, 4)
        side = ((b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)).sqrt()
        small = (side < self.size_aware_max_size) & (score >= self.size_aware_min_score)
        if torch.jit.is_tracing():  # export: the same RoIs, selected without Python branches
            boxes = [p.proposal_boxes.tensor for p in proposals]
            return select_per_image_traceable(small, score, boxes, self.size_aware_max_rois)
        selected, offset = [], 0
        for p in proposals:
            keep = torch.nonzero(small[offset:offset + len(p)]).squeeze(1) + offset
            if self.size_aware_max_rois > 0 and len(keep) > self.size_aware_max_rois:
                keep = keep[score[keep].topk(self.size_aware_max_rois).indices]
            selected.append(keep)
            offset += len(p)
        return torch.cat(selected) if selected else torch.zeros(0, dtype=torch.long)

    def merge_predictions(self, predictions, sr_predictions, select: torch.Tensor):
        """
        Predictions of the plain pass with those of the selected RoIs replaced by a merge of
        both passes: "mean" averages the class probabilities (as log-probabilities, which
        the predictor's softmax turns back into the mean) and the box deltas; "replace" takes
        G's pass.

        Args:
            predictions: (scores (R, K+1), deltas (R, B)) of the plain pass.
            sr_predictions: (scores (R_S, K+1), deltas (R_S, B)) of G's pass on the selected RoIs.
            select: (R_S,) their indices.

        Returns:
            (scores (R, K+1), deltas (R, B)), new tensors.
        """
        scores, deltas = (t.clone() for t in predictions)
        sr_scores, sr_deltas = sr_predictions
        if self.size_aware_merge != "replace":
            probs = (scores[select].softmax(-1) + sr_scores.softmax(-1)) / 2
            sr_scores = probs.clamp(min=1e-12).log()
            sr_deltas = (deltas[select] + sr_deltas) / 2
        # index_put_, not `scores[select] = ...`: a trace of that fixes the shape of one row
        scores.index_put_((select,), sr_scores)
        deltas.index_put_((select,), sr_deltas)
        return scores, deltas
