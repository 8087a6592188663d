# -*- coding: utf-8 -*-
"""Loss functions of SR-RCNN that detectron2 does not have, and their weighted sum into G's and
D's objectives (SPEC §3).

R is the number of sampled RoIs in the batch, C x P x P the RoI feature shape. Every loss is
a scalar that is 0 (and still part of the graph) for R = 0.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from detectron2.layers import cat
from detectron2.structures import Instances

# Loss names that start with this prefix form G's objective; all others form D's.
G_LOSS_PREFIX = "loss_G_"


def _mean(x: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Mean of x, or with (R,) `weights` the weighted mean over the first dimension of x
    (other dimensions averaged). 0 in the graph when x is empty.
    """
    if x.numel() == 0:
        # mean over an empty tensor is NaN; the sum of an empty tensor is a 0 in the graph
        return x.sum()
    if weights is None:
        return x.mean()
    per_roi = x.reshape(len(x), -1).mean(dim=1)
    return (per_roi * weights).sum() / weights.sum().clamp(min=1e-12)


def content_loss(sr: torch.Tensor, hr: torch.Tensor, reduction: str = "mean",
                 weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    MSE between super-resolved and high-resolution RoI features.

    Args:
        sr: (R, C, P, P) G(RoI_LR).
        hr: (R, C, P, P) RoI_HR.
        reduction: "mean" (per element, as SRGAN) or "sum_per_roi"
            ((1/R) sum_i ||sr_i - hr_i||^2, i.e. "mean" x C*P*P).
        weights: None, or (R,) per-RoI weights (a weighted mean over RoIs).
    """
    sq = (sr - hr).pow(2)
    if reduction == "mean":
        return _mean(sq, weights)
    if reduction == "sum_per_roi":
        return _mean(sq.flatten(start_dim=1).sum(dim=1), weights)
    raise ValueError(f"MODEL.SRRCNN.CONTENT_REDUCTION must be 'mean' or 'sum_per_roi', got {reduction!r}")


def generator_adversarial_loss(fake_logits: torch.Tensor, mode: str = "saturating",
                               weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    G's adversarial loss on D's real/fake logits of G(RoI_LR).

    Args:
        fake_logits: (R,) logits, D_adv = sigmoid(logit).
        mode: "saturating": mean log(1 - D_adv) (thesis; minimised, so it is <= 0);
            "non_saturating": mean -log D_adv.
        weights: None, or (R,) per-RoI weights (a weighted mean).
    """
    if mode == "saturating":
        return _mean(-F.softplus(fake_logits), weights)  # log(1 - sigmoid(x)) = -softplus(x)
    if mode == "non_saturating":
        return _mean(F.softplus(-fake_logits), weights)  # -log(sigmoid(x)) = softplus(-x)
    raise ValueError(f"MODEL.SRRCNN.ADV_LOSS must be 'saturating' or 'non_saturating', got {mode!r}")


def discriminator_adversarial_loss(real_logits: torch.Tensor,
                                   fake_logits: torch.Tensor) -> torch.Tensor:
    """
    D's adversarial loss -[log D_adv(HR) + log(1 - D_adv(G(LR)))], averaged over RoIs.

    Args:
        real_logits: (R,) logits on RoI_HR.
        fake_logits: (R,) logits on G(RoI_LR).
    """
    return _mean(F.softplus(-real_logits)) + _mean(F.softplus(fake_logits))


def roi_size_weights(proposals: List[Instances], ref: float, num_classes: int) -> Optional[torch.Tensor]:
    """
    Per-RoI weights of G's content and adversarial terms (MODEL.SRRCNN.G_SIZE_WEIGHT_REF).

    Args:
        proposals: per image, the RoIs G trains on, with ``proposal_boxes``, ``gt_classes``
            and (with foreground) ``gt_boxes``.
        ref: > 0: the weight min(1, ref / sqrt(area)), area of the ground-truth box for
            foreground RoIs and of the proposal for background ones, in input pixels.
        num_classes: K; ``gt_classes`` == K is background.

    Returns:
        None (uniform, thesis) when ``ref <= 0`` or there are no images, else (R,) weights.
    """
    if ref <= 0 or not proposals:
        return None
    return (ref / roi_sides(proposals, num_classes).clamp(min=1e-3)).clamp(max=1.0)


def roi_sides(proposals: List[Instances], num_classes: int) -> torch.Tensor:
    """
    (R,) sqrt(area) of each RoI's object in input pixels, over the concatenated proposals: of
    its ground-truth box for foreground RoIs (``gt_classes`` < K = ``num_classes``), of the
    proposal box for background ones.
    """
    areas = []
    for p in proposals:
        fg = (p.gt_classes >= 0) & (p.gt_classes < num_classes)
        area = p.proposal_boxes.area()
        if p.has("gt_boxes"):
            area = torch.where(fg, p.gt_boxes.area(), area)
        areas.append(area)
    return cat(areas).clamp(min=0).sqrt()


def gan_losses(roi_hr: torch.Tensor, roi_sr: torch.Tensor, adv_hr: torch.Tensor,
               adv_sr: torch.Tensor, hr_losses: Dict[str, torch.Tensor],
               sr_losses: Dict[str, torch.Tensor], weights: Optional[torch.Tensor] = None, *,
               adv_weight: float = 0.001, content_weight: float = 1.0,
               content_reduction: str = "mean", g_task_weight: float = 1.0,
               d_task_weight: float = 0.5, d_sr_task_weight: float = -1.0,
               adv_loss: str = "saturating", d_content_weight: float = 0.0) -> Dict[str, torch.Tensor]:
    """
    SPEC §3 objectives, as named terms. Which parameters each term trains is decided by the
    trainer from the name (``loss_G_*``: generator only; others: everything else).

    Args:
        roi_hr, roi_sr: (R_G, C, P, P) G's targets (RoI_HR, or the 2x RoIs) and G's output
            for the RoIs G trains on.
        adv_hr, adv_sr: (R_G,) D's real/fake logits on them.
        hr_losses, sr_losses: FastRCNNOutputLayers.losses on all RoI_HR and on G's output
            ({"loss_cls", "loss_box_reg"}).
        weights: None or (R_G,) per-RoI weights of G's content and adversarial terms
            (:func:`roi_size_weights`).
        adv_weight ... d_content_weight: the weights and choices of MODEL.SRRCNN's keys of the
            same names (ADV_WEIGHT, ...); d_sr_task_weight < 0: d_task_weight.

    Returns:
        dict[str, Tensor] of weighted scalar losses.
    """
    d_w, g_w = d_task_weight, g_task_weight
    d_sr_w = d_task_weight if d_sr_task_weight < 0 else d_sr_task_weight
    losses = {
        # D: 0.001 * adversarial + 0.5 * (CE + SL1 on SR and on HR)
        "loss_D_adv": adv_weight * discriminator_adversarial_loss(adv_hr, adv_sr),
        "loss_cls_hr": d_w * hr_losses["loss_cls"],
        "loss_box_reg_hr": d_w * hr_losses["loss_box_reg"],
        "loss_cls_sr": d_sr_w * sr_losses["loss_cls"],
        "loss_box_reg_sr": d_sr_w * sr_losses["loss_box_reg"],
        # G: 0.001 * adversarial + CE + SL1 on SR + content MSE
        G_LOSS_PREFIX + "adv": adv_weight * generator_adversarial_loss(adv_sr, adv_loss, weights),
        G_LOSS_PREFIX + "cls": g_w * sr_losses["loss_cls"],
        G_LOSS_PREFIX + "box_reg": g_w * sr_losses["loss_box_reg"],
    }
    # the target is detached: in G's objective the content loss trains G only
    content = content_loss(roi_sr, roi_hr.detach(), content_reduction, weights)
    losses[G_LOSS_PREFIX + "content"] = content_weight * content
    if d_content_weight > 0:  # and through G's input, the backbone
        losses["loss_content_d"] = d_content_weight * content
    return losses
