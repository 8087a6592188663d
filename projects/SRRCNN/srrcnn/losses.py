# -*- coding: utf-8 -*-
"""Loss functions of SR-RCNN that detectron2 does not have (SPEC §3).

R is the number of sampled RoIs in the batch, C x P x P the RoI feature shape. Every
function returns a scalar that is 0 (and still part of the graph) for R = 0.
"""
from typing import Optional

import torch
import torch.nn.functional as F


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
