# -*- coding: utf-8 -*-
"""SR-RCNN's own random draws stay off the global stream: with the SR terms off in D's
objective, SR-RCNN's plain detector trains as Mask R-CNN from the same seed, bit for bit."""
import pytest
import torch

from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng

from srrcnn.rng import G_ROIS, sr_random_stream
from srrcnn.testing import get_tiny_cfg


def test_stream_leaves_the_global_state_and_depends_on_kind_and_step():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    with sr_random_stream(G_ROIS, step=5):
        a = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)
    with sr_random_stream(G_ROIS, step=5):
        assert torch.equal(torch.rand(4), a)  # an exact resume draws the same
    with sr_random_stream(G_ROIS, step=6):
        assert not torch.equal(torch.rand(4), a)
    with sr_random_stream(G_ROIS + 1, step=5):
        assert not torch.equal(torch.rand(4), a)


def addon_cfg(pair):
    """SR-RCNN whose D objective is Mask R-CNN's: no SR task or adversarial term in it."""
    cfg = get_tiny_cfg()
    cfg.MODEL.SRRCNN.PAIR = pair
    cfg.MODEL.SRRCNN.X2.CROP_SIZE, cfg.MODEL.SRRCNN.X2.MAX_GT_SIZE = 32, 64.0
    cfg.MODEL.SRRCNN.D_TASK_WEIGHT, cfg.MODEL.SRRCNN.D_SR_TASK_WEIGHT = 1.0, 0.0  # HR terms as Mask R-CNN
    cfg.MODEL.SRRCNN.ADV_WEIGHT = 0.0
    cfg.MODEL.SRRCNN.D_THROUGH_G = False
    cfg.MODEL.SRRCNN.G_ROIS_PER_IMAGE = 8
    return cfg


def shared_items(sr_model, base_model):
    base = base_model.state_dict()
    sr = sr_model.state_dict()
    assert set(base) <= set(sr)
    return [(k, sr[k], base[k]) for k in base]


def test_shared_modules_start_as_mask_rcnns():
    seed_all_rng(7)
    sr = build_model(addon_cfg("full_to_double"))
    seed_all_rng(7)
    base = build_model(get_tiny_cfg(sr=False))
    for name, a, b in shared_items(sr, base):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("pair", ["half_to_full", "full_to_double"])
def test_addon_without_sr_terms_trains_as_mask_rcnn(pair, tmp_path):
    """3 iterations of each trainer (G's and D's steps for SR-RCNN) from the same seed: every
    shared weight ends equal, so G's effect at test is SR-RCNN's paired gain over Mask R-CNN."""
    from srrcnn.trainer import SRRCNNTrainer

    def train(cfg, name):
        cfg.DATASETS.TRAIN = ("srrcnn_shapes_tiny_train",)
        cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.SOLVER.WARMUP_ITERS = 2, 3, 0
        cfg.SOLVER.CHECKPOINT_PERIOD, cfg.TEST.EVAL_PERIOD = 100, 0
        cfg.DATALOADER.NUM_WORKERS = 0
        cfg.OUTPUT_DIR = str(tmp_path / name)
        seed_all_rng(11)
        trainer = SRRCNNTrainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        return trainer.model

    sr = train(addon_cfg(pair), "sr")
    base = train(get_tiny_cfg(sr=False), "base")
    moved = 0
    for name, a, b in shared_items(sr, base):
        assert torch.equal(a, b), name
    for (name, a), b in zip(sr.named_parameters(), build_model(get_tiny_cfg(sr=False)).parameters()):
        moved += not torch.equal(a, b)
    assert moved  # training did change them
