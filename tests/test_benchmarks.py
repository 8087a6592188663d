# -*- coding: utf-8 -*-
"""Tests of benchmarks/cost.py on the instant-test config: every measurement runs and ends in ratios."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config-file", os.path.join(ROOT, "configs/quick_schedules/sr_rcnn_instant_test.yaml"),
        "--size", "96", "--batch", "2", "--iters", "1", "--warmup", "1", "--images", "2",
        "--dataset", "srrcnn_shapes_tiny_train", "--device", "cpu"]


@pytest.fixture(scope="module")
def output():
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks/cost.py")] + TINY + [
        "MODEL.SRRCNN.G_ROIS_PER_IMAGE", "8", "MODEL.SRRCNN.SIZE_AWARE.MAX_ROIS_PER_IMAGE", "4"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_ratio_line(output):
    last = output.strip().splitlines()[-1]
    ratios = dict(kv.split("=") for kv in last.split())
    assert set(ratios) == {"train_iter_ratio", "peak_memory_ratio", "infer_without_G_ratio",
                           "infer_with_G_ratio", "infer_size_aware_ratio",
                           "infer_with_G_unfolded_ratio", "infer_size_aware_unfolded_ratio"}
    for v in ratios.values():
        assert float(v) > 0


def test_settings_and_sections(output):
    assert "G RoIs/image=8" in output and "size=96" in output and "batch=2" in output
    for section in ("== train", "== memory", "== inference", "== breakdown"):
        assert section in output
    # size_aware never sends more than its cap through G (2 images x ... per image: <= 4)
    line = next(l for l in output.splitlines() if l.startswith("== inference"))
    sent = int(line.split("size_aware sent ")[1].split()[0])
    assert 0 <= sent <= 4


def test_inference_with_folded_and_unfolded_generator(output):
    """G's batch norms folded (the usual test path) and not: the same detections."""
    lines = output.split("== inference")[1].split("==")[0].splitlines()
    assert "G's batch norms folded, _unfolded: not; TEST_COMPILE.BACKEND off" in lines[0]
    assert "G's output: identity" in lines[0]
    rows = {l.split(":")[0]: l.split("), ")[-1] for l in lines[1:] if l.startswith(("sr_rcnn", "mask_rcnn"))}
    assert set(rows) == {"mask_rcnn", "sr_rcnn_hr", "sr_rcnn_sr", "sr_rcnn_size_aware",
                         "sr_rcnn_sr_unfolded", "sr_rcnn_size_aware_unfolded"}
    # "N detections per image, M boxes into NMS": G is the identity, so every run does the
    # same post-processing work
    assert len(set(rows.values())) == 1 and "boxes into NMS" in rows["mask_rcnn"]


def test_breakdown_names_the_extra_work(output):
    rows = {l[:62].strip(): l[62:].split() for l in output.splitlines()
            if l.startswith(("second backbone", "generator", "backward", "total"))}
    assert float(rows["second backbone pass (0.5x image, forward)"][1]) > 0
    assert float(rows["generator (forward)"][1]) > 0
    assert float(rows["total"][1]) > float(rows["second backbone pass (0.5x image, forward)"][1])


def test_train_and_breakdown_of_a_generator_without_parameters():
    """GENERATOR.NAME IdentityGenerator: no G optimizer to step, G's range all but empty."""
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/cost.py")] + TINY
                         + ["--what", "train,breakdown", "MODEL.SRRCNN.GENERATOR.NAME", "IdentityGenerator"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "== breakdown" in res.stdout and "breakdown worker failed" not in res.stdout + res.stderr
    assert float(res.stdout.strip().splitlines()[-1].split("=")[1]) > 0  # train_iter_ratio


def test_unknown_measurement():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/cost.py")] + TINY + ["--what", "speed"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode != 0 and "unknown 'speed'" in res.stderr


def test_upscale_measures_mask_rcnn_at_twice_the_size():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/cost.py")] + TINY
                         + ["--what", "upscale"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "== upscale: Mask R-CNN at 192 px against 96 px" in res.stdout
    ratios = dict(kv.split("=") for kv in res.stdout.strip().splitlines()[-1].split())
    assert set(ratios) == {"upscale_train_ratio", "upscale_infer_ratio"}
    assert all(float(v) > 0 for v in ratios.values())


@pytest.mark.parametrize("texture", [[], ["MODEL.SRRCNN.PAIR", "full_to_double",
                                            "MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE", "2"]],
                         ids=["plain", "texture"])
def test_generator_folded_against_unfolded(texture):
    """G alone; with TEXTURE_SCALE its input also holds the RoIs' folded pixels (3 k^2 channels)."""
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/cost.py")] + TINY
                         + ["--what", "generator", "MODEL.SRRCNN.SIZE_AWARE.MAX_ROIS_PER_IMAGE", "4"]
                         + texture, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "== generator: seconds per call at test, G alone" in res.stdout
    for row in ("4 RoIs (size_aware), folded", "4 RoIs (size_aware), unfolded",
                "32 RoIs (sr), folded", "32 RoIs (sr), unfolded"):
        assert row + ": median" in res.stdout
    ratios = dict(kv.split("=") for kv in res.stdout.strip().splitlines()[-1].split())
    assert set(ratios) == {"generator_size_aware_folded_ratio", "generator_sr_folded_ratio"}
    assert all(float(v) > 0 for v in ratios.values())


def test_profile_tables_for_every_model_and_test_mode():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/cost.py")] + TINY
                         + ["--what", "profile", "--profile-rows", "3"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("mask_rcnn", "sr_rcnn_hr", "sr_rcnn_sr", "sr_rcnn_size_aware"):
        assert f"== profile: {name}, 2 images, sorted by self_cpu_time_total" in res.stdout
    assert res.stdout.count("Self CPU time total") == 4


def test_inference_modes_do_the_same_post_processing():
    """G is the identity in the inference measurement: every mode predicts Mask R-CNN's boxes
    and scores on every image, so NMS and the mask head cost the same (only G's passes differ)."""
    import contextlib
    import importlib.util

    import torch
    from srrcnn.data import ensure_generated
    from srrcnn.evaluation import test_mode

    spec = importlib.util.spec_from_file_location("cost", os.path.join(ROOT, "benchmarks/cost.py"))
    cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost)
    args = cost.parser().parse_args(TINY)
    ensure_generated(args.dataset)
    base_cfg, sr_cfg = cost.make_cfgs(args)
    sr, images, runs = cost.inference_setup(args, base_cfg, sr_cfg)
    assert sr.roi_heads.generator.tail.weight.abs().sum() == 0  # G's work is still done
    with torch.no_grad():
        for batch in images:
            ref = runs["mask_rcnn"][0](batch)[0]["instances"]
            for mode in ("sr", "size_aware"):
                with test_mode(sr, mode):
                    out = sr(batch)[0]["instances"]
                assert len(out) == len(ref) > 0
                torch.testing.assert_close(out.scores, ref.scores, atol=1e-5, rtol=0)


def test_constant_generator_inflates_nms():
    """--g-output constant (the measurements before 2026-12-04): "sr" gives every RoI the same
    scores, so its NMS gets every (RoI, class) box, far more than Mask R-CNN's. The R50-FPN COCO
    config (80 classes), whose random box head gives peaked scores, as in the GPU measurements."""
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/cost.py"), "--size", "128",
                          "--images", "1", "--warmup", "0", "--dataset", "srrcnn_shapes_tiny_train",
                          "--device", "cpu", "--what", "inference", "--g-output", "constant"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    nms = {l.split(":")[0]: int(l.split(", ")[-1].split()[0]) for l in res.stdout.splitlines()
           if l.endswith("boxes into NMS")}
    assert nms["sr_rcnn_sr"] > 10 * nms["mask_rcnn"] and nms["sr_rcnn_hr"] == nms["mask_rcnn"], nms
