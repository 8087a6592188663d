# -*- coding: utf-8 -*-
"""Tests of srrcnn/roi_heads.py: RoI_HR / RoI_LR pooling, G, D and their losses in training
(SPEC §2-§3). The test modes: test_inference_modes.py. Heads and inputs: the ``roi`` fixture."""
import inspect

import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import StandardROIHeads
from detectron2.modeling.poolers import assign_boxes_to_levels
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage

from srrcnn.config import add_srrcnn_config
from srrcnn.fast_rcnn import SRFastRCNNOutputLayers
from srrcnn.losses import roi_sides
from srrcnn.roi_heads import LR_SUFFIX, SRROIHeads
from srrcnn.testing import get_model_no_weights, tiny_inputs
from srrcnn.texture import IMAGE_KEY, pool_texture, texture_rois

EXPECTED_LOSS_KEYS = {
    "loss_D_adv",
    "loss_cls_hr",
    "loss_box_reg_hr",
    "loss_cls_sr",
    "loss_box_reg_sr",
    "loss_G_adv",
    "loss_G_cls",
    "loss_G_box_reg",
    "loss_G_content",
    "loss_mask",
}


def test_build(roi):
    heads = roi.heads()
    assert isinstance(heads, SRROIHeads)
    assert isinstance(heads.box_predictor, SRFastRCNNOutputLayers)
    assert heads.generator.output_shape == ShapeSpec(channels=roi.CHANNELS, height=7, width=7)
    assert heads.lr_scale == 0.5
    assert heads.test_mode == "size_aware"
    assert (heads.adv_weight, heads.d_task_weight) == (0.001, 0.5)
    assert type(heads.box_pooler.level_poolers[0]).__name__ == "ROIAlign"
    assert heads.box_pooler.level_poolers[0].aligned  # ROIAlignV2


def test_constructor_defaults_are_the_config_defaults(roi):
    cfg, defaults = roi.cfg(), get_cfg()
    add_srrcnn_config(defaults)
    cfg.MODEL.SRRCNN = defaults.MODEL.SRRCNN  # every MODEL.SRRCNN key at its default
    shape = {k: ShapeSpec(channels=roi.CHANNELS, stride=s) for k, s in roi.LEVELS.items()}
    from_config = SRROIHeads.from_config(cfg, shape)
    defaults = {name: p.default for name, p in inspect.signature(SRROIHeads.__init__).parameters.items()
                if p.default is not p.empty and name in from_config}
    assert len(defaults) == 17
    assert defaults == {k: from_config[k] for k in defaults}


def test_training_losses(roi):
    heads = roi.heads()
    proposals, targets = roi.proposals_and_targets()
    losses = roi.train(heads, roi.features(), proposals, targets)
    assert set(losses) == EXPECTED_LOSS_KEYS
    for k, v in losses.items():
        assert v.shape == () and torch.isfinite(v).item() and v.requires_grad, k
    # weights of SPEC §3: D sees 0.5 x the SR task losses that G sees with weight 1
    torch.testing.assert_close(losses["loss_cls_sr"], 0.5 * losses["loss_G_cls"])
    torch.testing.assert_close(losses["loss_box_reg_sr"], 0.5 * losses["loss_G_box_reg"])


def test_lr_rois_pooled_with_half_boxes(roi):
    heads = roi.heads()
    box_calls = roi.record_pooler(heads.box_pooler)
    mask_calls = roi.record_pooler(heads.mask_pooler)
    gen_inputs = roi.record_inputs(heads.generator)
    feats = roi.features()
    proposals, targets = roi.proposals_and_targets()
    roi.train(heads, feats, proposals, targets)

    assert len(box_calls) == 2
    (x_hr, boxes_hr, roi_hr), (x_lr, boxes_lr, roi_lr) = box_calls
    # RoI_HR from the full pyramid, RoI_LR from the "_lr" pyramid
    assert all(t is feats[k] for t, k in zip(x_hr, heads.box_in_features))
    assert all(t is feats[k + LR_SUFFIX] for t, k in zip(x_lr, heads.box_in_features))
    # the same proposals, scaled by exactly 0.5
    assert len(boxes_hr) == len(boxes_lr)
    assert all(torch.equal(b_lr, b_hr * 0.5) for b_hr, b_lr in zip(boxes_hr, boxes_lr))
    assert roi_hr.shape == roi_lr.shape
    # G runs once, on RoI_LR
    assert len(gen_inputs) == 1 and gen_inputs[0] is roi_lr

    # the FPN level is chosen from the scaled box: one level lower unless already lowest
    p = heads.box_pooler
    args = (p.min_level, p.max_level, p.canonical_box_size, p.canonical_level)
    lvl_hr = assign_boxes_to_levels([Boxes(b) for b in boxes_hr], *args)
    lvl_lr = assign_boxes_to_levels([Boxes(b) for b in boxes_lr], *args)
    above_min = lvl_hr > 0
    assert int(above_min.sum()) > 0, "test proposals should span several levels"
    assert (lvl_lr <= lvl_hr).all()
    assert torch.equal(lvl_lr[above_min], lvl_hr[above_min] - 1)

    # the mask head only sees the full-resolution pyramid
    assert len(mask_calls) == 1
    assert all(t is feats[k] for t, k in zip(mask_calls[0][0], heads.mask_in_features))


def test_hr_mode_and_mask_head_are_mask_rcnn(roi):
    """TEST_MODE "hr" + the mask head give exactly Mask R-CNN's heads with the same weights."""
    heads = roi.heads()
    base = roi.heads(roi.cfg(sr=False))
    assert type(base) is StandardROIHeads
    incompatible = base.load_state_dict(heads.state_dict(), strict=False)
    assert incompatible.missing_keys == []
    assert all(k.startswith(("generator.", "box_predictor.adv_score."))
               for k in incompatible.unexpected_keys)
    base.eval()
    heads.eval()
    heads.test_mode = "hr"
    feats = roi.features(lr=False)
    proposals, _ = roi.proposals_and_targets()
    for a, b in zip(roi.predict(heads, feats, proposals), roi.predict(base, feats, proposals)):
        assert len(a) > 0
        torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
        torch.testing.assert_close(a.scores, b.scores)
        torch.testing.assert_close(a.pred_masks, b.pred_masks)

    # in training, the mask loss is Mask R-CNN's on the same sampled proposals
    proposals, targets = roi.proposals_and_targets()
    feats = roi.features()
    torch.manual_seed(3)
    losses = roi.train(heads, feats, proposals, targets)
    torch.manual_seed(3)
    full = {k: v for k, v in feats.items() if not k.endswith(LR_SUFFIX)}
    base_losses = roi.train(base, full, proposals, targets)
    torch.testing.assert_close(losses["loss_mask"], base_losses["loss_mask"])
    torch.testing.assert_close(losses["loss_cls_hr"], 0.5 * base_losses["loss_cls"])
    torch.testing.assert_close(losses["loss_box_reg_hr"], 0.5 * base_losses["loss_box_reg"])


def test_train_on_pred_boxes_rejected(roi):
    cfg = roi.cfg()
    cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = True
    with pytest.raises(ValueError, match="TRAIN_ON_PRED_BOXES"):
        roi.heads(cfg)


def test_loss_regression(roi):
    heads = roi.heads()
    proposals, targets = roi.proposals_and_targets()
    losses = {k: v.detach() for k, v in roi.train(heads, roi.features(), proposals, targets).items()}
    # values since srrcnn/rng.py: G and the real/fake output draw off the global stream
    expected_losses = {
        "loss_D_adv": 0.001378613,
        "loss_cls_hr": 0.8007567,
        "loss_box_reg_hr": 0.1340032,
        "loss_cls_sr": 0.7973285,
        "loss_box_reg_sr": 0.1343936,
        "loss_G_adv": -0.000686213,
        "loss_G_cls": 1.594657,
        "loss_G_box_reg": 0.2687873,
        "loss_G_content": 2.132409,
        "loss_mask": 0.6929144,
    }
    assert set(losses) == set(expected_losses)
    for name, value in expected_losses.items():
        ok = torch.allclose(losses[name], torch.tensor(value), rtol=1e-4, atol=1e-6)
        if not ok:
            print("New losses:", {k: float(v) for k, v in losses.items()})
        assert ok, f"{name}: {float(losses[name])} != expected {value}"


def _train_generator_rois(roi, **keys):
    """MODEL.SRRCNN.G_ROIS_PER_IMAGE / G_POSITIVE_FRACTION / G_SIZE_WEIGHT_REF: one training
    forward; returns the heads, the box pooler's calls, G's input, the sampled RoIs, losses."""
    heads = roi.heads(**keys)
    box_calls = roi.record_pooler(heads.box_pooler)
    gen_inputs = roi.record_inputs(heads.generator)
    sampled = []
    label = heads.label_and_sample_proposals
    heads.label_and_sample_proposals = lambda *a: sampled.extend(label(*a)) or sampled
    torch.manual_seed(0)
    proposals, targets = roi.proposals_and_targets(num_proposals=60)
    losses = roi.train(heads, roi.features(), proposals, targets)
    return heads, box_calls, gen_inputs[0], sampled, losses


def test_generator_rois_are_foreground_first_and_capped(roi):
    heads, box_calls, roi_lr, sampled, losses = _train_generator_rois(
        roi, G_ROIS_PER_IMAGE=8, G_POSITIVE_FRACTION=0.75)
    (_, boxes_hr, _), (_, boxes_lr, _) = box_calls
    assert [len(b) for b in boxes_hr] == [len(p) for p in sampled]
    assert [len(b) for b in boxes_lr] == [8, 8]
    assert roi_lr.shape[0] == 16
    for p, b_lr in zip(sampled, boxes_lr):
        fg = (p.gt_classes < heads.num_classes).sum().item()
        assert fg >= 6  # this test's proposals have enough foreground
        # each LR box is one of this image's sampled proposals at 0.5x ...
        match = (b_lr[:, None, :] == (p.proposal_boxes.tensor * 0.5)[None]).all(-1)
        assert match.any(1).all()
        cls = p.gt_classes[match.float().argmax(1)]
        # ... 6 foreground (0.75 x 8) and background for the rest
        assert int((cls < heads.num_classes).sum()) == 6
    assert all(torch.isfinite(v) for v in losses.values())


def test_all_generator_rois_when_zero(roi):
    _, box_calls, _, _, _ = _train_generator_rois(roi, G_ROIS_PER_IMAGE=0)
    (_, boxes_hr, _), (_, boxes_lr, _) = box_calls
    assert all(torch.equal(b_lr, b_hr * 0.5) for b_hr, b_lr in zip(boxes_hr, boxes_lr))


def test_size_weighted_losses_finite(roi):
    _, _, _, _, losses = _train_generator_rois(roi, G_ROIS_PER_IMAGE=8, G_SIZE_WEIGHT_REF=32.0)
    assert set(losses) == EXPECTED_LOSS_KEYS
    assert all(torch.isfinite(v) for v in losses.values())


def test_max_roi_size_keeps_only_small_rois(roi):
    """G_MAX_ROI_SIZE: G's RoIs are exactly the sampled RoIs whose object is that small."""
    heads, box_calls, roi_lr, sampled, losses = _train_generator_rois(
        roi, G_ROIS_PER_IMAGE=0, G_POSITIVE_FRACTION=1.0, G_MAX_ROI_SIZE=80.0)
    (_, boxes_hr, _), (_, boxes_lr, _) = box_calls
    assert all(torch.isfinite(v) for v in losses.values())
    kept = 0
    for p, b_hr, b_lr in zip(sampled, boxes_hr, boxes_lr):
        small = roi_sides([p], heads.num_classes) <= 80.0
        assert 0 < small.sum() < len(p)  # this test's RoIs have both
        assert sorted(map(tuple, (b_lr * 2).tolist())) == sorted(map(tuple, b_hr[small].tolist()))
        kept += int(small.sum())
    assert roi_lr.shape[0] == kept
    _, _, roi_lr, _, losses = _train_generator_rois(roi, G_ROIS_PER_IMAGE=0, G_MAX_ROI_SIZE=1.0)
    assert roi_lr.shape[0] == 0  # no RoI that small: G has no rows, every loss stays finite
    assert all(torch.isfinite(v) for v in losses.values())


def test_lr_pool_level_full_box_keeps_the_full_boxes_level(roi):
    heads = roi.heads(LR_POOL_LEVEL="full_box")
    lr_calls, hr_calls = roi.record_pooler(heads.lr_box_pooler), roi.record_pooler(heads.box_pooler)
    proposals, targets = roi.proposals_and_targets()
    roi.train(heads, roi.features(), proposals, targets)  # G on all sampled RoIs (tiny cfg)
    (_, boxes_lr, _), = lr_calls
    (_, boxes_hr, _), = hr_calls
    p = heads.box_pooler
    args = (p.min_level, p.max_level, p.canonical_box_size, p.canonical_level)
    full = assign_boxes_to_levels([Boxes(b) for b in boxes_hr], *args)
    assert full.unique().numel() > 1
    lr_args = (p.min_level, p.max_level, heads.lr_box_pooler.canonical_box_size, p.canonical_level)
    assert torch.equal(assign_boxes_to_levels([Boxes(b) for b in boxes_lr], *lr_args), full)
    assert heads.lr_box_pooler is not heads.box_pooler
    default = roi.heads()
    assert default.lr_box_pooler is default.box_pooler


# --- G's texture input (MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE, srrcnn/texture.py) ------------

def test_texture_is_part_of_the_generators_training_input(roi):
    """full_to_double, TEXTURE_SCALE 2: G reads RoI_HR of its RoIs and their pixels, pooled
    over the same boxes in the same order; its losses reach its head conv's texture weights."""
    cfg = roi.cfg(PAIR="full_to_double", X2__CROP_SIZE=32, X2__MAX_GT_SIZE=64.0,
                  G_ROIS_PER_IMAGE=8, GENERATOR__TEXTURE_SCALE=2)
    model = get_model_no_weights(cfg).train()
    heads, seen = model.roi_heads, {}
    heads.register_forward_pre_hook(lambda m, args: seen.update(images=args[0], features=args[1]))
    pairs = heads.pool_double_pairs
    heads.pool_double_pairs = lambda f, p: seen.update(f=f, p=p, pairs=pairs(f, p)) or seen["pairs"]
    box_calls, gen_inputs = roi.record_pooler(heads.box_pooler), roi.record_inputs(heads.generator)
    with EventStorage():
        losses = model(tiny_inputs(2, size=(64, 80)))
    images, g_idx = seen["images"].tensor, seen["pairs"][0]
    assert len(g_idx) > 0
    assert seen["f"][IMAGE_KEY] is images and IMAGE_KEY not in seen["features"]  # a copy
    texture = pool_texture(images, texture_rois(seen["p"], g_idx), 2, 7)  # (R_G, 12, 7, 7)
    (g_in,) = gen_inputs
    assert torch.equal(g_in, torch.cat([box_calls[0][2][g_idx], texture], dim=1))
    assert g_in.shape == (len(g_idx), roi.CHANNELS + 12, 7, 7)
    g_losses = [v for k, v in losses.items() if k.startswith("loss_G_")]
    assert len(g_losses) == 4 and all(torch.isfinite(v) for v in g_losses)
    sum(g_losses).backward()
    assert heads.generator.head[0].weight.grad[:, roi.CHANNELS:].abs().sum() > 0


def test_texture_needs_the_full_to_double_pair(roi):
    with pytest.raises(ValueError, match=r"GENERATOR.TEXTURE_SCALE.*MODEL.SRRCNN.PAIR"):
        roi.heads(GENERATOR__TEXTURE_SCALE=2)  # the thesis pair, half_to_full
    with pytest.raises(ValueError, match="TEXTURE_SCALE"):
        roi.heads(PAIR="full_to_double", GENERATOR__TEXTURE_SCALE=-1)
