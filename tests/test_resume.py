# -*- coding: utf-8 -*-
"""Exact resume: N iterations straight == N/2, a kill, then --resume to N (SR-RCNN, both optimizers)."""
import os
import sys

import pytest
import torch

from detectron2.config import get_cfg
from detectron2.engine import HookBase
from detectron2.utils.env import seed_all_rng

from srrcnn import add_srrcnn_config
from srrcnn.testing import CONFIG_DIR, REPO_ROOT

sys.path.insert(0, REPO_ROOT)
from train_net import Trainer  # noqa: E402

N = 6


class Killed(Exception):
    pass


class KillAfter(HookBase):
    """Stands for a process killed right after the checkpoint of iteration `it` was written."""

    def __init__(self, it):
        self.it = it

    def after_step(self):
        if self.trainer.iter == self.it:
            raise Killed()


def make_cfg(out_dir, opts=()):
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIG_DIR, "quick_schedules/sr_rcnn_instant_test.yaml"))
    cfg.merge_from_list([
        "OUTPUT_DIR", str(out_dir), "SOLVER.MAX_ITER", N, "SOLVER.STEPS", (N // 2 + 1,),
        "SOLVER.WARMUP_ITERS", 2, "SOLVER.CHECKPOINT_PERIOD", N // 2, "TEST.EVAL_PERIOD", 0,
        "DATASETS.TEST", (), "INPUT.RANDOM_FLIP", "none",  # worker-side randomness: see resume.py
        "DATALOADER.NUM_WORKERS", 0, "SEED", 7, *opts,
    ])
    return cfg


def train(out_dir, kill_at=None, resume=False, opts=()):
    cfg = make_cfg(out_dir, opts)
    seed_all_rng(cfg.SEED)
    trainer = Trainer(cfg)
    if kill_at is not None:
        trainer.register_hooks([KillAfter(kill_at)])
    trainer.resume_or_load(resume=resume)
    try:
        trainer.train()
    except Killed:
        pass
    return trainer


def test_resume_is_exact(tmp_path):
    straight = train(tmp_path / "straight")

    first = train(tmp_path / "resumed", kill_at=N // 2 - 1)
    assert first.iter == N // 2 - 1
    assert (tmp_path / "resumed" / f"model_{N // 2 - 1:07d}.pth").exists()
    resumed = train(tmp_path / "resumed", resume=True)
    assert resumed.start_iter == N // 2 and resumed.iter == straight.iter == N

    # weights: bitwise equal (CPU, one thread, same data stream and RNG states)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # both optimizers, both LR schedules
    for opt in ("optimizer", "g_optimizer"):
        sa, sb = getattr(straight._trainer, opt).state_dict(), getattr(resumed._trainer, opt).state_dict()
        assert sa["param_groups"] == sb["param_groups"], opt
        for pid in sa["state"]:
            for key, v in sa["state"][pid].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][pid][key])), (opt, pid, key)
    assert straight.storage.history("lr").values()[-1] == resumed.storage.history("lr").values()[-1]
    assert straight.storage.history("lr_G").values()[-1] == resumed.storage.history("lr_G").values()[-1]


def test_checkpoint_holds_both_optimizers_and_schedulers(tmp_path):
    train(tmp_path)
    ckpt = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert {"model", "trainer", "iteration"} <= set(ckpt)
    assert {"optimizer", "g_optimizer", "iteration"} <= set(ckpt["trainer"]["_trainer"])
    hooks = ckpt["trainer"]["hooks"]
    assert {"LRScheduler", "GeneratorLRScheduler", "RNGStateHook"} <= set(hooks)
    assert hooks["LRScheduler"]["base_lrs"] != hooks["GeneratorLRScheduler"]["base_lrs"]


def test_generator_without_parameters_trains_and_resumes(tmp_path):
    """GENERATOR.NAME IdentityGenerator (a control): no G optimizer, no G schedule, exact resume."""
    opts = ("MODEL.SRRCNN.GENERATOR.NAME", "IdentityGenerator")
    straight = train(tmp_path / "straight", opts=opts)
    assert straight._trainer.g_optimizer is None
    train(tmp_path / "resumed", kill_at=N // 2 - 1, opts=opts)
    resumed = train(tmp_path / "resumed", resume=True, opts=opts)
    assert resumed.start_iter == N // 2 and resumed.iter == N
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ckpt = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=True)
    assert "g_optimizer" not in ckpt["trainer"]["_trainer"]
    assert "GeneratorLRScheduler" not in ckpt["trainer"]["hooks"]


class NaNAfter(HookBase):
    """From iteration `it` on, the model's content loss is NaN (a diverging GAN, SPEC §3)."""

    def __init__(self, it):
        self.it = it

    def before_step(self):
        if self.trainer.iter == self.it:
            model = self.trainer.model
            forward = model.forward

            def nan_forward(batched_inputs):
                losses = forward(batched_inputs)
                losses["loss_G_content"] = losses["loss_G_content"] * float("nan")
                return losses

            model.forward = nan_forward


def test_non_finite_loss_stops_with_its_name_and_keeps_last_checkpoint(tmp_path):
    cfg = make_cfg(tmp_path)
    seed_all_rng(cfg.SEED)
    trainer = Trainer(cfg)
    trainer.register_hooks([NaNAfter(N // 2 + 1)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(FloatingPointError, match=rf"iteration {N // 2 + 1}.*loss_G_content"):
        trainer.train()
    # the checkpoint of iteration N/2 - 1 is the last one, complete and loadable
    last = open(tmp_path / "last_checkpoint").read()
    assert last == f"model_{N // 2 - 1:07d}.pth"
    ckpt = torch.load(tmp_path / last, weights_only=True)
    assert ckpt["iteration"] == N // 2 - 1
    assert not (tmp_path / "model_final.pth").exists()
