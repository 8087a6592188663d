# -*- coding: utf-8 -*-
"""
Multi-process training on the CPU (GLOO) through detectron2's launch(): SR-RCNN's two optimizer
steps keep both parameter groups' gradients averaged; ranks stay identical and match one
process that sees the same global batch.
"""
import os

import pytest
import torch

from detectron2.engine import launch
from detectron2.utils import comm
from detectron2.utils.events import EventStorage

from srrcnn import SRGANTrainer, build_discriminator_optimizer, build_generator_optimizer
from srrcnn.testing import get_model_no_weights, get_tiny_cfg, tiny_inputs

STEPS = 3
GLOBAL_BATCH = 4
# The two runs are the same computation up to float32 summation order (a batch of 4 vs two
# halves whose gradients are averaged): the losses agree to ~1e-8 and the gradients of the
# first step to ~2e-4 (relative, worst tensor). Over 3 steps the worst weight update, a GN
# bias whose gradient is a sum over all positions that nearly cancels, differs by ~1.8e-2
# relative; averaging errors (a missed or doubled group) show up as O(1).
RTOL = 5e-2


def deterministic_cfg():
    """A tiny SR-RCNN whose loss on a batch equals the mean of its losses on two halves:
    no random anchor/RoI subsampling (all are used), no batch norm across RoIs, no mask loss
    (a mean over a data-dependent number of foreground RoIs)."""
    cfg = get_tiny_cfg(sr=True)
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 100000
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 100000
    cfg.MODEL.SRRCNN.GENERATOR.NORM = ""
    return cfg


def train_steps(batches):
    torch.manual_seed(0)  # the same initial model in every process
    torch.set_num_threads(1)
    cfg = deterministic_cfg()
    model = get_model_no_weights(cfg)
    trainer = SRGANTrainer(model, iter(batches), build_discriminator_optimizer(cfg, model),
                           build_generator_optimizer(cfg, model))
    with EventStorage(0) as storage:
        trainer.storage = storage
        for trainer.iter in range(STEPS):
            trainer.run_step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(out_dir):
    rank, world = comm.get_rank(), comm.get_world_size()
    per_rank = GLOBAL_BATCH // world
    data = tiny_inputs(GLOBAL_BATCH, num_boxes=3, seed=1)
    mine = data[rank * per_rank:(rank + 1) * per_rank]
    state = train_steps([mine] * STEPS)
    torch.save(state, os.path.join(out_dir, f"rank{rank}.pth"))


@pytest.fixture(scope="module")
def ddp_states(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    os.environ["OMP_NUM_THREADS"] = "1"
    launch(_worker, 2, dist_url="auto", args=(str(out),))
    return [torch.load(out / f"rank{r}.pth", weights_only=True) for r in range(2)]


def test_ranks_end_identical(ddp_states):
    a, b = ddp_states
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_processes_match_one_on_the_global_batch(ddp_states):
    single = train_steps([tiny_inputs(GLOBAL_BATCH, num_boxes=3, seed=1)] * STEPS)
    initial = get_model_no_weights_seeded()
    worst, moved = 0.0, 0
    for k, v in single.items():
        if not v.is_floating_point() or torch.equal(v, initial[k]):
            continue
        moved += 1
        step_single, step_ddp = v - initial[k], ddp_states[0][k] - initial[k]
        rel = float((step_ddp - step_single).norm() / step_single.norm())
        if rel > worst:
            worst, worst_key = rel, k
    assert moved > 100  # most weight tensors were trained, in both parameter groups
    assert worst < RTOL, f"largest relative difference of a weight update: {worst:.2e} ({worst_key})"


def get_model_no_weights_seeded():
    torch.manual_seed(0)
    return get_model_no_weights(deterministic_cfg()).state_dict()
