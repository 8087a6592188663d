# -*- coding: utf-8 -*-
"""Smoke tests of train_net.py as users run it: train a few iterations, evaluate, bad inputs."""
import json
import os
import re
import subprocess
import sys

import pytest

from srrcnn.testing import REPO_ROOT, write_yolo_sample

TRAIN_NET = os.path.join(REPO_ROOT, "train_net.py")
MASK_CFG = os.path.join(REPO_ROOT, "configs/quick_schedules/mask_rcnn_instant_test.yaml")
SR_CFG = os.path.join(REPO_ROOT, "configs/quick_schedules/sr_rcnn_instant_test.yaml")


def run(args, tmp_path, check=True, timeout=600):
    """Run train_net.py in tmp_path (datasets generated under tmp_path/datasets)."""
    env = dict(os.environ, SRRCNN_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, TRAIN_NET, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"train_net.py {' '.join(args)} failed:\n{out[-6000:]}")
    return proc.returncode, out


def ap_rows(log):
    """{task: {metric: value}} from detectron2's 'copypaste' lines."""
    rows, task = {}, None
    lines = re.findall(r"copypaste: (.*)", log)
    for i, line in enumerate(lines):
        if line.startswith("Task: "):
            task = line[len("Task: "):].strip()
        elif line.startswith("AP,") and task is not None:
            keys = line.strip().split(",")
            vals = [float(v) for v in lines[i + 1].strip().split(",")]
            rows[task] = dict(zip(keys, vals))
    return rows


@pytest.fixture(scope="module")
def sr_trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sr")
    _, log = run(["--config-file", SR_CFG, "OUTPUT_DIR", str(tmp / "out")], tmp)
    return tmp, log


def test_mask_rcnn_trains_and_evaluates(tmp_path):
    _, log = run(["--config-file", MASK_CFG, "OUTPUT_DIR", str(tmp_path / "out")], tmp_path)
    rows = ap_rows(log)
    assert set(rows) == {"bbox", "segm"}
    for task in rows:
        assert set(rows[task]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert (tmp_path / "out" / "model_final.pth").exists()


def test_sr_rcnn_trains_logs_both_objectives(sr_trained):
    tmp, log = sr_trained
    assert set(ap_rows(log)) == {"bbox", "segm"}
    metrics = [json.loads(l) for l in open(tmp / "out" / "metrics.json") if l.strip()]
    keys = set().union(*[m.keys() for m in metrics])
    for k in ["loss_G_adv", "loss_G_cls", "loss_G_box_reg", "loss_G_content", "loss_D_adv",
              "loss_cls_hr", "loss_cls_sr", "loss_box_reg_hr", "loss_box_reg_sr", "loss_mask",
              "loss_rpn_cls", "G_total_loss", "D_total_loss", "lr", "lr_G"]:
        assert k in keys, k


def test_sr_rcnn_eval_only_test_mode_from_command_line(sr_trained):
    tmp, _ = sr_trained
    _, log = run(["--config-file", SR_CFG, "--eval-only",
                  "MODEL.WEIGHTS", str(tmp / "out" / "model_final.pth"),
                  "MODEL.SRRCNN.TEST_MODE", "hr", "OUTPUT_DIR", str(tmp / "eval_hr")], tmp)
    assert set(ap_rows(log)) == {"bbox", "segm"}
    saved = json.load(open(tmp / "eval_hr" / "eval_results.json"))
    assert list(saved["results"]) == ["hr"]


def test_sr_rcnn_eval_only_both_test_modes_side_by_side(sr_trained):
    tmp, _ = sr_trained
    _, log = run(["--config-file", SR_CFG, "--eval-only", "--test-modes", "sr,hr",
                  "MODEL.WEIGHTS", str(tmp / "out" / "model_final.pth"),
                  "OUTPUT_DIR", str(tmp / "eval_both")], tmp)
    assert "bbox AP by test mode" in log and "segm AP by test mode" in log
    assert "| with G (sr) |" in log and "| without G (hr) |" in log
    saved = json.load(open(tmp / "eval_both" / "eval_results.json"))["results"]
    assert set(saved) == {"sr", "hr"}
    # the side-by-side table prints the evaluator's numbers
    for mode, name in (("sr", "with G (sr)"), ("hr", "without G (hr)")):
        row = re.search(r"\| " + re.escape(name) + r" \| ([^\n]*)\|", log).group(1)
        assert float(row.split("|")[0]) == pytest.approx(saved[mode]["bbox"]["AP"], abs=0.05)


def test_unknown_config_key_is_a_clear_error(tmp_path):
    code, out = run(["--config-file", SR_CFG, "MODEL.SRRCNN.NO_SUCH_KEY", "1"], tmp_path, check=False)
    assert code != 0
    assert "Config error" in out and "MODEL.SRRCNN.NO_SUCH_KEY" in out


def test_register_coco_missing_json_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "instances.json"
    code, out = run(["--config-file", MASK_CFG, "--register-coco", "mine", str(missing),
                     str(tmp_path)], tmp_path, check=False)
    assert code != 0 and str(missing) in out


def test_register_coco_missing_image_dir_names_the_path(tmp_path):
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    missing = tmp_path / "no_images"
    code, out = run(["--config-file", MASK_CFG, "--register-coco", "mine", str(js),
                     str(missing)], tmp_path, check=False)
    assert code != 0 and str(missing) in out


def test_eval_only_without_test_dataset_is_a_clear_error(tmp_path):
    code, out = run(["--config-file", MASK_CFG, "--eval-only", "DATASETS.TEST", "()"], tmp_path,
                    check=False)
    assert code != 0 and "set DATASETS.TEST" in out


def test_trains_and_evaluates_on_a_yolo_folder(tmp_path):
    """--register-yolo: two iterations, then COCOEvaluator converts the folder to COCO json."""
    sample = write_yolo_sample(str(tmp_path / "yolo"), ["red", "green"])
    _, log = run(["--config-file", MASK_CFG, "--register-yolo", "mine", *sample,
                  "DATASETS.TRAIN", '("mine",)', "DATASETS.TEST", '("mine",)',
                  "MODEL.ROI_HEADS.NUM_CLASSES", "2", "MODEL.MASK_ON", "False",
                  "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "(1,)",
                  "OUTPUT_DIR", str(tmp_path / "out")], tmp_path)
    assert set(ap_rows(log)) == {"bbox"}
    converted = tmp_path / "out" / "inference" / "mine" / "mine_coco_format.json"
    assert [c["name"] for c in json.loads(converted.read_text())["categories"]] == ["red", "green"]


def test_image_that_fails_to_decode_names_the_file(tmp_path):
    """A COCO dataset registered from the command line with one corrupt image."""
    import shutil

    from srrcnn.data import ensure_dataset

    json_file, image_root = ensure_dataset(str(tmp_path / "datasets"), "train", 8, 256, 0)
    images = tmp_path / "images"
    shutil.copytree(image_root, images)
    data = json.load(open(json_file))
    for im in data["images"]:  # break every image, so the first one read fails
        (images / im["file_name"]).write_bytes(b"this is not a png")
    code, out = run(["--config-file", MASK_CFG, "--register-coco", "broken", str(json_file),
                     str(images), "DATASETS.TRAIN", '("broken",)'], tmp_path, check=False)
    assert code != 0
    msg = re.search(r"RuntimeError: Cannot read image (\S+): ", out)
    assert msg, out[-3000:]
    assert os.path.dirname(msg.group(1)) == str(images)


def test_two_cpu_processes_through_launch(tmp_path):
    """--num-gpus 2 on the CPU: GLOO, SR-RCNN's own gradient averaging, eval on rank 0."""
    _, log = run(["--config-file", SR_CFG, "--num-gpus", "2", "--dist-url", "auto",
                  "OUTPUT_DIR", str(tmp_path / "out")], tmp_path)
    assert set(ap_rows(log)) == {"bbox", "segm"}
    assert (tmp_path / "out" / "model_final.pth").exists()


def test_amp_on_the_cpu_is_a_clear_error(tmp_path):
    code, out = run(["--config-file", SR_CFG, "SOLVER.AMP.ENABLED", "True", "MODEL.DEVICE", "cpu",
                     "OUTPUT_DIR", str(tmp_path / "out")], tmp_path, check=False)
    assert code != 0 and "SOLVER.AMP.ENABLED needs a CUDA GPU" in out
