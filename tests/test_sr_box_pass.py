# -*- coding: utf-8 -*-
"""G's pass at test (srrcnn/sr_box_pass.py): folded G in the model, the TEST_COMPILE switch."""
import unittest

import pytest
import torch

from detectron2.utils.events import EventStorage

from srrcnn.evaluation import test_mode as set_test_mode
from srrcnn.sr_box_pass import SRBoxPass, sr_box_pass
from srrcnn.testing import get_model_no_weights, get_tiny_cfg, tiny_inputs


def _model(backend=""):
    """A tiny SR-RCNN whose G has running statistics; size_aware sends every RoI through G."""
    torch.manual_seed(43)
    cfg = get_tiny_cfg(sr=True)
    cfg.MODEL.SRRCNN.TEST_COMPILE.BACKEND = backend
    cfg.MODEL.SRRCNN.SIZE_AWARE.MAX_SIZE = 1e9
    cfg.MODEL.SRRCNN.SIZE_AWARE.MIN_SCORE = 0.0
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = get_model_no_weights(cfg)
    with EventStorage():
        model(tiny_inputs(2))  # one training forward: G's batch norms get statistics
    return model.eval()


def _images():
    return [{k: v for k, v in d.items() if k != "instances"} for d in tiny_inputs(2, seed=1)]


def _predict(model, mode):
    with torch.no_grad(), set_test_mode(model, mode):
        return [o["instances"] for o in model(_images())]


def _assert_same(a, b):
    for x, y in zip(a, b):
        assert len(x) == len(y) > 0
        torch.testing.assert_close(x.pred_boxes.tensor, y.pred_boxes.tensor, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(x.scores, y.scores, rtol=1e-5, atol=1e-5)


class TestFoldedGeneratorInTheModel(unittest.TestCase):
    def setUp(self):
        self.model = _model()
        self.generator = self.model.roi_heads.generator

    def test_sr_and_size_aware_equal_unfolded(self):
        for mode in ("sr", "size_aware"):
            self.generator.fold_at_test = False
            unfolded = _predict(self.model, mode)
            self.generator.fold_at_test = True
            with torch.no_grad():
                self.assertIsNot(self.generator.inference_module(), self.generator)
            _assert_same(_predict(self.model, mode), unfolded)

    def test_model_state_dict_unchanged(self):
        keys = list(self.model.state_dict())
        _predict(self.model, "sr")
        self.assertEqual(list(self.model.state_dict()), keys)
        self.model.train()
        self.assertEqual(list(self.model.state_dict()), keys)


def test_eager_pass_calls_the_generator():
    model = _model()
    heads = model.roi_heads
    assert heads.sr_box_pass._compiled is None  # default: TEST_COMPILE.BACKEND ""
    calls = []
    heads.generator.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    _predict(model, "sr")
    _predict(model, "size_aware")
    assert len(calls) == 2 and all(n > 0 for n in calls)


def test_compiled_pass_is_used_and_equal():
    """TEST_COMPILE.BACKEND "eager": dynamo captures G's pass (no code generation, CPU)."""
    eager, compiled = _model(), _model("eager")
    compiled.load_state_dict(eager.state_dict())
    box_pass = compiled.roi_heads.sr_box_pass
    assert box_pass._compiled is not None and box_pass.backend == "eager"
    calls = []
    inner = box_pass._compiled

    def spy(generator, *args):
        calls.append(generator)
        return inner(generator, *args)

    box_pass._compiled = spy
    assert list(compiled.state_dict()) == list(eager.state_dict())
    for mode in ("sr", "size_aware"):
        _assert_same(_predict(compiled, mode), _predict(eager, mode))
    folded = compiled.roi_heads.generator._fold_cache.module
    assert len(calls) == 2 and all(g.__self__ is folded for g in calls)  # G's folded copy


def test_compiled_function_is_captured_by_the_backend():
    graphs = []

    def backend(gm, example_inputs):  # a torch.compile backend that records what it gets
        graphs.append(gm)
        return gm.forward

    model = _model()
    heads = model.roi_heads
    roi = torch.randn(5, 32, 7, 7)
    with torch.no_grad():
        expected = sr_box_pass(heads.generator, heads.box_head, heads.box_predictor, roi)
        out = SRBoxPass(backend)(heads.generator, heads.box_head, heads.box_predictor, roi)
    assert len(graphs) == 1  # G, box head and predictor in one graph
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_unknown_backend_names_the_key():
    with pytest.raises(ValueError, match="MODEL.SRRCNN.TEST_COMPILE.*no_such_backend"):
        SRBoxPass("no_such_backend")
