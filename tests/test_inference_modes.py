# -*- coding: utf-8 -*-
"""Tests of srrcnn/inference_modes.py: the test modes of SRROIHeads (SPEC §5): where G runs,
which RoIs "size_aware" selects, how both passes merge. Heads and inputs: the ``roi`` fixture."""
import inspect

import pytest
import torch

from detectron2.config import get_cfg
from detectron2.structures import Boxes, ImageList, Instances

from srrcnn.config import add_srrcnn_config
from srrcnn.inference_modes import SRTestModes
from srrcnn.roi_heads import LR_SUFFIX
from srrcnn.texture import pool_texture, texture_rois
from srrcnn.x2_crops import X2_SUFFIX


def test_constructor_defaults_are_the_config_defaults():
    class Base:
        @classmethod
        def from_config(cls, cfg, input_shape):
            return {}

    class Heads(SRTestModes, Base):
        pass

    cfg = get_cfg()
    add_srrcnn_config(cfg)
    from_config = Heads.from_config(cfg, None)
    defaults = {name: p.default for name, p in inspect.signature(SRTestModes.__init__).parameters.items()
                if p.default is not p.empty}
    assert defaults == from_config and len(defaults) == 7


def _eval_sr_modes(roi, heads, feats):
    """G's inputs and the box pooler's calls in one prediction of ``heads``."""
    calls = roi.record_inputs(heads.generator)
    box_calls = roi.record_pooler(heads.box_pooler)
    proposals, _ = roi.proposals_and_targets()
    return roi.predict(heads, feats, proposals), calls, box_calls, proposals


def test_eval_hr_skips_generator(roi):
    pred, calls, _, _ = _eval_sr_modes(roi, roi.eval_heads("hr"), roi.features(lr=False))
    assert len(calls) == 0 and len(pred) == 2
    for inst in pred:
        assert inst.has("pred_boxes") and inst.has("scores")
        assert inst.has("pred_classes") and inst.has("pred_masks")


def test_eval_sr_calls_generator_on_full_resolution_rois(roi):
    heads, feats = roi.eval_heads("sr"), roi.features(lr=False)  # no 0.5x pyramid at test time
    pred, calls, box_calls, proposals = _eval_sr_modes(roi, heads, feats)
    assert len(calls) == 1
    # the box pooler ran once, on the full pyramid and the unscaled proposals, and G got it
    assert len(box_calls) == 1
    x, boxes, pooled = box_calls[0]
    assert all(t is feats[k] for t, k in zip(x, heads.box_in_features))
    assert all(torch.equal(b, p.proposal_boxes.tensor) for b, p in zip(boxes, proposals))
    assert calls[0] is pooled
    assert calls[0].shape == (sum(len(p) for p in proposals), roi.CHANNELS, 7, 7)
    for inst in pred:
        assert inst.has("pred_boxes") and inst.has("scores")
        assert inst.has("pred_classes") and inst.has("pred_masks")


def test_eval_sr_lr_runs_generator_on_lr_rois(roi):
    feats = roi.features()
    pred, calls, box_calls, proposals = _eval_sr_modes(roi, roi.eval_heads("sr_lr"), feats)
    x, boxes, pooled = box_calls[0]
    assert x[0] is feats["p2" + LR_SUFFIX]
    assert torch.equal(boxes[0], proposals[0].proposal_boxes.tensor * 0.5)
    assert calls[0] is pooled and len(pred) == 2


def test_bad_test_mode(roi):
    with pytest.raises(ValueError, match="TEST_MODE"):
        roi.heads(TEST_MODE="both")


def _size_aware_predictions(heads, sizes, scores):
    """Proposals of the given sizes; plain-pass predictions with zero deltas and the given
    top-class probabilities (class 0)."""
    p = Instances((256, 256), proposal_boxes=Boxes(torch.tensor([[0, 0, s, s] for s in sizes],
                                                                dtype=torch.float)))
    k = heads.num_classes
    probs = torch.full((len(sizes), k + 1), 1e-3)
    probs[:, 0] = torch.tensor(scores)
    probs[:, k] = 1 - probs[:, :k].sum(1)
    return (probs.log(), torch.zeros(len(sizes), 4 * k)), [p]


def test_size_aware_selection(roi):
    heads = roi.eval_heads("size_aware", SIZE_AWARE__MAX_SIZE=64.0, SIZE_AWARE__MIN_SCORE=0.1,
                           SIZE_AWARE__MAX_ROIS_PER_IMAGE=2)
    preds, props = _size_aware_predictions(heads, [10, 100, 30, 50, 20], [0.9, 0.9, 0.05, 0.5, 0.3])
    # small and likely: 0, 3, 4; at most 2, the most likely: 0 and 3
    assert sorted(heads.select_size_aware(preds, props).tolist()) == [0, 3]
    heads.size_aware_max_rois = 0
    assert sorted(heads.select_size_aware(preds, props).tolist()) == [0, 3, 4]


def test_size_aware_merge(roi):
    heads = roi.eval_heads("size_aware")
    k = heads.num_classes
    scores, deltas = torch.log_softmax(torch.randn(4, k + 1), -1), torch.randn(4, 4 * k)
    sr_scores, sr_deltas = torch.randn(2, k + 1), torch.randn(2, 4 * k)
    sel = torch.tensor([1, 3])
    s, d = heads.merge_predictions((scores, deltas), (sr_scores, sr_deltas), sel)
    mean = (scores[sel].softmax(-1) + sr_scores.softmax(-1)) / 2
    torch.testing.assert_close(s[sel].softmax(-1), mean)
    torch.testing.assert_close(d[sel], (deltas[sel] + sr_deltas) / 2)
    torch.testing.assert_close(s[[0, 2]], scores[[0, 2]])  # the others untouched
    torch.testing.assert_close(d[[0, 2]], deltas[[0, 2]])
    heads.size_aware_merge = "replace"
    s, d = heads.merge_predictions((scores, deltas), (sr_scores, sr_deltas), sel)
    torch.testing.assert_close(s[sel], sr_scores)
    torch.testing.assert_close(d[sel], sr_deltas)


def test_size_aware_runs_generator_on_selected_rois_only(roi):
    heads = roi.eval_heads("size_aware", SIZE_AWARE__MIN_SCORE=0.0, SIZE_AWARE__MAX_SIZE=60.0,
                           SIZE_AWARE__MAX_ROIS_PER_IMAGE=5)
    calls = roi.record_inputs(heads.generator)
    proposals, _ = roi.proposals_and_targets()
    pred = roi.predict(heads, roi.features(lr=False), proposals)
    assert len(calls) == 1
    assert 0 < calls[0].shape[0] <= 10  # at most 5 per image
    assert all(inst.has("pred_boxes") and inst.has("pred_masks") for inst in pred)
    # nothing small: G never runs and the result is the plain ("hr") one
    heads.size_aware_max_size = 0.0
    calls.clear()
    pred = roi.predict(heads, roi.features(lr=False), proposals)
    heads.test_mode = "hr"
    expected = roi.predict(heads, roi.features(lr=False), proposals)
    assert calls == []
    for a, b in zip(pred, expected):
        torch.testing.assert_close(a.scores, b.scores)


def test_x2_oracle_pools_the_selected_rois_from_the_2x_pyramid(roi):
    """"size_aware_x2": size_aware's selection and merge, with G's output replaced by the
    selected boxes x 2 pooled from the 2x pyramid; G does not run."""
    heads = roi.eval_heads("size_aware_x2", SIZE_AWARE__MIN_SCORE=0.0, SIZE_AWARE__MAX_SIZE=60.0,
                           SIZE_AWARE__MAX_ROIS_PER_IMAGE=5)
    calls, selected = roi.record_inputs(heads.generator), []
    select = heads.select_size_aware
    heads.select_size_aware = lambda *a: selected.append(select(*a)) or selected[-1]
    feats = roi.features(lr=False)
    feats.update(roi.features(lr=False, seed=3, suffix=X2_SUFFIX, scale=2))
    proposals, _ = roi.proposals_and_targets()
    box_calls = roi.record_pooler(heads.box_pooler)
    pred = roi.predict(heads, feats, proposals)
    assert calls == []
    (sel,) = selected
    assert len(sel) > 0
    x, boxes, _ = box_calls[1]  # after the plain pass
    assert all(a is feats[f + X2_SUFFIX] for a, f in zip(x, heads.box_in_features))
    all_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
    torch.testing.assert_close(torch.cat(boxes), all_boxes[sel] * 2)
    assert all(inst.has("pred_boxes") for inst in pred)


def test_bad_merge(roi):
    with pytest.raises(ValueError, match="SIZE_AWARE.MERGE"):
        roi.heads(SIZE_AWARE__MERGE="max")


@pytest.mark.parametrize("test_mode", ["sr", "size_aware"])
def test_texture_goes_into_the_generator_with_its_rois(roi, test_mode):
    """TEXTURE_SCALE 2: G reads its RoIs (all, or the selected ones) and their pixels; the box
    head and predictor read G's C channels. No RoI_LR input ("sr_lr")."""
    heads = roi.eval_heads(test_mode, PAIR="full_to_double", GENERATOR__TEXTURE_SCALE=2,
                           SIZE_AWARE__MIN_SCORE=0.0, SIZE_AWARE__MAX_SIZE=60.0)
    calls, selected = roi.record_inputs(heads.generator), []
    select = heads.select_size_aware
    heads.select_size_aware = lambda *a: selected.append(select(*a)) or selected[-1]
    head_inputs, box_calls = roi.record_inputs(heads.box_head), roi.record_pooler(heads.box_pooler)
    images = ImageList(torch.randn(2, 3, roi.IMAGE_SIZE, roi.IMAGE_SIZE), [(roi.IMAGE_SIZE,) * 2] * 2)
    proposals, _ = roi.proposals_and_targets()
    with torch.no_grad():
        pred, _ = heads(images, roi.features(lr=False), proposals)
    rows = selected[0] if test_mode == "size_aware" else torch.arange(sum(len(p) for p in proposals))
    assert len(rows) > 0 and len(calls) == 1
    texture = pool_texture(images.tensor, texture_rois(proposals, rows), 2, 7)
    torch.testing.assert_close(calls[0], torch.cat([box_calls[0][2][rows], texture], dim=1))
    assert head_inputs[-1].shape == (len(rows), roi.CHANNELS, 7, 7)  # G's output
    assert all(inst.has("pred_boxes") and inst.has("pred_masks") for inst in pred)
    heads.test_mode = "sr_lr"
    with pytest.raises(ValueError, match="TEXTURE_SCALE"):
        heads(images, roi.features(), proposals)


def test_without_generator_parameters_sr_and_size_aware_give_hr(roi):
    """GENERATOR.NAME IdentityGenerator (a control): G(x) = x, so "sr" and "size_aware" (merge
    "mean" of two equal passes) predict what "hr" predicts."""
    heads = roi.eval_heads("hr", GENERATOR__NAME="IdentityGenerator", SIZE_AWARE__MIN_SCORE=0.0)
    feats = roi.features(lr=False)
    proposals, _ = roi.proposals_and_targets()
    calls, by_mode = roi.record_inputs(heads.generator), {}
    for mode in ("hr", "sr", "size_aware"):
        heads.test_mode = mode
        by_mode[mode] = roi.predict(heads, feats, proposals)
    assert len(calls) == 2 and len(calls[1]) > 0  # G ran in "sr" and on selected RoIs
    for mode in ("sr", "size_aware"):
        for a, b in zip(by_mode["hr"], by_mode[mode]):
            assert len(a) == len(b) > 0
            torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
            torch.testing.assert_close(a.scores, b.scores)
            assert torch.equal(a.pred_classes, b.pred_classes)
