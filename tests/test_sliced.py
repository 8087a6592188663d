# -*- coding: utf-8 -*-
"""Sliced inference (srrcnn.sliced): the slice grid, boxes and masks back in image coordinates,
merging across slices, the detection limit, argument checks; a fake square detector where exact
boxes matter, tiny random-weight models from the instant-test configs where the model matters."""
import importlib.util
import json
import os

import cv2
import numpy as np
import pytest
import torch

import detectron2.data.transforms as T
from detectron2.config import get_cfg
from detectron2.structures import Boxes, Instances
from detectron2.utils.testing import assert_instances_allclose

from srrcnn import SlicedPredictor, add_srrcnn_config, slice_grid, sliced_inference
from srrcnn.slice_merge import ROI_MASKS
from srrcnn.sliced import KeepSize, check_slice_args, predict_windows
from srrcnn.testing import CONFIG_DIR, REPO_ROOT

BACKGROUND, BRIGHT = 30, 200  # the fake detector finds squares whose every channel >= BRIGHT


class SquareDetector:
    """
    A fake GeneralizedRCNN (``inference(batched_inputs, do_postprocess=False)``): one class-0
    detection per bright square, exact box, score = its brightness / 255, an all-ones 28 x 28
    mask. A square cut by its input's border is skipped, or reported at half the score
    (``report_cut``), as a detector's partial detection of a cut object.
    """

    device = torch.device("cpu")

    def __init__(self, report_cut=False):
        self.report_cut = report_cut
        self.calls = []  # batch sizes of the forward calls

    def inference(self, batched_inputs, do_postprocess=True):
        assert not do_postprocess
        self.calls.append(len(batched_inputs))
        out = []
        for x in batched_inputs:
            image = x["image"]  # (3, h, w) float
            h, w = image.shape[1:]
            bright = (image.min(0).values >= BRIGHT).numpy().astype(np.uint8)
            stats = cv2.connectedComponentsWithStats(bright, connectivity=4)[2][1:]
            boxes, scores = [], []
            for x0, y0, bw, bh, _ in stats.tolist():
                cut = x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h
                if cut and not self.report_cut:
                    continue
                value = image[:, y0:y0 + bh, x0:x0 + bw].mean().item() / 255
                boxes.append([x0, y0, x0 + bw, y0 + bh])
                scores.append(value * (0.5 if cut else 1.0))
            n = len(boxes)
            out.append(Instances((h, w), pred_boxes=Boxes(torch.tensor(boxes).float().view(n, 4)),
                                 scores=torch.tensor(scores).view(n),
                                 pred_classes=torch.zeros(n, dtype=torch.long),
                                 pred_masks=torch.ones(n, 1, 28, 28)))
        return out


def squares_image(height, width, squares):
    """(H, W, 3) uint8: BACKGROUND with squares (x0, y0, side, value) drawn at ``value``."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    for x0, y0, side, value in squares:
        image[y0:y0 + side, x0:x0 + side] = value
    return image


def run(image, model=None, resize=None, **kwargs):
    kwargs = dict(dict(slice_size=64, overlap=0.5, max_detections=100), **kwargs)
    return sliced_inference(model or SquareDetector(), image, resize or KeepSize(), **kwargs)


def box_list(instances):
    return sorted(instances.pred_boxes.tensor.round().int().tolist())


@pytest.mark.parametrize("height,width,size,overlap", [
    (100, 90, 128, 0.2), (300, 300, 100, 0.0), (256, 1000, 128, 0.2), (129, 130, 64, 0.5),
    (64, 200, 64, 0.9), (440, 1760, 320, 0.25),
])
def test_grid_covers_image_exactly(height, width, size, overlap):
    windows = slice_grid(height, width, size, overlap)
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert (y1 - y0, x1 - x0) == (min(size, height), min(size, width))
        covered[y0:y1, x0:x1] = True
    assert covered.all() and len(set(windows)) == len(windows)
    stride = size - int(overlap * size)
    xs = sorted({w[0] for w in windows})
    assert np.all(np.diff(xs) <= stride) and xs[-1] + min(size, width) == width
    if width > size:  # every step is the stride but the last, which ends at the border
        assert np.all(np.diff(xs)[:-1] == stride)


def test_grid_of_an_image_smaller_than_a_slice_is_the_image():
    assert slice_grid(50, 70, 128, 0.2) == [(0, 0, 70, 50)]


@pytest.mark.parametrize("kwargs,match", [
    (dict(slice_size=0), "slice size"), (dict(slice_size=-8), "slice size"),
    (dict(slice_size=64.5), "slice size"), (dict(overlap=1.0), "overlap"),
    (dict(overlap=-0.1), "overlap"), (dict(merge="wbf"), "merge"),
    (dict(merge="nms", merge_metric="ios"), "nmm"), (dict(merge_thresh=0.0), "threshold"),
    (dict(batch_size=0), "batch size"), (dict(max_detections=0), "max detections"),
])
def test_bad_arguments_raise_a_clear_error(kwargs, match):
    kwargs = dict(dict(slice_size=64, overlap=0.2), **kwargs)
    with pytest.raises(ValueError, match=match):
        check_slice_args(**kwargs)
    with pytest.raises(ValueError, match=match):
        run(squares_image(80, 80, []), **kwargs)


def test_box_on_a_tile_edge_is_found_once():
    # windows x in [0, 64), [32, 96), [64, 128): A lies whole in the first two (their overlap),
    # B straddles x = 64, whole only in the middle window, cut in the outer two
    a, b = (40, 20, 16, 250), (58, 30, 16, 220)
    image = squares_image(64, 128, [a, b])
    windows = slice_grid(64, 128, 64, 0.5)
    seen = [len(r) for r in predict_windows(SquareDetector(), image, windows, KeepSize(), 4)]
    assert seen == [1, 2, 0]  # A twice, B once
    model = SquareDetector()
    assert len(run(image, model, merge="nms", batch_size=1)) == 2
    assert model.calls == [1, 1, 1]
    out = run(image, merge="nms")
    assert box_list(out) == [[40, 20, 56, 36], [58, 30, 74, 46]]
    # with the cut parts reported too, NMM by intersection over the smaller box merges them
    out = run(image, SquareDetector(report_cut=True), merge="nmm", merge_metric="ios")
    assert box_list(out) == [[40, 20, 56, 36], [58, 30, 74, 46]]
    assert out.scores.tolist() == pytest.approx([250 / 255, 220 / 255])


def test_boxes_back_in_image_coordinates_through_the_resize():
    squares = [(10, 12, 14, 255), (150, 40, 18, 240), (230, 170, 12, 230), (90, 100, 20, 210)]
    image = squares_image(200, 300, squares)
    model = SquareDetector()
    # each 96 px window is enlarged to 192 px before the model, as INPUT.MIN_SIZE_TEST would
    out = run(image, model, T.ResizeShortestEdge(192, 1000), slice_size=96, overlap=0.25,
              batch_size=4)
    assert sum(model.calls) == len(slice_grid(200, 300, 96, 0.25)) and max(model.calls) == 4
    expected = sorted([x, y, x + s, y + s] for x, y, s, _ in squares)
    assert len(out) == len(squares) and out.image_size == (200, 300)
    got = sorted(out.pred_boxes.tensor.tolist())
    assert np.allclose(got, expected, atol=1.0), got


def test_full_image_pass_is_merged_in():
    image = squares_image(128, 128, [(20, 20, 90, 250)])  # large: cut by every 64 px window
    assert len(run(image)) == 0
    out = run(image, full_image_pass=True)
    assert box_list(out) == [[20, 20, 110, 110]]


def test_masks_pasted_back_where_the_box_is():
    image = squares_image(100, 160, [(50, 10, 16, 250), (120, 60, 20, 230)])
    out = run(image, SquareDetector(report_cut=True), merge="nmm", merge_metric="ios")
    assert out.pred_masks.shape == (2, 100, 160) and out.pred_masks.dtype == torch.bool
    for (x0, y0, x1, y1), mask in zip(out.pred_boxes.tensor.int().tolist(), out.pred_masks):
        inside = torch.zeros_like(mask)
        inside[y0:y1, x0:x1] = True
        assert torch.equal(mask, inside)
    assert not out.has(ROI_MASKS)


def test_at_most_detections_per_image_best_first():
    squares = [(8 + 24 * i, 8 + 40 * j, 12, 200 + 4 * (i + 6 * j))
               for i in range(6) for j in range(2)]
    image = squares_image(100, 160, squares)
    out = run(image, max_detections=5)
    assert len(out) == 5
    assert out.scores.tolist() == sorted(out.scores.tolist(), reverse=True)
    assert out.scores[-1].item() == pytest.approx((200 + 4 * 7) / 255)


def tiny_cfg(config="quick_schedules/mask_rcnn_instant_test.yaml", **slice_keys):
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIG_DIR, config))
    cfg.MODEL.WEIGHTS = ""
    cfg.TEST.SLICE.update(slice_keys)
    return cfg


@pytest.mark.parametrize("config", ["mask_rcnn_instant_test.yaml", "sr_rcnn_instant_test.yaml"])
def test_image_smaller_than_a_slice_equals_whole_image_inference(config):
    torch.manual_seed(0)
    predictor = SlicedPredictor(tiny_cfg("quick_schedules/" + config), slice_size=128,
                                full_image_pass=True)
    image = np.random.default_rng(0).integers(0, 256, (96, 112, 3), dtype=np.uint8)
    sliced = predictor(image)["instances"]
    whole = predictor.whole_image(image)["instances"]
    assert len(whole) > 0
    assert_instances_allclose(sliced, whole, rtol=0)


def test_batched_slices_equal_one_by_one():
    torch.manual_seed(0)
    image = np.random.default_rng(1).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    one = SlicedPredictor(tiny_cfg(), slice_size=128, batch_size=1)
    batched = SlicedPredictor(tiny_cfg(), slice_size=128, batch_size=4)
    batched.model.load_state_dict(one.model.state_dict())
    a, b = one(image)["instances"], batched(image)["instances"]
    assert len(a) > 0 and a.image_size == (160, 200) and a.pred_masks.shape[1:] == (160, 200)
    # batching changes float rounding: a soft mask value at the threshold may flip a pixel
    assert (a.pred_masks != b.pred_masks).sum() <= 1e-3 * a.pred_masks.sum()
    a.remove("pred_masks"), b.remove("pred_masks")
    assert_instances_allclose(a, b, rtol=1e-4)


def test_predictor_reads_cfg_and_keyword_overrides():
    cfg = tiny_cfg(SIZE=96, OVERLAP=0.25, MERGE="nmm", MERGE_METRIC="ios")
    cfg.TEST.DETECTIONS_PER_IMAGE = 7
    predictor = SlicedPredictor(cfg, overlap=0.5, full_image_pass=True)
    assert predictor.slice_args == dict(slice_size=96, overlap=0.5, full_image_pass=True,
                                        merge="nmm", merge_metric="ios", merge_thresh=0.5,
                                        batch_size=4, max_detections=7)
    with pytest.raises(ValueError, match="overlap"):
        SlicedPredictor(cfg, overlap=1.0)


def test_large_image_dataset_registered_not_generated():
    from detectron2.data import MetadataCatalog

    params = MetadataCatalog.get("srrcnn_shapes_large_val").srrcnn_shapes
    assert params["image_size"] == 1280 and params["detail"] == "checker"
    assert not os.path.exists(MetadataCatalog.get("srrcnn_shapes_large_val").json_file)


def test_sliced_eval_tool_writes_both_methods_side_by_side(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "sliced_eval", os.path.join(REPO_ROOT, "tools", "sliced_eval.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / "eval.json")
    torch.manual_seed(0)
    args = tool.get_parser().parse_args([
        "--config-file", os.path.join(CONFIG_DIR, "quick_schedules/sr_rcnn_instant_test.yaml"),
        "--num-images", "2", "--slice-size", "128", "--slice-overlap", "0.25", "--native",
        "--test-modes", "hr", "size_aware", "--output", out, "MODEL.WEIGHTS", ""])
    tool.main(args)
    data = json.load(open(out))
    assert data["info"]["dataset"] == "srrcnn_shapes_tiny_val" and data["info"]["num_images"] == 2
    assert data["info"]["slices_per_image"] == 9  # 256 px images, 128 px slices, stride 96
    assert set(data["results"]) == {"hr", "size_aware"}
    for by_method in data["results"].values():
        assert set(by_method) == {"whole", "sliced", "native"}
        for r in by_method.values():
            assert {"AP", "APs", "APm", "APl"} <= set(r["bbox"]) and "segm" in r
            assert r[tool.TIME_KEY] > 0
