# -*- coding: utf-8 -*-
"""Bad inputs get a clear error or sane handling: checkpoints (missing, not a checkpoint, a
generator that does not match the config) and images (missing, empty, grayscale / RGBA, 1x1 and
odd sizes, no or degenerate annotations, batches where every proposal is background)."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, get_detection_dataset_dicts
from detectron2.data.datasets import load_coco_json
from detectron2.engine import DefaultPredictor
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from srrcnn import AtomicDetectionCheckpointer, SRGANTrainer
from srrcnn.data import CheckedDatasetMapper, ensure_dataset, register_coco_dataset
from srrcnn.gan_trainer import build_discriminator_optimizer, build_generator_optimizer
from srrcnn.testing import REPO_ROOT, get_model_no_weights, get_tiny_cfg, tiny_inputs

SR_CFG = os.path.join(REPO_ROOT, "configs/quick_schedules/sr_rcnn_instant_test.yaml")
G_PREFIX = "roi_heads.generator."


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(43)


def tiny_cfg(**generator):
    """get_tiny_cfg(sr=True) with MODEL.SRRCNN.GENERATOR overrides, e.g. WIDTH=32."""
    cfg = get_tiny_cfg(sr=True)
    for k, v in generator.items():
        setattr(cfg.MODEL.SRRCNN.GENERATOR, k, v)
    return cfg


def save_model(model, folder, name="model"):
    """Save `model` as detectron2 does; returns the .pth path."""
    DetectionCheckpointer(model, str(folder)).save(name)
    return os.path.join(str(folder), f"{name}.pth")


@pytest.fixture(scope="module")
def sr_checkpoint(tmp_path_factory):
    """(path, state_dict) of a tiny SR-RCNN (generator WIDTH 16, NUM_BLOCKS 2, NORM BN)."""
    model = get_model_no_weights(tiny_cfg())
    path = save_model(model, tmp_path_factory.mktemp("sr_ckpt"))
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def gan_step(model, batch, cfg=None):
    """One SRGANTrainer.run_step on `batch`; returns the logged losses (name -> float)."""
    cfg = cfg or get_tiny_cfg()
    model.train()
    trainer = SRGANTrainer(model, [batch], build_discriminator_optimizer(cfg, model),
                           build_generator_optimizer(cfg, model))
    with EventStorage(0) as storage:
        trainer.storage = storage
        trainer.run_step()
    return {k: v[0] for k, v in storage.latest().items() if k.startswith("loss_")}


def assert_finite_losses(losses):
    assert losses and all(np.isfinite(v) for v in losses.values()), losses


# ---------------------------------------------------------------- 1. MODEL.WEIGHTS: missing file

def test_missing_weights_file_is_file_not_found(tmp_path):
    missing = str(tmp_path / "nope" / "model_final.pth")
    ckpt = AtomicDetectionCheckpointer(nn.Linear(3, 2), str(tmp_path))
    for load in (lambda: ckpt.load(missing),
                 lambda: ckpt.resume_or_load(missing, resume=False),
                 lambda: ckpt.load(missing + "?matching_heuristics=True")):
        with pytest.raises(FileNotFoundError, match="MODEL.WEIGHTS: checkpoint file not found: "
                           + missing.replace(".", r"\.") + "$"):
            load()


def test_url_weights_still_go_through_path_manager(tmp_path):
    """detectron2:// and https:// are not checked as local paths (no download: the path
    manager is stubbed to map them onto a local file)."""
    model = nn.Linear(3, 2)
    local = save_model(model, tmp_path)
    seen = []

    class FakePathManager:
        def get_local_path(self, path):
            seen.append(path)
            return local

    ckpt = AtomicDetectionCheckpointer(nn.Linear(3, 2), str(tmp_path))
    ckpt.path_manager = FakePathManager()
    for url in ("detectron2://ImageNetPretrained/nope.pkl.pth", "https://example.com/m.pth"):
        ckpt.load(url)
    assert seen == ["detectron2://ImageNetPretrained/nope.pkl.pth", "https://example.com/m.pth"]
    assert torch.equal(ckpt.model.weight, model.weight)


def test_resume_tag_naming_missing_file(tmp_path):
    ckpt = AtomicDetectionCheckpointer(nn.Linear(3, 2), str(tmp_path))
    (tmp_path / "last_checkpoint").write_text("model_0000099.pth")
    msg = "last_checkpoint names a checkpoint that does not exist: .*model_0000099.pth"
    with pytest.raises(FileNotFoundError, match=msg):
        ckpt.resume_or_load("", resume=True)


def test_eval_only_missing_weights_names_the_path(tmp_path):
    missing = str(tmp_path / "missing.pth")
    env = dict(os.environ, SRRCNN_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train_net.py"), "--config-file", SR_CFG,
         "--eval-only", "MODEL.WEIGHTS", missing, "OUTPUT_DIR", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    msg = f"FileNotFoundError: MODEL.WEIGHTS: checkpoint file not found: {missing}"
    assert msg in out, out[-3000:]


# ------------------------------------------------------- 2. MODEL.WEIGHTS: not a checkpoint file

def test_wrong_weights_file_names_the_file(tmp_path, sr_checkpoint):
    text = tmp_path / "weights.pth"
    text.write_text("this is a text file, not a checkpoint\n")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(sr_checkpoint[0], "rb").read()[:5000])
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    ckpt = AtomicDetectionCheckpointer(get_model_no_weights(tiny_cfg()), str(tmp_path))
    for bad in (text, truncated, tensor):
        with pytest.raises(RuntimeError, match=f"cannot load checkpoint {bad}: .+"):
            ckpt.load(str(bad))
    ckpt.load(sr_checkpoint[0])  # the checkpointer is still usable after a failed load


# ------------------------------------------------- 3. generator of the checkpoint != the config

@pytest.mark.parametrize("override, key, detail", [
    ({"WIDTH": 32}, "roi_heads.generator.blocks.0.conv1.weight",  # (WIDTH 32: no head conv)
     r"\(16, 16, 3, 3\) in the checkpoint but \(32, 32, 3, 3\) in the model"),
    ({"WIDTH": 24}, "roi_heads.generator.head.0.weight",
     r"\(16, 32, 3, 3\) in the checkpoint but \(24, 32, 3, 3\) in the model"),
    ({"NUM_BLOCKS": 3}, "roi_heads.generator.blocks.2.", "missing from the checkpoint"),
    ({"NUM_BLOCKS": 1}, "roi_heads.generator.blocks.1.", "in the checkpoint but not in the model"),
    ({"NORM": ""}, "roi_heads.generator.", "generator keys"),
])
def test_generator_mismatch_is_a_clear_error(sr_checkpoint, tmp_path, override, key, detail):
    model = get_model_no_weights(tiny_cfg(**override))
    with pytest.raises(ValueError) as e:
        AtomicDetectionCheckpointer(model, str(tmp_path)).load(sr_checkpoint[0])
    msg = str(e.value)
    assert key in msg and "MODEL.SRRCNN.GENERATOR.WIDTH / NUM_BLOCKS / NORM" in msg, msg
    assert re.search(detail, msg), msg


def test_matching_generator_loads(sr_checkpoint, tmp_path):
    model = get_model_no_weights(tiny_cfg())
    AtomicDetectionCheckpointer(model, str(tmp_path)).load(sr_checkpoint[0])
    for k, v in model.state_dict().items():
        assert torch.equal(v, sr_checkpoint[1][k]), k


def test_mask_rcnn_checkpoint_loads_into_sr_rcnn_with_new_generator(tmp_path):
    mask_rcnn = get_model_no_weights(get_tiny_cfg(sr=False))
    path = save_model(mask_rcnn, tmp_path, "mask_rcnn")
    model = get_model_no_weights(tiny_cfg())
    g_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(G_PREFIX)}
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path))
    logged = []
    ckpt._log_incompatible_keys = logged.append
    ckpt.load(path)
    missing = set(logged[0].missing_keys)
    assert set(g_before) - {k for k in g_before if "num_batches_tracked" in k} <= missing
    assert all(k.startswith(G_PREFIX) or "adv_score" in k for k in missing), missing  # D's logit
    for k, v in model.state_dict().items():
        if k in g_before:
            assert torch.equal(v, g_before[k]), k  # the generator keeps its initialisation
        elif k in mask_rcnn.state_dict() and "adv_score" not in k:
            assert torch.equal(v, mask_rcnn.state_dict()[k]), k


# ------------------------------------------------------------------------------------ images

@pytest.fixture
def coco(tmp_path):
    """A writable copy of the tiny generated COCO dataset: (json data, json path, image dir)."""
    json_file, image_root = ensure_dataset(str(tmp_path / "datasets"), "train", 8, 256, 0)
    images = tmp_path / "images"
    shutil.copytree(image_root, images)
    return json.load(open(json_file)), json_file, images


def dataset_dicts(json_file, images):
    return load_coco_json(str(json_file), str(images))


def test_missing_and_empty_image_name_the_path(coco):
    _, json_file, images = coco
    dicts = dataset_dicts(json_file, images)
    mapper = CheckedDatasetMapper(get_tiny_cfg(), True)
    missing, empty = dicts[0]["file_name"], dicts[1]["file_name"]
    os.remove(missing)
    open(empty, "wb").close()  # 0 bytes
    for d, path in ((dicts[0], missing), (dicts[1], empty)):
        with pytest.raises(RuntimeError, match=f"Cannot read image {path}: "):
            mapper(d)


def test_grayscale_and_rgba_images_train(coco):
    _, json_file, images = coco
    dicts = dataset_dicts(json_file, images)[:2]
    for d, mode in zip(dicts, ("L", "RGBA")):
        Image.open(d["file_name"]).convert(mode).save(d["file_name"])
        assert Image.open(d["file_name"]).mode == mode
    cfg = get_tiny_cfg()
    for is_train in (True, False):
        mapped = [CheckedDatasetMapper(cfg, is_train)(d) for d in dicts]
        assert [tuple(m["image"].shape[:1]) for m in mapped] == [(3,), (3,)]
    batch = [CheckedDatasetMapper(cfg, True)(d) for d in dicts]
    assert all(len(m["instances"]) > 0 for m in batch)
    assert_finite_losses(gan_step(get_model_no_weights(cfg), batch, cfg))


# -------------------------------------------------------------------- 1x1 and odd-sized images

@pytest.mark.parametrize("mode", ["sr", "hr"])
def test_predictor_on_1x1_and_odd_sized_images(sr_checkpoint, mode):
    cfg = get_tiny_cfg()
    cfg.MODEL.WEIGHTS = sr_checkpoint[0]
    cfg.MODEL.SRRCNN.TEST_MODE = mode
    predictor = DefaultPredictor(cfg)
    assert predictor.model.roi_heads.test_mode == mode
    rng = np.random.RandomState(0)
    for h, w in ((1, 1), (37, 53), (53, 37)):
        image = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        inst = predictor(image)["instances"]
        assert isinstance(inst, Instances) and inst.image_size == (h, w)
        if len(inst):
            assert inst.pred_masks.shape[1:] == (h, w)


def test_training_step_on_odd_sized_images():
    cfg = get_tiny_cfg()
    batch = tiny_inputs(2, size=(37, 53), num_boxes=2)
    assert_finite_losses(gan_step(get_model_no_weights(cfg), batch, cfg))


# ------------------------------------------------- no annotations, degenerate (zero-area) boxes

def test_no_annotations_and_degenerate_box(coco, tmp_path):
    data, _, images = coco
    ids = [im["id"] for im in data["images"]]
    empty_id, mixed_id, degenerate_id = ids[:3]
    anns = [a for a in data["annotations"] if a["image_id"] not in (empty_id, degenerate_id)]
    num_valid = sum(a["image_id"] == mixed_id for a in anns)
    next_id = max(a["id"] for a in data["annotations"]) + 1
    for i, image_id in enumerate((mixed_id, degenerate_id)):  # [10, 10, 0, 5] XYWH: zero area
        anns.append({"id": next_id + i, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                     "bbox": [10, 10, 0, 5], "area": 0,
                     "segmentation": [[10, 10, 10, 15, 10, 12]]})
    data["annotations"] = anns
    json_file = tmp_path / "bad.json"
    json_file.write_text(json.dumps(data))
    name = f"bad_inputs_{tmp_path.name}"
    register_coco_dataset(name, str(json_file), str(images))
    try:
        kept = get_detection_dataset_dicts([name], filter_empty=True)
        by_id = {d["image_id"]: d for d in DatasetCatalog.get(name)}
    finally:
        DatasetCatalog.remove(name)
    assert empty_id not in {d["image_id"] for d in kept}  # filtered by default
    assert degenerate_id in {d["image_id"] for d in kept}  # has an (invalid) annotation

    cfg = get_tiny_cfg()
    cfg.INPUT.RANDOM_FLIP = "none"
    mapper = CheckedDatasetMapper(cfg, True)
    batch = [mapper(by_id[i]) for i in (empty_id, mixed_id, degenerate_id)]
    assert [len(m["instances"]) for m in batch] == [0, num_valid, 0]  # degenerate box dropped
    assert (batch[1]["instances"].gt_boxes.area() > 0).all()
    assert_finite_losses(gan_step(get_model_no_weights(cfg), batch, cfg))


# --------------------------------------------------------------- every proposal is background

def test_all_proposals_background():
    cfg = get_tiny_cfg()
    cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = False
    model = get_model_no_weights(cfg)
    batch = tiny_inputs(2, size=(64, 64), num_boxes=1)
    for x in batch:  # one 2x2 object in the corner: no proposal reaches IoU 0.5 with it
        x["instances"].gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0]]))
        x["instances"].gt_masks = x["instances"].gt_masks[[0]]
        x["instances"].gt_masks.polygons = [[np.array([0, 0, 2, 0, 2, 2, 0, 2.0])]]

    sampled = []
    label = model.roi_heads.label_and_sample_proposals

    def spy(proposals, targets):
        out = label(proposals, targets)
        sampled.extend(p.gt_classes for p in out)
        return out

    model.roi_heads.label_and_sample_proposals = spy
    losses = gan_step(model, batch, cfg)
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    assert sampled and all(len(c) > 0 and (c == num_classes).all() for c in sampled)
    assert_finite_losses(losses)
    assert isinstance(losses["loss_G_content"], float)
    g_grads = [p.grad for p in model.roi_heads.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in g_grads)
    assert any(g.abs().sum() > 0 for g in g_grads)
