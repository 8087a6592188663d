# -*- coding: utf-8 -*-
"""Tests of srrcnn/export.py and tools/export_model.py: TorchScript and ONNX through detectron2's
TracingAdapter give the eager model's detections on inputs other than the tracing input."""
import importlib.util
import os

import cv2
import numpy as np
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.export.torchscript_patch import patch_builtin_len
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.testing import assert_instances_allclose

from srrcnn import add_srrcnn_config
from srrcnn.export import (
    ExportedModel,
    export_scripting,
    export_tracing,
    select_per_image_traceable,
)
from srrcnn.testing import CONFIG_DIR, REPO_ROOT

CONFIGS = {"mask_rcnn": "quick_schedules/mask_rcnn_instant_test.yaml",
           "sr_rcnn": "quick_schedules/sr_rcnn_instant_test.yaml"}
# "size_aware" with the random-weight model below: a RoI is small under 15.5 px, where the
# sampled images hold 0, 1 and 2 such RoIs (the others are about 16 px or larger); at most 1
# per image goes through G, so the limit cuts one image and not another
SIZE_AWARE = ["MODEL.SRRCNN.SIZE_AWARE.MAX_SIZE", 15.5,
              "MODEL.SRRCNN.SIZE_AWARE.MAX_ROIS_PER_IMAGE", 1]
# (height, width, seed) of the test images: different sizes, and for "size_aware" 0, 2 and 1
# candidate RoIs
IMAGES = [(128, 160, 1), (128, 128, 1), (96, 128, 1)]
# detectron2's modules warn on every trace; the tests check that the traces generalise
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


def _has_onnx():
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


needs_onnx = pytest.mark.skipif(not _has_onnx(), reason="onnx and onnxruntime are not installed "
                                "(requirements/requirements.txt installs them)")


def _image(height, width, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, height, width, generator=g) * 255


def _model(config, test_mode=None, opts=()):
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIG_DIR, CONFIGS[config]))
    if test_mode is not None:
        cfg.merge_from_list(["MODEL.SRRCNN.TEST_MODE", test_mode] + SIZE_AWARE + list(opts))
    torch.manual_seed(0)
    return build_model(cfg).eval()


def _eager(model, image):
    with torch.no_grad():
        return model.inference([{"image": image}], do_postprocess=False)[0]


def _assert_same(expected, actual, rtol, msg):
    assert len(expected) > 0, msg + "no detections: the comparison would be empty"
    assert len(actual) == len(expected), msg + f"{len(actual)} detections, eager {len(expected)}"
    assert_instances_allclose(expected, actual, rtol=rtol, msg=msg)


def _count_selected(model, image):
    """(candidate RoIs, RoIs through G) of eager "size_aware" on ``image``."""
    heads, counts = model.roi_heads, []
    select, limit = heads.select_size_aware, heads.size_aware_max_rois

    def record(*args):
        selected = select(*args)
        counts.append(len(selected))
        return selected

    heads.select_size_aware = record
    try:
        _eager(model, image)
        heads.size_aware_max_rois = 0
        _eager(model, image)
    finally:
        heads.size_aware_max_rois = limit
        del heads.select_size_aware
    return counts[1], counts[0]


def test_traceable_selection_follows_its_input():
    """select_per_image_traceable, traced once, selects for other inputs as the eager loop:
    per image the candidates, at most k of them, the highest-scoring."""
    def select(candidates, score, b0, b1):
        return select_per_image_traceable(candidates, score, [b0, b1], 2)

    def inputs(sizes, cand, score):
        return (torch.tensor(cand, dtype=torch.bool), torch.tensor(score),
                *(torch.zeros(n, 4) for n in sizes))

    with torch.no_grad():
        traced = torch.jit.trace(select, inputs([3, 2], [1, 0, 1, 0, 0], [.5, .1, .7, .2, .3]))
    cases = [  # (RoIs per image, candidates, scores, expected per image)
        ([4, 3], [1, 1, 1, 0, 0, 0, 0], [.2, .9, .5, .8, .1, .1, .1], [{1, 2}, set()]),
        ([2, 5], [0, 0, 1, 0, 1, 0, 0], [.1, .2, .3, .4, .5, .6, .7], [set(), {2, 4}]),
        ([1, 1], [1, 1], [.3, .4], [{0}, {1}]),
        ([0, 3], [1, 1, 1], [.3, .4, .5], [set(), {1, 2}]),
    ]
    for sizes, cand, score, expected in cases:
        x = inputs(sizes, cand, score)
        for fn in (select, traced):
            got = fn(*x)
            assert got.dtype == torch.long
            per_image = [set(i for i in got.tolist() if lo <= i < lo + n)
                         for lo, n in zip([0, sizes[0]], sizes)]
            assert per_image == expected and len(got) == sum(map(len, expected))


def test_traced_selection_equals_eager_select_size_aware():
    """SRROIHeads.select_size_aware traced once (its tensor-only branch) selects the eager
    loop's RoIs for other predictions and numbers of RoIs: none, some, more than the limit."""
    heads = _model("sr_rcnn", "size_aware").roi_heads
    heads.size_aware_max_size, heads.size_aware_max_rois = 24.0, 4
    k, g = heads.num_classes, torch.Generator().manual_seed(0)

    def select(scores, deltas, boxes):
        proposals = [Instances((128, 128), proposal_boxes=Boxes(boxes))]
        return heads.select_size_aware((scores, deltas), proposals)

    def inputs(n, background):
        xy = torch.rand(n, 2, generator=g) * 64
        boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 40], 1)
        scores = torch.randn(n, k + 1, generator=g)
        scores[:, k] += background  # all below MIN_SCORE: nothing selected
        return scores, torch.randn(n, 4 * k, generator=g) * 0.2, boxes

    with torch.no_grad(), patch_builtin_len():  # as TracingAdapter traces
        traced = torch.jit.trace(select, inputs(30, 0.0))
    candidates = []
    for n, background in [(30, 0.0), (6, 0.0), (25, 10.0), (40, 0.0)]:
        x = inputs(n, background)
        expected, got = select(*x), traced(*x)
        assert sorted(got.tolist()) == sorted(expected.tolist())
        heads.size_aware_max_rois = 0  # eager, without the limit: how many were small
        candidates.append(len(select(*x)))
        heads.size_aware_max_rois = 4
    assert 0 in candidates and 0 < min(c for c in candidates if c) <= 4 < max(candidates), candidates


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=needs_onnx)])
@pytest.mark.parametrize("config,test_mode", [("mask_rcnn", None), ("sr_rcnn", "hr"),
                                              ("sr_rcnn", "size_aware")])
def test_exported_equals_eager(tmp_path, config, test_mode, fmt):
    """Traced on one image, the exported model gives the eager detections (boxes, scores,
    classes, RoI masks) on images of other sizes, and for "size_aware" with other numbers of
    RoIs through G: none, one of one, one of two (the limit)."""
    _check_exported(tmp_path, config, test_mode, fmt)


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=needs_onnx)])
def test_exported_with_texture_equals_eager(tmp_path, fmt):
    """G that also reads its RoIs' pixels (MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE) traces too."""
    _check_exported(tmp_path, "sr_rcnn", "size_aware", fmt, ["MODEL.SRRCNN.PAIR", "full_to_double",
                                                             "MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE", 2])


def _check_exported(tmp_path, config, test_mode, fmt, opts=()):
    """:func:`test_exported_equals_eager` for the model of ``config``, ``test_mode``, ``opts``."""
    model = _model(config, test_mode, opts)
    images = [_image(*x) for x in IMAGES]
    if test_mode == "size_aware":
        # the scenario holds: 0, 2 and 1 candidates, at most 1 through G
        assert [_count_selected(model, im) for im in images] == [(0, 0), (2, 1), (1, 1)]
    rtol = 1e-5 if fmt == "torchscript" else 1e-4
    # "size_aware": traced where G sees no RoI, and where the limit cuts
    for trace_on in (0, 1) if test_mode == "size_aware" else (0,):
        path, adapter = export_tracing(model, images[trace_on], fmt, str(tmp_path / str(trace_on)))
        exported = ExportedModel(path, adapter)
        for i, image in enumerate(images):
            _assert_same(_eager(model, image), exported(image), rtol,
                         f"{config} {test_mode} {fmt} traced on image {trace_on}, image {i}: ")


def test_scripted_mask_rcnn_equals_eager(tmp_path):
    model = _model("mask_rcnn")
    exported = ExportedModel(export_scripting(model, str(tmp_path)))
    for i, x in enumerate(IMAGES[:2]):
        image = _image(*x)
        _assert_same(_eager(model, image), exported(image), 1e-5, f"scripted, image {i}: ")


@pytest.mark.parametrize("test_mode,opts,method,match", [
    ("hr", [], "scripting", "does not script"),
    ("sr_lr", [], "tracing", "TEST_MODE 'sr_lr' does not export"),
    ("size_aware", ["MODEL.SRRCNN.GENERATOR.TEST_NORM_STATS", "batch"], "tracing",
     "TEST_NORM_STATS 'batch' does not export"),
    ("sr", ["MODEL.SRRCNN.TEST_COMPILE.BACKEND", "eager"], "tracing", "torch.compile does not trace"),
])
def test_unsupported_exports_say_why(tmp_path, test_mode, opts, method, match):
    model = _model("sr_rcnn", test_mode, opts)
    with pytest.raises(ValueError, match=match):
        if method == "scripting":
            export_scripting(model, str(tmp_path))
        else:
            export_tracing(model, _image(*IMAGES[0]), "torchscript", str(tmp_path))


def _tool():
    spec = importlib.util.spec_from_file_location(
        "export_model", os.path.join(REPO_ROOT, "tools", "export_model.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_export_tool_writes_and_checks_the_model(tmp_path):
    """tools/export_model.py on the SR-RCNN quick config, "size_aware": model.ts in --output,
    equal to the eager model on the sample image (the first of DATASETS.TEST), then
    evaluated on DATASETS.TEST with --run-eval."""
    tool = _tool()
    out = str(tmp_path / "export")
    args = tool.get_parser().parse_args([
        "--config-file", os.path.join(CONFIG_DIR, CONFIGS["sr_rcnn"]), "--format", "torchscript",
        "--export-method", "tracing", "--output", out, "--run-eval",
        "MODEL.SRRCNN.TEST_MODE", "size_aware", "MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    results = tool.main(args)
    assert os.path.isfile(os.path.join(out, "model.ts"))
    assert {"AP", "APs"} <= set(results["bbox"]) and "segm" in results


@needs_onnx
def test_export_tool_onnx_on_a_sample_image(tmp_path):
    tool = _tool()
    path = str(tmp_path / "sample.png")
    cv2.imwrite(path, (np.random.default_rng(0).random((100, 140, 3)) * 255).astype(np.uint8))
    out = str(tmp_path / "export")
    args = tool.get_parser().parse_args([
        "--config-file", os.path.join(CONFIG_DIR, CONFIGS["mask_rcnn"]), "--format", "onnx",
        "--sample-image", path, "--output", out, "MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    diff = tool.main(args)
    assert os.path.isfile(os.path.join(out, "model.onnx"))
    assert diff is not None and max(diff.values()) < 1e-3, diff


def test_export_tool_refuses_a_diagnostic_test_mode(tmp_path):
    tool = _tool()
    args = tool.get_parser().parse_args([
        "--config-file", os.path.join(CONFIG_DIR, CONFIGS["sr_rcnn"]), "--output", str(tmp_path),
        "MODEL.SRRCNN.TEST_MODE", "size_aware_x2", "MODEL.WEIGHTS", ""])
    with pytest.raises(SystemExit, match="Cannot export: .*size_aware_x2"):
        tool.main(args)
