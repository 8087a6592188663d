# -*- coding: utf-8 -*-
"""SR-RCNN's ROI heads: RoI_HR and RoI_LR from one ROIPooler, the generator, the GAN losses."""
from typing import Dict, List

import torch

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.structures import Boxes, Instances

from .fast_rcnn import SRFastRCNNOutputLayers
from .generator import build_generator
from .losses import content_loss, discriminator_adversarial_loss, generator_adversarial_loss

# In training, the meta-architecture passes the 0.5x pyramid in the same `features` dict as
# the full-resolution one, each level under its name plus this suffix ("p2" -> "p2_lr").
# Heads that select features by name (box, mask, keypoint) only ever see the full pyramid.
LR_SUFFIX = "_lr"
# Loss names that start with this prefix form G's objective; all others form D's.
G_LOSS_PREFIX = "loss_G_"
TEST_MODES = ("sr", "hr")


@ROI_HEADS_REGISTRY.register()
class SRROIHeads(StandardROIHeads):
    """
    StandardROIHeads whose box branch is SR-RCNN's generator + discriminator (SPEC §2.4-2.6).

    Training: the sampled proposals are pooled twice by the same ROIPooler (ROIAlignV2):
    RoI_HR from the full pyramid, RoI_LR from the 0.5x pyramid with boxes x LR_SCALE (the
    pooler picks the FPN level from the scaled box). G(RoI_LR) and RoI_HR go through the
    shared box head and SRFastRCNNOutputLayers in one batch of 2R. Returns G's losses
    (prefix ``loss_G_``) and D's losses; the trainer routes each to its parameters.

    Inference: no 0.5x pyramid. TEST_MODE "sr" sends the full-resolution RoI features through
    G before the box head (thesis); "hr" uses the plain box path. The mask head is Mask R-CNN's.
    """

    @configurable
    def __init__(self, *, generator: torch.nn.Module, lr_scale: float, test_mode: str,
                 adv_weight: float, content_weight: float, content_reduction: str,
                 g_task_weight: float, d_task_weight: float, adv_loss: str, **kwargs):
        """
        Args:
            generator: maps (R, C, P, P) RoI features to the same shape.
            lr_scale: scale of the low-resolution image (0.5); proposal boxes are scaled by it.
            test_mode: "sr" or "hr", see the class docstring. An attribute: may be switched.
            adv_weight, content_weight, g_task_weight, d_task_weight: loss weights (SPEC §3).
            content_reduction, adv_loss: see :mod:`srrcnn.losses`.
            kwargs: as for :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        if self.train_on_pred_boxes:
            raise ValueError("SRROIHeads does not support MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES")
        self.generator = generator
        self.lr_scale = lr_scale
        self.test_mode = test_mode
        self.adv_weight = adv_weight
        self.content_weight = content_weight
        self.content_reduction = content_reduction
        self.g_task_weight = g_task_weight
        self.d_task_weight = d_task_weight
        self.adv_loss = adv_loss

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sr = cfg.MODEL.SRRCNN
        if sr.TEST_MODE not in TEST_MODES:
            raise ValueError(f"MODEL.SRRCNN.TEST_MODE must be one of {TEST_MODES}, got {sr.TEST_MODE!r}")
        ret.update(lr_scale=sr.LR_SCALE, test_mode=sr.TEST_MODE, adv_weight=sr.ADV_WEIGHT,
                   content_weight=sr.CONTENT_WEIGHT, content_reduction=sr.CONTENT_REDUCTION,
                   g_task_weight=sr.G_TASK_WEIGHT, d_task_weight=sr.D_TASK_WEIGHT,
                   adv_loss=sr.ADV_LOSS)
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        # the discriminator: Fast R-CNN output layers + a real/fake logit
        ret["box_predictor"] = SRFastRCNNOutputLayers(cfg, ret["box_head"].output_shape)
        res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = input_shape[ret["box_in_features"][0]].channels
        ret["generator"] = build_generator(cfg, ShapeSpec(channels=channels, height=res, width=res))
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
            hr = [features[f] for f in self.box_in_features]
            roi = self.box_pooler(hr, [x.proposal_boxes for x in proposals])  # (R, C, P, P)
            predictions = self.box_predictor(self.box_head(self.generator(roi)))
            pred_instances, _ = self.box_predictor.inference(predictions, proposals)
            return pred_instances

        boxes = [x.proposal_boxes for x in proposals]
        roi_hr = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        roi_lr = self.box_pooler([features[f + LR_SUFFIX] for f in self.box_in_features],
                                 [Boxes(b.tensor * self.lr_scale) for b in boxes])
        roi_sr = self.generator(roi_lr)  # (R, C, P, P)
        num_rois = roi_hr.shape[0]
        # one pass of the shared box head / discriminator over [RoI_HR; G(RoI_LR)]: (2R, D)
        x = self.box_head(torch.cat([roi_hr, roi_sr]))
        scores, deltas = self.box_predictor(x)
        adv = self.box_predictor.real_fake_logits(x)
        hr_losses = self.box_predictor.losses((scores[:num_rois], deltas[:num_rois]), proposals)
        sr_losses = self.box_predictor.losses((scores[num_rois:], deltas[num_rois:]), proposals)
        return self.gan_losses(roi_hr, roi_sr, adv[:num_rois], adv[num_rois:], hr_losses, sr_losses)

    def gan_losses(self, roi_hr, roi_sr, adv_hr, adv_sr, hr_losses, sr_losses):
        """
        SPEC §3 objectives, as named terms. Which parameters each term trains is decided by
        the trainer from the name (``loss_G_*``: generator only; others: everything else).

        Args:
            roi_hr, roi_sr: (R, C, P, P) RoI_HR and G(RoI_LR).
            adv_hr, adv_sr: (R,) D's real/fake logits on them.
            hr_losses, sr_losses: FastRCNNOutputLayers.losses on each ({"loss_cls", "loss_box_reg"}).

        Returns:
            dict[str, Tensor] of weighted scalar losses.
        """
        d_w, g_w = self.d_task_weight, self.g_task_weight
        losses = {
            # D: 0.001 * adversarial + 0.5 * (CE + SL1 on SR and on HR)
            "loss_D_adv": self.adv_weight * discriminator_adversarial_loss(adv_hr, adv_sr),
            "loss_cls_hr": d_w * hr_losses["loss_cls"],
            "loss_box_reg_hr": d_w * hr_losses["loss_box_reg"],
            "loss_cls_sr": d_w * sr_losses["loss_cls"],
            "loss_box_reg_sr": d_w * sr_losses["loss_box_reg"],
            # G: 0.001 * adversarial + CE + SL1 on SR + content MSE
            G_LOSS_PREFIX + "adv": self.adv_weight * generator_adversarial_loss(adv_sr, self.adv_loss),
            G_LOSS_PREFIX + "cls": g_w * sr_losses["loss_cls"],
            G_LOSS_PREFIX + "box_reg": g_w * sr_losses["loss_box_reg"],
            # the target RoI_HR is detached: content loss trains G only (and is in G's objective)
            G_LOSS_PREFIX + "content": self.content_weight
            * content_loss(roi_sr, roi_hr.detach(), self.content_reduction),
        }
        return losses
