# -*- coding: utf-8 -*-
"""SR-RCNN's ROI heads: RoI_HR and G's input from one ROIPooler, the generator, one pass of the
shared box head (the discriminator) over both in training. The test modes are
:mod:`srrcnn.inference_modes`; the losses :mod:`srrcnn.losses`."""
import copy
from typing import Dict, List, Optional

import torch
from torch.autograd.profiler import record_function

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from .fast_rcnn import SRFastRCNNOutputLayers
from .generator import build_generator
# TEST_MODES, G_LOSS_PREFIX: also imported from here (demo/demo.py, tests/test_gan_trainer.py)
from .inference_modes import TEST_MODES, SRTestModes  # noqa: F401
from .losses import G_LOSS_PREFIX, gan_losses, roi_sides, roi_size_weights  # noqa: F401
from .rng import ADV_INIT, G_INIT, G_ROIS, sr_random_stream, training_step_stream
from .sampling import sample_generator_rois
from .texture import IMAGE_KEY, pool_texture, texture_rois
from .x2_crops import X2_SCALE, X2_SUFFIX, X2_WINDOWS, assign_to_windows

# In training, the meta-architecture passes the 0.5x pyramid in the same `features` dict as
# the full-resolution one, each level under its name plus this suffix ("p2" -> "p2_lr").
# Heads that select features by name (box, mask, keypoint) only ever see the full pyramid.
LR_SUFFIX = "_lr"
# what G maps (MODEL.SRRCNN.PAIR): RoI_LR -> RoI_HR (thesis), or RoI_HR -> RoI of a 2x pass
PAIRS = ("half_to_full", "full_to_double")
LR_POOL_LEVELS = ("scaled_box", "full_box")


@ROI_HEADS_REGISTRY.register()
class SRROIHeads(SRTestModes, StandardROIHeads):
    """
    StandardROIHeads whose box branch is SR-RCNN's generator + discriminator (SPEC §2.4-2.6).

    Training: the sampled proposals are pooled by the same ROIPooler (ROIAlignV2) twice:
    RoI_HR (all R sampled RoIs) from the full pyramid, and RoI_LR from the 0.5x pyramid with
    boxes x LR_SCALE (the pooler picks the FPN level from the scaled box) for the R_G RoIs
    that G trains on (all R as in the thesis, or a foreground-first subset: G_ROIS_PER_IMAGE).
    RoI_HR and G(RoI_LR) go through the shared box head and SRFastRCNNOutputLayers in one
    batch of R + R_G. Returns G's losses (prefix ``loss_G_``) and D's losses; the trainer
    routes each to its parameters. With a texture scale, G's input also holds the RoIs'
    pixels (:meth:`generator_input`), in training and at test.

    Inference: no 0.5x pyramid; TEST_MODE decides where G runs (:class:`SRTestModes`).
    """

    @configurable
    def __init__(self, *, generator: torch.nn.Module, lr_scale: float = 0.5,
                 adv_weight: float = 0.001, content_weight: float = 1.0,
                 content_reduction: str = "mean", g_task_weight: float = 1.0,
                 d_task_weight: float = 0.5, adv_loss: str = "saturating",
                 g_rois_per_image: int = 64, g_positive_fraction: float = 0.75,
                 g_size_weight_ref: float = 0.0, g_max_roi_size: float = 0.0,
                 d_through_g: bool = True,
                 pair: str = "half_to_full", d_sr_task_weight: float = -1.0,
                 lr_box_pooler=None, d_content_weight: float = 0.0,
                 d_x2_task_weight: float = 0.0, texture_scale: int = 0, **kwargs):
        """
        Args:
            generator: maps (R, C, P, P) RoI features to the same shape.
            lr_scale: scale of the low-resolution image (0.5); proposal boxes are scaled by it.
            pair: one of PAIRS. "full_to_double": G's input is RoI_HR of the sampled proposals
                inside the 2x crops' windows (:mod:`srrcnn.x2_crops`), its target and D's
                "real" samples the same boxes pooled from the crops' pyramid.
            g_rois_per_image, g_positive_fraction: see :func:`sample_generator_rois`.
            g_size_weight_ref: see :func:`srrcnn.losses.roi_size_weights`; 0: uniform (thesis).
            g_max_roi_size: > 0: G trains only on RoIs whose object is at most this large
                (:func:`srrcnn.losses.roi_sides`, input pixels); 0: any size (thesis).
            d_through_g: D's loss on G(RoI_LR) reaches the backbone through G's input
                (thesis); False detaches G's input (G's own objective is unaffected).
            d_x2_task_weight: "full_to_double": weight of D's task terms on the 2x targets.
            lr_box_pooler: pools RoI_LR; None: the box pooler (the FPN level of the scaled box).
            texture_scale: MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE k; > 0: G also reads the RoIs'
                pixels (:meth:`generator_input`), its input has C + 3 k^2 channels.
                "full_to_double" only.
            adv_weight, ..., d_content_weight: see :func:`srrcnn.losses.gan_losses`.
            kwargs: as for :class:`SRTestModes` (test_mode, size_aware_*, test_compile_*) and
                :class:`StandardROIHeads`.
            Each argument is the MODEL.SRRCNN key of its name (srrcnn/config.py), its default
            the key's.
        """
        super().__init__(**kwargs)
        if self.train_on_pred_boxes:
            raise ValueError("SRROIHeads does not support MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES")
        if pair not in PAIRS:
            raise ValueError(f"MODEL.SRRCNN.PAIR must be one of {PAIRS}, got {pair!r}")
        if not 0.0 <= g_positive_fraction <= 1.0:
            raise ValueError(f"MODEL.SRRCNN.G_POSITIVE_FRACTION must be in [0, 1], got {g_positive_fraction}")
        if d_x2_task_weight and pair != "full_to_double":
            raise ValueError("MODEL.SRRCNN.D_X2_TASK_WEIGHT needs MODEL.SRRCNN.PAIR "
                             f"'full_to_double' (the 2x targets), got PAIR {pair!r}")
        if texture_scale < 0 or (texture_scale and pair != "full_to_double"):
            raise ValueError("MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE > 0 needs MODEL.SRRCNN.PAIR "
                             f"'full_to_double' (G reads 1x RoIs), got TEXTURE_SCALE "
                             f"{texture_scale} with PAIR {pair!r}")
        self.generator, self.texture_scale = generator, texture_scale
        self.lr_box_pooler = lr_box_pooler or self.box_pooler
        self.lr_scale, self.pair, self.d_through_g = lr_scale, pair, d_through_g
        # G's RoIs (srrcnn.sampling) and their weights
        self.g_rois_per_image, self.g_positive_fraction = g_rois_per_image, g_positive_fraction
        self.g_size_weight_ref, self.g_max_roi_size = g_size_weight_ref, g_max_roi_size
        # the objectives' weights and forms (srrcnn.losses.gan_losses)
        self.adv_weight, self.adv_loss = adv_weight, adv_loss
        self.content_weight, self.content_reduction = content_weight, content_reduction
        self.g_task_weight, self.d_task_weight = g_task_weight, d_task_weight
        self.d_sr_task_weight = d_task_weight if d_sr_task_weight < 0 else d_sr_task_weight
        self.d_content_weight, self.d_x2_task_weight = d_content_weight, d_x2_task_weight

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sr = cfg.MODEL.SRRCNN
        ret.update(lr_scale=sr.LR_SCALE, adv_weight=sr.ADV_WEIGHT,
                   content_weight=sr.CONTENT_WEIGHT, content_reduction=sr.CONTENT_REDUCTION,
                   g_task_weight=sr.G_TASK_WEIGHT, d_task_weight=sr.D_TASK_WEIGHT,
                   adv_loss=sr.ADV_LOSS, g_rois_per_image=sr.G_ROIS_PER_IMAGE,
                   g_positive_fraction=sr.G_POSITIVE_FRACTION,
                   g_size_weight_ref=sr.G_SIZE_WEIGHT_REF, g_max_roi_size=sr.G_MAX_ROI_SIZE,
                   d_through_g=sr.D_THROUGH_G,
                   pair=sr.PAIR, d_sr_task_weight=sr.D_SR_TASK_WEIGHT,
                   d_content_weight=sr.D_CONTENT_WEIGHT, d_x2_task_weight=sr.D_X2_TASK_WEIGHT,
                   texture_scale=sr.GENERATOR.TEXTURE_SCALE)
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        # the discriminator: Fast R-CNN output layers + a real/fake logit. SR-RCNN's own draws
        # are off the global stream and its Fast R-CNN layers start as the ones super() drew,
        # so every shared module starts as Mask R-CNN's of the same seed (srrcnn.rng).
        res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = input_shape[ret["box_in_features"][0]].channels
        with sr_random_stream(ADV_INIT):
            predictor = SRFastRCNNOutputLayers(cfg, ret["box_head"].output_shape)
        predictor.load_state_dict(ret["box_predictor"].state_dict(), strict=False)
        ret["box_predictor"] = predictor
        with sr_random_stream(G_INIT):
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

    def forward(self, images, features: Dict[str, torch.Tensor], proposals: List[Instances],
                targets: Optional[List[Instances]] = None):
        """As :meth:`StandardROIHeads.forward`; with a texture scale, the boxes' methods also
        get ``images.tensor`` (N, 3, H, W) in (a copy of) ``features``, under IMAGE_KEY."""
        if self.texture_scale:
            features = {**features, IMAGE_KEY: images.tensor}
        return super().forward(images, features, proposals, targets)

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """
        Args:
            features: the full pyramid {"p2": (N, C, H, W), ...}; in training also the 0.5x
                pyramid under the names + LR_SUFFIX; with a texture scale the images, IMAGE_KEY.
            proposals: as in :meth:`StandardROIHeads._forward_box`.

        Returns:
            In training, a dict of losses; in inference, a list of `Instances`.
        """
        if not self.training:  # the test modes: SRTestModes._forward_box
            return super()._forward_box(features, proposals)

        boxes = [x.proposal_boxes for x in proposals]
        roi_hr = self.box_pooler([features[f] for f in self.box_in_features], boxes)  # (R, C, P, P)
        if self.pair == "full_to_double":
            g_idx, g_proposals, roi_target = self.pool_double_pairs(features, proposals)
            roi_in = self.generator_input(features, proposals, roi_hr[g_idx], g_idx)
        else:
            with training_step_stream(G_ROIS):
                g_idx, g_proposals = sample_generator_rois(
                    proposals, self.g_rois_per_image, self.g_positive_fraction, self.num_classes,
                    eligible=self.small_rois(proposals))
            with record_function("srrcnn.roi_pool_lr"):
                roi_in = self.pool_lr(features, g_proposals)
            roi_target = roi_hr[g_idx]
        if not self.d_through_g:
            roi_in = roi_in.detach()
        with record_function("srrcnn.generator"):
            roi_sr = self.generator(roi_in)  # (R_G, C, P, P)
        num_rois, num_g = roi_hr.shape[0], roi_sr.shape[0]
        get_event_storage().put_scalar("srrcnn/g_rois_per_image", num_g / max(len(proposals), 1))
        # the shared box head / discriminator on RoI_HR alone (as Mask R-CNN runs it: with the
        # SR terms off, its training is Mask R-CNN's bit for bit, tests/test_rng.py), then on
        # [G(input) (+ the 2x targets, D's "real" samples, for "full_to_double")]
        rows = [roi_sr] + ([roi_target] if self.pair == "full_to_double" else [])
        with record_function("srrcnn.box_head"):
            x_hr = self.box_head(roi_hr)
            x_g = self.box_head(torch.cat(rows)) if num_g else x_hr[:0]
            scored_g = num_g * (2 if self.d_x2_task_weight else 1)  # G's rows scored
            out_hr, out_g = self.box_predictor(x_hr), self.box_predictor(x_g[:scored_g])
            scores, deltas = (torch.cat([a, b]) for a, b in zip(out_hr, out_g))
            x = torch.cat([x_hr, x_g])  # (R + R_G [+ R_G], D)
            adv = self.box_predictor.real_fake_logits(x)
        tasks = num_rois + scored_g
        hr_losses = self.box_predictor.losses((scores[:num_rois], deltas[:num_rois]), proposals)
        sr = slice(num_rois, num_rois + num_g)
        sr_losses = self.box_predictor.losses((scores[sr], deltas[sr]), g_proposals)
        adv_real = adv[num_rois + num_g:] if self.pair == "full_to_double" else adv[:num_rois][g_idx]
        weights = roi_size_weights(g_proposals, self.g_size_weight_ref, self.num_classes)
        losses = self.gan_losses(roi_target, roi_sr, adv_real, adv[sr], hr_losses, sr_losses, weights)
        if self.d_x2_task_weight:  # the head on the real 2x features (box deltas are scale-free)
            x2 = slice(num_rois + num_g, tasks)
            x2_losses = self.box_predictor.losses((scores[x2], deltas[x2]), g_proposals)
            losses.update({f"{k}_x2": self.d_x2_task_weight * v for k, v in x2_losses.items()})
        return losses

    def small_rois(self, proposals: List[Instances]) -> Optional[torch.Tensor]:
        """None without G_MAX_ROI_SIZE, else (R,) bool over the concatenated sampled proposals:
        those whose object (:func:`roi_sides`) is at most that many input pixels on a side."""
        if self.g_max_roi_size <= 0:
            return None
        return roi_sides(proposals, self.num_classes) <= self.g_max_roi_size

    def pool_double_pairs(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """
        The "full_to_double" pairs: of the sampled proposals that lie wholly inside a 2x
        crop's window, per image at most ``g_rois_per_image`` (foreground first, as
        :func:`sample_generator_rois`), and their RoI features in the crops' pyramid.

        Args:
            features: with the crops' pyramid {"p2_x2": (K, C, H', W'), ...} and X2_WINDOWS (K, 5).
            proposals: per image, sampled proposals with ``gt_classes``.

        Returns:
            (R_G,) indices into the concatenated proposals, ordered by window; the same RoIs as
            a list of `Instances` (in that order); their (R_G, C, P, P) 2x RoI features.
        """
        windows = features[X2_WINDOWS]
        window_of, inside = assign_to_windows(proposals, windows)
        small = self.small_rois(proposals)
        inside = inside if small is None else inside & small
        with training_step_stream(G_ROIS):
            g_idx, _ = sample_generator_rois(proposals, self.g_rois_per_image,
                                             self.g_positive_fraction, self.num_classes, eligible=inside)
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

    def generator_input(self, features: Dict[str, torch.Tensor], proposals: List[Instances],
                        roi: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        G's input for RoI features ``roi`` (R, C, P, P) of the proposals' boxes (those of
        ``rows``, indices into the concatenated proposals, in that order; None: all): ``roi``
        itself, or with a texture scale k ``roi`` and the boxes' pixels from
        ``features[IMAGE_KEY]`` (:func:`srrcnn.texture.pool_texture`): (R, C + 3 k^2, P, P).
        """
        if not self.texture_scale:
            return roi
        with record_function("srrcnn.roi_pool_texture"):
            texture = pool_texture(features[IMAGE_KEY], texture_rois(proposals, rows),
                                   self.texture_scale, self.box_pooler.output_size[0])
        return torch.cat([roi, texture.to(roi.dtype)], dim=1)

    def pool_lr(self, features: Dict[str, torch.Tensor], proposals: List[Instances]) -> torch.Tensor:
        """RoI_LR (R, C, P, P): the proposals' boxes x lr_scale from the 0.5x pyramid."""
        if self.texture_scale:  # the thesis pair's input (e.g. TEST_MODE "sr_lr")
            raise ValueError("RoI_LR is no input of a G with MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE "
                             "> 0 (it reads 1x RoIs and their pixels): no TEST_MODE 'sr_lr'")
        return self.lr_box_pooler([features[f + LR_SUFFIX] for f in self.box_in_features],
                                  [Boxes(x.proposal_boxes.tensor * self.lr_scale) for x in proposals])

    def gan_losses(self, roi_hr, roi_sr, adv_hr, adv_sr, hr_losses, sr_losses, weights=None):
        """:func:`srrcnn.losses.gan_losses` (same arguments) with this head's weights."""
        return gan_losses(roi_hr, roi_sr, adv_hr, adv_sr, hr_losses, sr_losses, weights,
                          adv_weight=self.adv_weight, content_weight=self.content_weight,
                          content_reduction=self.content_reduction,
                          g_task_weight=self.g_task_weight, d_task_weight=self.d_task_weight,
                          d_sr_task_weight=self.d_sr_task_weight, adv_loss=self.adv_loss,
                          d_content_weight=self.d_content_weight)
