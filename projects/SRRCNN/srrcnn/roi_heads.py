# -*- coding: utf-8 -*-
"""SR-RCNN's ROI heads: RoI_HR and RoI_LR from one ROIPooler, the generator, the GAN losses."""
import copy
from typing import Dict, List, Tuple

import torch
from torch.autograd.profiler import record_function

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.sampling import subsample_labels
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from .export import select_per_image_traceable
from .fast_rcnn import SRFastRCNNOutputLayers
from .generator import build_generator
from .losses import content_loss, discriminator_adversarial_loss, generator_adversarial_loss
from .sr_box_pass import SRBoxPass
from .x2_crops import X2_SCALE, X2_SUFFIX, X2_WINDOWS, assign_to_windows

# In training, the meta-architecture passes the 0.5x pyramid in the same `features` dict as
# the full-resolution one, each level under its name plus this suffix ("p2" -> "p2_lr").
# Heads that select features by name (box, mask, keypoint) only ever see the full pyramid.
LR_SUFFIX = "_lr"
# Loss names that start with this prefix form G's objective; all others form D's.
G_LOSS_PREFIX = "loss_G_"
# Diagnostics: "sr_lr" (thesis pair): G on RoI_LR of a 0.5x pass run at test too;
# "size_aware_x2" (an oracle for G): size_aware with G's output replaced by the real feature of
# the same box in a 2x pass of the whole image, run at test
TEST_MODES = ("sr", "hr", "size_aware", "sr_lr", "size_aware_x2")
# what G maps (MODEL.SRRCNN.PAIR): RoI_LR -> RoI_HR (thesis), or RoI_HR -> RoI of a 2x pass
PAIRS = ("half_to_full", "full_to_double")
LR_POOL_LEVELS = ("scaled_box", "full_box")
SIZE_AWARE_MERGES = ("mean", "replace")


@ROI_HEADS_REGISTRY.register()
class SRROIHeads(StandardROIHeads):
    """
    StandardROIHeads whose box branch is SR-RCNN's generator + discriminator (SPEC §2.4-2.6).

    Training: the sampled proposals are pooled by the same ROIPooler (ROIAlignV2) twice:
    RoI_HR (all R sampled RoIs) from the full pyramid, and RoI_LR from the 0.5x pyramid with
    boxes x LR_SCALE (the pooler picks the FPN level from the scaled box) for the R_G RoIs
    that G trains on (all R as in the thesis, or a foreground-first subset: G_ROIS_PER_IMAGE).
    RoI_HR and G(RoI_LR) go through the shared box head and SRFastRCNNOutputLayers in one
    batch of R + R_G. Returns G's losses (prefix ``loss_G_``) and D's losses; the trainer
    routes each to its parameters.

    Inference: no 0.5x pyramid. TEST_MODE "sr" sends the full-resolution RoI features through
    G before the box head (thesis); "hr" uses the plain box path; "size_aware" runs the plain
    path, then G only for the RoIs that the plain path predicts small (refined box) and likely
    an object, and merges both predictions for them. The mask head is Mask R-CNN's.
    """

    @configurable
    def __init__(self, *, generator: torch.nn.Module, lr_scale: float, test_mode: str,
                 adv_weight: float, content_weight: float, content_reduction: str,
                 g_task_weight: float, d_task_weight: float, adv_loss: str,
                 g_rois_per_image: int = 0, g_positive_fraction: float = 0.75,
                 g_size_weight_ref: float = 0.0, size_aware_max_size: float = 64.0,
                 size_aware_min_score: float = 0.05, size_aware_max_rois: int = 100,
                 size_aware_merge: str = "mean", d_through_g: bool = True,
                 pair: str = "half_to_full", d_sr_task_weight: float = -1.0,
                 lr_box_pooler=None, d_content_weight: float = 0.0,
                 d_x2_task_weight: float = 0.0, test_compile_backend: str = "",
                 test_compile_mode: str = "default", **kwargs):
        """
        Args:
            generator: maps (R, C, P, P) RoI features to the same shape.
            lr_scale: scale of the low-resolution image (0.5); proposal boxes are scaled by it.
            test_mode: one of TEST_MODES, see the class docstring. An attribute: may be switched.
            adv_weight, content_weight, g_task_weight, d_task_weight: loss weights (SPEC §3).
            content_reduction, adv_loss: see :mod:`srrcnn.losses`.
            g_rois_per_image: RoIs per image that G (and D's SR path) trains on, sampled
                foreground-first from the R sampled RoIs; <= 0: all of them (thesis).
            g_positive_fraction: at most this share of them foreground (detectron2's
                ``subsample_labels``); background fills the rest.
            g_size_weight_ref: > 0: weight each RoI's content and adversarial G terms by
                min(1, ref / sqrt(area)), area of its ground-truth box (of the proposal for
                background), in input pixels; 0: uniform (thesis).
            size_aware_max_size, size_aware_min_score, size_aware_max_rois, size_aware_merge:
                the "size_aware" test mode, see :meth:`select_size_aware`.
            d_through_g: D's loss on G(RoI_LR) reaches the backbone through G's input
                (thesis); False detaches G's input (G's own objective is unaffected).
            d_sr_task_weight: weight of D's task terms on G's output; < 0: d_task_weight.
            d_content_weight: > 0: the content loss also in D's objective with this weight
                (``loss_content_d``), reaching the backbone through G's input; 0: thesis.
            d_x2_task_weight: "full_to_double": weight of D's task terms on the 2x targets
                (the head learns to read real 2x features; no gradient reaches the backbone).
            lr_box_pooler: pools RoI_LR; None: the box pooler (the FPN level of the scaled box).
            test_compile_backend, test_compile_mode: at test, G and the box head's pass on its
                output under ``torch.compile`` with this backend and mode; "": eager.
            pair: one of PAIRS. "full_to_double": G's input is RoI_HR of the sampled proposals
                inside the 2x crops' windows (:mod:`srrcnn.x2_crops`), its target and D's
                "real" samples the same boxes pooled from the crops' pyramid.
            kwargs: as for :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        if self.train_on_pred_boxes:
            raise ValueError("SRROIHeads does not support MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES")
        if test_mode not in TEST_MODES:
            raise ValueError(f"MODEL.SRRCNN.TEST_MODE must be one of {TEST_MODES}, got {test_mode!r}")
        if size_aware_merge not in SIZE_AWARE_MERGES:
            raise ValueError(f"MODEL.SRRCNN.SIZE_AWARE.MERGE must be one of {SIZE_AWARE_MERGES}, "
                             f"got {size_aware_merge!r}")
        if pair not in PAIRS:
            raise ValueError(f"MODEL.SRRCNN.PAIR must be one of {PAIRS}, got {pair!r}")
        if not 0.0 <= g_positive_fraction <= 1.0:
            raise ValueError(f"MODEL.SRRCNN.G_POSITIVE_FRACTION must be in [0, 1], got {g_positive_fraction}")
        self.generator = generator
        self.lr_scale = lr_scale
        self.test_mode = test_mode
        self.adv_weight = adv_weight
        self.content_weight = content_weight
        self.content_reduction = content_reduction
        self.g_task_weight = g_task_weight
        self.d_task_weight = d_task_weight
        self.adv_loss = adv_loss
        self.g_rois_per_image = g_rois_per_image
        self.g_positive_fraction = g_positive_fraction
        self.g_size_weight_ref = g_size_weight_ref
        self.size_aware_max_size = size_aware_max_size
        self.size_aware_min_score = size_aware_min_score
        self.size_aware_max_rois = size_aware_max_rois
        self.size_aware_merge = size_aware_merge
        self.d_through_g = d_through_g
        self.pair = pair
        self.lr_box_pooler = lr_box_pooler or self.box_pooler
        self.d_content_weight = d_content_weight
        self.d_sr_task_weight = d_task_weight if d_sr_task_weight < 0 else d_sr_task_weight
        if d_x2_task_weight and pair != "full_to_double":
            raise ValueError("MODEL.SRRCNN.D_X2_TASK_WEIGHT needs MODEL.SRRCNN.PAIR "
                             f"'full_to_double' (the 2x targets), got PAIR {pair!r}")
        self.d_x2_task_weight = d_x2_task_weight
        self.sr_box_pass = SRBoxPass(test_compile_backend, test_compile_mode)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sr = cfg.MODEL.SRRCNN
        ret.update(lr_scale=sr.LR_SCALE, test_mode=sr.TEST_MODE, adv_weight=sr.ADV_WEIGHT,
                   content_weight=sr.CONTENT_WEIGHT, content_reduction=sr.CONTENT_REDUCTION,
                   g_task_weight=sr.G_TASK_WEIGHT, d_task_weight=sr.D_TASK_WEIGHT,
                   adv_loss=sr.ADV_LOSS, g_rois_per_image=sr.G_ROIS_PER_IMAGE,
                   g_positive_fraction=sr.G_POSITIVE_FRACTION,
                   g_size_weight_ref=sr.G_SIZE_WEIGHT_REF,
                   size_aware_max_size=sr.SIZE_AWARE.MAX_SIZE,
                   size_aware_min_score=sr.SIZE_AWARE.MIN_SCORE,
                   size_aware_max_rois=sr.SIZE_AWARE.MAX_ROIS_PER_IMAGE,
                   size_aware_merge=sr.SIZE_AWARE.MERGE, d_through_g=sr.D_THROUGH_G,
                   pair=sr.PAIR, d_sr_task_weight=sr.D_SR_TASK_WEIGHT,
                   d_content_weight=sr.D_CONTENT_WEIGHT, d_x2_task_weight=sr.D_X2_TASK_WEIGHT,
                   test_compile_backend=sr.TEST_COMPILE.BACKEND,
                   test_compile_mode=sr.TEST_COMPILE.MODE)
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        # the discriminator: Fast R-CNN output layers + a real/fake logit
        ret["box_predictor"] = SRFastRCNNOutputLayers(cfg, ret["box_head"].output_shape)
        res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = input_shape[ret["box_in_features"][0]].channels
        ret["generator"] = build_generator(cfg, ShapeSpec(channels=channels, height=res, width=res))
        if cfg.MODEL.SRRCNN.LR_POOL_LEVEL not in LR_POOL_LEVELS:
            raise ValueError(f"MODEL.SRRCNN.LR_POOL_LEVEL must be one of {LR_POOL_LEVELS}, "
                             f"got {cfg.MODEL.SRRCNN.LR_POOL_LEVEL!r}")
        if cfg.MODEL.SRRCNN.LR_POOL_LEVEL == "full_box":
            # level = canonical_level + log2(sqrt(area) / canonical size): with the canonical
            # size scaled too, the scaled box gets the level of the full-resolution box
            ret["lr_box_pooler"] = copy.deepcopy(ret["box_pooler"])
            ret["lr_box_pooler"].canonical_box_size *= cfg.MODEL.SRRCNN.LR_SCALE
        return ret

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """
        Args:
            features: the full pyramid {"p2": (N, C, H, W), ...}; in training also the 0.5x
                pyramid under the names + LR_SUFFIX.
            proposals: as in :meth:`StandardROIHeads._forward_box`.

        Returns:
            In training, a dict of losses; in inference, a list of `Instances`.
        """
        if not self.training:
            if self.test_mode == "hr":
                return super()._forward_box(features, proposals)
            return self._inference_with_generator(features, proposals)

        boxes = [x.proposal_boxes for x in proposals]
        roi_hr = self.box_pooler([features[f] for f in self.box_in_features], boxes)  # (R, C, P, P)
        if self.pair == "full_to_double":
            g_idx, g_proposals, roi_target = self.pool_double_pairs(features, proposals)
            roi_in = roi_hr[g_idx]
        else:
            g_idx, g_proposals = self.select_generator_rois(proposals)
            with record_function("srrcnn.roi_pool_lr"):
                roi_in = self.pool_lr(features, g_proposals)
            roi_target = roi_hr[g_idx]
        if not self.d_through_g:
            roi_in = roi_in.detach()
        with record_function("srrcnn.generator"):
            roi_sr = self.generator(roi_in)  # (R_G, C, P, P)
        num_rois, num_g = roi_hr.shape[0], roi_sr.shape[0]
        get_event_storage().put_scalar("srrcnn/g_rois_per_image", num_g / max(len(proposals), 1))
        # one pass of the shared box head / discriminator over [RoI_HR; G(input)] (+ the 2x
        # targets, D's "real" samples, for "full_to_double"): (R + R_G [+ R_G], D)
        rows = [roi_hr, roi_sr] + ([roi_target] if self.pair == "full_to_double" else [])
        with record_function("srrcnn.box_head"):
            x = self.box_head(torch.cat(rows))
            tasks = num_rois + num_g * (2 if self.d_x2_task_weight else 1)  # rows scored
            scores, deltas = self.box_predictor(x[:tasks])
            adv = self.box_predictor.real_fake_logits(x)
        hr_losses = self.box_predictor.losses((scores[:num_rois], deltas[:num_rois]), proposals)
        sr = slice(num_rois, num_rois + num_g)
        sr_losses = self.box_predictor.losses((scores[sr], deltas[sr]), g_proposals)
        adv_real = adv[num_rois + num_g:] if self.pair == "full_to_double" else adv[:num_rois][g_idx]
        weights = self.generator_roi_weights(g_proposals)
        losses = self.gan_losses(roi_target, roi_sr, adv_real, adv[sr], hr_losses, sr_losses, weights)
        if self.d_x2_task_weight:  # the head on the real 2x features (box deltas are scale-free)
            x2 = slice(num_rois + num_g, tasks)
            x2_losses = self.box_predictor.losses((scores[x2], deltas[x2]), g_proposals)
            losses.update({f"{k}_x2": self.d_x2_task_weight * v for k, v in x2_losses.items()})
        return losses

    def pool_double_pairs(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """
        The "full_to_double" pairs: of the sampled proposals that lie wholly inside a 2x
        crop's window, per image at most ``g_rois_per_image`` (foreground first, as
        :meth:`select_generator_rois`), and their RoI features in the crops' pyramid.

        Args:
            features: with the crops' pyramid {"p2_x2": (K, C, H', W'), ...} and X2_WINDOWS (K, 5).
            proposals: per image, sampled proposals with ``gt_classes``.

        Returns:
            (R_G,) indices into the concatenated proposals, ordered by window; the same RoIs as
            a list of `Instances` (in that order); their (R_G, C, P, P) 2x RoI features.
        """
        windows = features[X2_WINDOWS]
        window_of, inside = assign_to_windows(proposals, windows)
        g_idx, _ = self.select_generator_rois(proposals, eligible=inside)
        g_idx = g_idx[torch.argsort(window_of[g_idx], stable=True)]  # the pooler's crop order
        if len(g_idx) == 0:
            x = features[self.box_in_features[0]]
            return g_idx, [proposals[0][:0]], x.new_zeros((0, x.shape[1], *self.box_pooler.output_size))
        starts = torch.tensor([0] + [len(p) for p in proposals]).cumsum(0)
        g_window = window_of[g_idx]
        g_proposals, crop_boxes = [], []
        for k in range(len(windows)):
            rows = g_idx[g_window == k]
            image = int(windows[k, 0])
            p = proposals[image][rows - starts[image]]
            if len(p):
                g_proposals.append(p)
            shift = windows[k, 1:3].repeat(2)  # (x0, y0, x0, y0)
            crop_boxes.append(Boxes((p.proposal_boxes.tensor - shift) * X2_SCALE))
        with record_function("srrcnn.roi_pool_x2"):
            roi_target = self.box_pooler([features[f + X2_SUFFIX] for f in self.box_in_features],
                                         crop_boxes)
        return g_idx, g_proposals, roi_target

    def select_generator_rois(self, proposals: List[Instances],
                              eligible: torch.Tensor = None) -> Tuple[torch.Tensor, List[Instances]]:
        """
        The RoIs G trains on: per image at most ``g_rois_per_image`` of the sampled proposals,
        up to ``g_positive_fraction`` of them foreground (foreground first, then background),
        or all of them when ``g_rois_per_image <= 0`` (thesis).

        Args:
            proposals: per image, sampled proposals with ``gt_classes``.
            eligible: None, or (R,) bool over the concatenated proposals: only these may be
                chosen.

        Returns:
            (R_G,) indices into the concatenated proposals, and the selected proposals per image.
        """
        if self.g_rois_per_image <= 0 and eligible is None:
            total = sum(len(p) for p in proposals)
            return torch.arange(total, device=proposals[0].proposal_boxes.device), proposals
        indices, selected, offset = [], [], 0
        for p in proposals:
            labels = p.gt_classes
            if eligible is not None:
                labels = labels.clone()
                labels[~eligible[offset:offset + len(p)]] = -1  # ignored by subsample_labels
            n = self.g_rois_per_image if self.g_rois_per_image > 0 else len(p)
            pos, neg = subsample_labels(labels, n, self.g_positive_fraction, self.num_classes)
            keep = torch.cat([pos, neg])
            indices.append(keep + offset)
            selected.append(p[keep])
            offset += len(p)
        return torch.cat(indices), selected

    def generator_roi_weights(self, proposals: List[Instances]):
        """
        Per-RoI weights of G's content and adversarial terms: None (uniform, thesis) or,
        with ``g_size_weight_ref > 0``, (R_G,) min(1, ref / sqrt(area)) where area is the
        ground-truth box's for foreground RoIs and the proposal's for background ones.
        """
        if self.g_size_weight_ref <= 0 or not proposals:
            return None
        areas = []
        for p in proposals:
            fg = (p.gt_classes >= 0) & (p.gt_classes < self.num_classes)
            area = p.proposal_boxes.area()
            if p.has("gt_boxes"):
                area = torch.where(fg, p.gt_boxes.area(), area)
            areas.append(area)
        side = cat(areas).clamp(min=1e-6).sqrt()
        return (self.g_size_weight_ref / side).clamp(max=1.0)

    def pool_lr(self, features: Dict[str, torch.Tensor], proposals: List[Instances]) -> torch.Tensor:
        """RoI_LR (R, C, P, P): the proposals' boxes x lr_scale from the 0.5x pyramid."""
        return self.lr_box_pooler([features[f + LR_SUFFIX] for f in self.box_in_features],
                                  [Boxes(x.proposal_boxes.tensor * self.lr_scale) for x in proposals])

    def _inference_with_generator(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """Test modes "sr" (G on every RoI), "sr_lr" (G on every RoI_LR), "size_aware" and
        "size_aware_x2" (``features`` then also hold the 2x pyramid, names + X2_SUFFIX)."""
        hr = [features[f] for f in self.box_in_features]
        if self.test_mode == "sr_lr":
            roi = self.pool_lr(features, proposals)
        else:
            roi = self.box_pooler(hr, [x.proposal_boxes for x in proposals])  # (R, C, P, P)
        if self.test_mode in ("sr", "sr_lr"):
            with record_function("srrcnn.sr_box_pass"):  # G, box head, predictor
                predictions = self.sr_box_pass(self.generator, self.box_head, self.box_predictor, roi)
        else:
            predictions = self.box_predictor(self.box_head(roi))
            select = self.select_size_aware(predictions, proposals)
            # a trace always holds G's pass, for any number of selected RoIs, none included
            if torch.jit.is_tracing() or select.numel() > 0:
                if self.test_mode == "size_aware_x2":
                    sr_roi = self.pool_x2_selected(features, proposals, select)
                    sr_predictions = self.box_predictor(self.box_head(sr_roi))
                else:
                    with record_function("srrcnn.sr_box_pass"):
                        sr_predictions = self.sr_box_pass(self.generator, self.box_head,
                                                          self.box_predictor, roi[select])
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

    def gan_losses(self, roi_hr, roi_sr, adv_hr, adv_sr, hr_losses, sr_losses, weights=None):
        """
        SPEC §3 objectives, as named terms. Which parameters each term trains is decided by
        the trainer from the name (``loss_G_*``: generator only; others: everything else).

        Args:
            roi_hr, roi_sr: (R_G, C, P, P) RoI_HR and G(RoI_LR) of the RoIs G trains on.
            adv_hr, adv_sr: (R_G,) D's real/fake logits on them.
            hr_losses, sr_losses: FastRCNNOutputLayers.losses on all RoI_HR and on
                G(RoI_LR) ({"loss_cls", "loss_box_reg"}).
            weights: None or (R_G,) per-RoI weights of G's content and adversarial terms.

        Returns:
            dict[str, Tensor] of weighted scalar losses.
        """
        d_w, d_sr_w, g_w = self.d_task_weight, self.d_sr_task_weight, self.g_task_weight
        losses = {
            # D: 0.001 * adversarial + 0.5 * (CE + SL1 on SR and on HR)
            "loss_D_adv": self.adv_weight * discriminator_adversarial_loss(adv_hr, adv_sr),
            "loss_cls_hr": d_w * hr_losses["loss_cls"],
            "loss_box_reg_hr": d_w * hr_losses["loss_box_reg"],
            "loss_cls_sr": d_sr_w * sr_losses["loss_cls"],
            "loss_box_reg_sr": d_sr_w * sr_losses["loss_box_reg"],
            # G: 0.001 * adversarial + CE + SL1 on SR + content MSE
            G_LOSS_PREFIX + "adv": self.adv_weight
            * generator_adversarial_loss(adv_sr, self.adv_loss, weights),
            G_LOSS_PREFIX + "cls": g_w * sr_losses["loss_cls"],
            G_LOSS_PREFIX + "box_reg": g_w * sr_losses["loss_box_reg"],
        }
        # the target RoI_HR is detached: in G's objective the content loss trains G only
        content = content_loss(roi_sr, roi_hr.detach(), self.content_reduction, weights)
        losses[G_LOSS_PREFIX + "content"] = self.content_weight * content
        if self.d_content_weight > 0:  # and through G's input, the backbone
            losses["loss_content_d"] = self.d_content_weight * content
        return losses
