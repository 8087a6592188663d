# -*- coding: utf-8 -*-
"""The discriminator's output layers: Fast R-CNN's predictor plus one real/fake logit."""
import torch
from torch import nn

from detectron2.config import configurable
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers


class SRFastRCNNOutputLayers(FastRCNNOutputLayers):
    """
    D_theta of SR-RCNN (SPEC §2.6): the Fast R-CNN output layers (class scores, box deltas)
    and an added real/fake logit on the same box-head features. Together with the shared
    box head this IS the detector's predictor: after training it classifies and regresses.

    ``forward`` is unchanged (returns (scores, deltas)), so inference and the Fast R-CNN
    losses of detectron2 are used as they are; ``real_fake_logits`` adds the adversarial
    output.
    """

    @configurable
    def __init__(self, input_shape, **kwargs):
        """Same arguments as :class:`FastRCNNOutputLayers`."""
        super().__init__(input_shape, **kwargs)
        input_size = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        self.adv_score = nn.Linear(input_size, 1)
        nn.init.normal_(self.adv_score.weight, std=0.01)
        nn.init.constant_(self.adv_score.bias, 0)

    def real_fake_logits(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: box-head features, (R, D) or (R, C, H, W).

        Returns:
            (R,) logits of "this RoI feature is a real high-resolution one".
        """
        return self.adv_score(x.flatten(start_dim=1)).squeeze(1)
