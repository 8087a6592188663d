# -*- coding: utf-8 -*-
"""demo/demo.py as users run it: a tiny random-init SR-RCNN on a folder, a glob and bad inputs."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detectron2.checkpoint import DetectionCheckpointer
from srrcnn.testing import REPO_ROOT, get_model_no_weights, get_tiny_cfg, write_yolo_sample

DEMO = os.path.join(REPO_ROOT, "demo", "demo.py")
RESULT_KEYS = {"image_id", "file_name", "category_id", "bbox", "score", "segmentation"}
SIZES = {"a": (64, 80, 3), "b": (37, 53, 3), "gray": (64, 80)}  # name: shape (odd, grayscale)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(tmp, config yaml, weights, image folder) with a random-init tiny SR-RCNN."""
    tmp = tmp_path_factory.mktemp("demo")
    cfg = get_tiny_cfg(sr=True)
    (tmp / "config.yaml").write_text(cfg.dump())
    DetectionCheckpointer(get_model_no_weights(cfg), str(tmp)).save("model")
    images = tmp / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in SIZES.items():
        cv2.imwrite(str(images / f"{name}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    return tmp, tmp / "config.yaml", tmp / "model.pth", images


def run_demo(setup, inputs, output, *extra, opts=()):
    tmp, config, weights, _ = setup
    env = dict(os.environ, SRRCNN_DATASETS=str(tmp / "datasets"), OMP_NUM_THREADS="1")
    args = [sys.executable, DEMO, "--config-file", str(config), "--input", *map(str, inputs),
            "--output", str(output), "--confidence-threshold", "0.0", *extra,
            "--opts", "MODEL.WEIGHTS", str(weights), "MODEL.DEVICE", "cpu", *opts]
    proc = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=600)  # a hang guard: on a shared, contended CPU one run took > 120 s
    return proc.returncode, proc.stdout + proc.stderr


def check_outputs(output, names):
    for name in names:
        drawn = cv2.imread(str(output / f"{name}.png"))
        assert drawn is not None and drawn.shape[:2] == SIZES[name][:2], name
    results = json.loads((output / "results.json").read_text())
    assert isinstance(results, list) and results, "no detections at threshold 0"
    for r in results:
        assert set(r) == RESULT_KEYS
        assert len(r["bbox"]) == 4 and r["score"] >= 0.0
        assert r["category_id"] in (1, 2, 3, 4)  # srrcnn_shapes_val ids (contiguous + 1)
        assert isinstance(r["segmentation"]["counts"], str)
    assert {os.path.basename(r["file_name"]) for r in results} <= {f"{n}.png" for n in names}


@pytest.mark.parametrize("mode,as_glob", [("sr", False), ("hr", True)])
def test_demo_folder_and_glob(setup, mode, as_glob):
    images = setup[3]
    output = setup[0] / f"out_{mode}"
    inputs = [images / "*.png"] if as_glob else [images]
    rc, out = run_demo(setup, inputs, output, "--test-mode", mode)
    assert rc == 0, out[-4000:]
    assert sorted(p.name for p in output.glob("*.png")) == sorted(f"{n}.png" for n in SIZES)
    check_outputs(output, SIZES)


def test_demo_no_match_names_pattern(setup):
    pattern = str(setup[0] / "nothing" / "*.jpg")
    rc, out = run_demo(setup, [pattern], setup[0] / "out_none")
    assert rc != 0 and pattern in out


def test_demo_corrupt_image_skipped(setup):
    tmp, images = setup[0], setup[3]
    bad = tmp / "bad.png"
    bad.write_bytes(b"not a png")
    output = tmp / "out_bad"
    rc, out = run_demo(setup, [images / "a.png", bad, images / "b.png"], output)
    assert rc != 0 and str(bad) in out
    assert not (output / "bad.png").exists()
    check_outputs(output, ["a", "b"])


def test_demo_names_classes_of_a_dataset_registered_by_flag(setup):
    """--register-yolo, as train_net.py takes it: the pictures use that dataset's class names."""
    tmp, images = setup[0], setup[3]
    names = ["plane", "ship", "car", "tank"]  # the tiny model's 4 classes
    sample = write_yolo_sample(str(tmp / "yolo"), names, num_images=1)
    output = tmp / "out_yolo"
    rc, out = run_demo(setup, [images / "a.png"], output, "--register-yolo", "mine", *sample,
                       opts=("DATASETS.TEST", '("mine",)'))
    assert rc == 0, out[-4000:]
    assert "Class names of mine: plane, ship, car, tank" in out
    results = json.loads((output / "results.json").read_text())
    assert results and {r["category_id"] for r in results} <= {1, 2, 3, 4}  # YOLO class + 1

    missing = tmp / "no_labels"
    rc, out = run_demo(setup, [images / "a.png"], tmp / "out_missing", "--register-yolo",
                       "mine", sample[0], str(missing), sample[2])
    assert rc == 2 and "Dataset error (--register-yolo mine)" in out and str(missing) in out


@pytest.fixture(scope="module")
def mask_rcnn_setup(tmp_path_factory):
    """(tmp, config yaml, weights, image folder): Mask R-CNN of the instant test, random weights,
    and one 150 x 230 image, larger than a 64 px slice."""
    tmp = tmp_path_factory.mktemp("demo_sliced")
    cfg = get_tiny_cfg(sr=False, config_file="quick_schedules/mask_rcnn_instant_test.yaml")
    (tmp / "config.yaml").write_text(cfg.dump())
    DetectionCheckpointer(get_model_no_weights(cfg), str(tmp)).save("model")
    images = tmp / "images"
    images.mkdir()
    cv2.imwrite(str(images / "large.png"),
                np.random.default_rng(1).integers(0, 256, (150, 230, 3), dtype=np.uint8))
    return tmp, tmp / "config.yaml", tmp / "model.pth", images


def test_demo_sliced(mask_rcnn_setup):
    """--slice-size and friends switch to SlicedPredictor: boxes in image coordinates, everywhere."""
    tmp, images = mask_rcnn_setup[0], mask_rcnn_setup[3]
    output = tmp / "out_sliced"
    rc, out = run_demo(mask_rcnn_setup, [images / "large.png"], output, "--slice-size", "64",
                       "--slice-overlap", "0.25", "--full-image-pass", "--slice-merge", "nmm",
                       opts=("TEST.DETECTIONS_PER_IMAGE", "20"))
    assert rc == 0, out[-4000:]
    assert "Sliced inference: slice_size=64, overlap=0.25, full_image_pass=True, merge=nmm" in out
    assert "large.png: 20 instances (15 slices)" in out  # 3 rows x 5 columns, 48 px apart
    drawn = cv2.imread(str(output / "large.png"))
    assert drawn is not None and drawn.shape == (150, 230, 3)
    results = json.loads((output / "results.json").read_text())
    assert results and all(set(r) == RESULT_KEYS for r in results)
    x0, y0, w, h = np.array([r["bbox"] for r in results]).T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 230 + 1e-3).all() \
        and (y0 + h <= 150 + 1e-3).all()
    assert (x0 > 64).any() and (y0 > 64).any()  # found beyond the first slice

    rc, out = run_demo(mask_rcnn_setup, [images / "large.png"], tmp / "out_bad",
                       "--slice-size", "64", "--slice-overlap", "1.5")
    assert rc == 2 and "Config error: slice overlap must be a ratio in [0, 1), got 1.5" in out
