# -*- coding: utf-8 -*-
"""tools/roi_features.py: gap (1x, 2x, 2x-crop and G(1x) RoI features) and probe, on a tiny model."""
import importlib.util
import json
import os

import torch

from detectron2.checkpoint import DetectionCheckpointer

from srrcnn.testing import REPO_ROOT, get_model_no_weights, get_tiny_cfg

_spec = importlib.util.spec_from_file_location("roi_features", os.path.join(REPO_ROOT, "tools", "roi_features.py"))
roi_features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(roi_features)


def _run_dir(tmp_path):
    cfg = get_tiny_cfg(sr=True)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 256, 256  # the tiny split's size
    cfg.DATASETS.TEST = ("srrcnn_shapes_tiny_val",)
    torch.manual_seed(0)
    model = get_model_no_weights(cfg)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(cfg.dump())
    DetectionCheckpointer(model, save_dir=str(run)).save("model_final")
    return str(run)


def test_sources_compared_to_the_whole_image_2x_pass(tmp_path):
    run = _run_dir(tmp_path)
    out = tmp_path / "gap.json"
    assert roi_features.main(["gap", "--run", run, "--crop-sizes", "64", "--max-images", "2",
                               "--write", str(out)]) == 0
    result = json.loads(out.read_text())["results"][run]
    rows = result["sources"]
    assert result["boxes"] > 0
    assert set(rows) == {"1x", "2x", "crop64", "G(1x)"}
    assert abs(rows["2x"]["rel_dist_to_2x"]) < 1e-6 and abs(rows["2x"]["cosine_to_2x"] - 1) < 1e-5
    for r in rows.values():
        assert 0 <= r["head_accuracy"] <= 1 and 0 <= r["gt_probability"] <= 1
    # a crop of the image is not the whole image: its feature differs from the 2x pass's
    assert rows["crop64"]["rel_dist_to_2x"] > 1e-3

    md = tmp_path / "gap.md"
    assert roi_features.main(["gap", "--run", run, "--crop-sizes", "64", "--max-images", "2",
                               "--write", str(md)]) == 0
    text = md.read_text()
    assert text.startswith("`python tools/roi_features.py gap --run")
    assert "| crop64 |" in text and "| G(1x) |" in text


def test_probe_classifies_small_boxes_from_each_source(tmp_path):
    run = _run_dir(tmp_path)
    out = tmp_path / "probe.json"
    assert roi_features.main(["probe", "--run", run, "--train-dataset", "srrcnn_shapes_tiny_train",
                              "--max-train-images", "3", "--max-images", "2", "--epochs", "2",
                              "--write", str(out)]) == 0
    result = json.loads(out.read_text())["results"][run]
    assert result["train_boxes"] > 0 and result["test_boxes"] > 0
    assert set(result["sources"]) == {"0.5x", "1x", "2x"}
    for r in result["sources"].values():
        assert 0 <= r["probe_accuracy"] <= 1
    assert 0 <= result["head_accuracy_1x"] <= 1


def test_probe_rejects_an_unknown_source(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit):
        roi_features.main(["probe", "--run", "x", "--sources", "1x,4x"])
    assert "unknown source '4x'" in capsys.readouterr().err
