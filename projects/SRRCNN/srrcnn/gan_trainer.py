# -*- coding: utf-8 -*-
"""
Training of SR-RCNN: one forward pass, then a G step (AdamW) and a D step (SGD) in every
iteration (SPEC §4), with the gradient routing of SPEC §3 made explicit.
"""
import logging
import time
from contextlib import contextmanager, nullcontext
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.autograd.profiler import record_function

from detectron2.engine import SimpleTrainer, hooks
from detectron2.solver import build_lr_scheduler, build_optimizer
from detectron2.solver.build import maybe_add_gradient_clipping
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from .losses import G_LOSS_PREFIX

logger = logging.getLogger(__name__)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def get_generator(model: nn.Module):
    """The generator of an SR-RCNN model, or None for a model without one (e.g. Mask R-CNN)."""
    return getattr(getattr(_unwrap(model), "roi_heads", None), "generator", None)


def split_generator_parameters(model: nn.Module) -> Tuple[List[nn.Parameter], List[nn.Parameter]]:
    """
    The two parameter groups of SR-RCNN: (G's parameters w, all other trainable parameters
    theta: backbone, RPN, box head, predictor incl. the real/fake logit, mask head).
    """
    generator = get_generator(model)
    if generator is None:
        raise ValueError("the model has no generator (roi_heads.generator): not an SR-RCNN model")
    g_ids = {id(p) for p in generator.parameters()}
    g = [p for p in generator.parameters() if p.requires_grad]
    d = [p for p in _unwrap(model).parameters() if p.requires_grad and id(p) not in g_ids]
    return g, d


@contextmanager
def _frozen(params):
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def build_discriminator_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """
    detectron2's SGD optimizer (SOLVER.*) over every parameter but the generator's.
    Without a generator it is exactly detectron2's ``build_optimizer``.
    """
    generator = get_generator(model)
    if generator is None:
        return build_optimizer(cfg, model)
    # build_optimizer skips parameters that do not require grad: hide G from it
    with _frozen(list(generator.parameters())):
        return build_optimizer(cfg, model)


def build_generator_optimizer(cfg, model: nn.Module) -> Optional[torch.optim.Optimizer]:
    """AdamW over the generator's parameters, SOLVER.GENERATOR.* (SPEC §4), with gradient
    clipping when SOLVER.GENERATOR.CLIP_GRADIENTS.ENABLED; None for a generator without
    trainable parameters (e.g. ``IdentityGenerator``)."""
    g_params, _ = split_generator_parameters(model)
    if not g_params:
        return None
    s = cfg.SOLVER.GENERATOR
    optimizer = torch.optim.AdamW(g_params, lr=s.BASE_LR, betas=tuple(s.BETAS),
                                  weight_decay=s.WEIGHT_DECAY)
    # detectron2's clipping wrapper reads SOLVER.CLIP_GRADIENTS: hand it G's settings
    g_cfg = cfg.clone()
    g_cfg.defrost()
    g_cfg.SOLVER.CLIP_GRADIENTS = s.CLIP_GRADIENTS
    return maybe_add_gradient_clipping(g_cfg, optimizer)


def build_generator_lr_scheduler(cfg, optimizer):
    """G's own scheduler, with the shape of D's (warmup, steps) on G's base LR."""
    return build_lr_scheduler(cfg, optimizer)


class GeneratorLRScheduler(hooks.LRScheduler):
    """
    LRScheduler hook for G's optimizer. A class of its own so that TrainerBase.state_dict,
    which keeps one state per hook class name, stores both schedulers; logs ``lr_G``.
    """

    def after_step(self):
        lr = self._optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr_G", lr, smoothing_hint=False)
        self.scheduler.step()


def _allreduce_grads(params: List[nn.Parameter]) -> None:
    """Average .grad over all workers, in one flat buffer (parameters without grad: zeros)."""
    world = comm.get_world_size()
    if world == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


class SRGANTrainer(SimpleTrainer):
    """
    SimpleTrainer with two optimizers, as SR-RCNN trains (SPEC §3-§4): every iteration runs
    the model forward once, then

    * G's objective (the ``loss_G_*`` terms) is back-propagated into G's parameters only, and
    * D's objective (all other terms) into every other parameter. It flows through G as a
      function (into RoI_LR and the backbone) but leaves G's weights untouched,

    and both optimizers step. Both ``backward`` calls name their parameters (``inputs=``), so
    neither group's gradient leaks into the other. With several workers the model is not
    wrapped in DistributedDataParallel (whose reducer expects one backward per forward):
    gradients are averaged here, after both backward passes.
    """

    def __init__(self, model, data_loader, optimizer, g_optimizer, *, grad_scaler=None,
                 precision: torch.dtype = torch.float16, **kwargs):
        """
        Args:
            model, data_loader, kwargs: as for :class:`SimpleTrainer`.
            optimizer: D's optimizer (everything but G).
            g_optimizer: G's optimizer, or None for a generator without trainable parameters
                (its objective is then computed, logged, and trains nothing).
            grad_scaler: a ``torch.amp.GradScaler`` for mixed precision on CUDA (one scaler
                shared by both optimizers), or None for full precision.
            precision: autocast dtype when ``grad_scaler`` is given.
        """
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.g_params, self.d_params = split_generator_parameters(model)
        self.grad_scaler = grad_scaler
        self.precision = precision
        _broadcast_parameters(model)  # every worker starts from rank 0's weights

    def run_step(self):
        assert self.model.training, "[SRGANTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        amp = self.grad_scaler is not None
        with torch.autocast("cuda", dtype=self.precision) if amp else nullcontext():
            loss_dict = self.model(data)
        self._check_finite(loss_dict)
        g_total = sum(v for k, v in loss_dict.items() if k.startswith(G_LOSS_PREFIX))
        d_total = sum(v for k, v in loss_dict.items() if not k.startswith(G_LOSS_PREFIX))
        if amp:
            g_total, d_total = self.grad_scaler.scale(g_total), self.grad_scaler.scale(d_total)

        for o in (self.g_optimizer, self.optimizer):
            if o is not None:
                o.zero_grad()
        if self.g_params and g_total.requires_grad:
            # G's objective -> G's weights only; the graph is kept for D's backward
            with record_function("srrcnn.backward_G"):
                g_total.backward(inputs=self.g_params, retain_graph=True)
        # D's objective -> all other weights (through G's input too, not into G's weights)
        with record_function("srrcnn.backward_D"):
            d_total.backward(inputs=self.d_params)
        _allreduce_grads(self.g_params)
        _allreduce_grads(self.d_params)
        self.after_backward()

        self._write_metrics(loss_dict, data_time)
        optimizers = [o for o in (self.g_optimizer, self.optimizer) if o is not None]
        if not amp:
            for o in optimizers:
                o.step()
        else:  # one scaler, two optimizers: step each (skipped on inf/NaN grads), update once
            for o in optimizers:
                self.grad_scaler.step(o)
            self.grad_scaler.update()

    def _check_finite(self, loss_dict: Dict[str, torch.Tensor]) -> None:
        """
        Raise FloatingPointError naming the non-finite terms and the iteration, before any
        backward pass or optimizer step. With several workers all of them raise together
        (a worker that raised alone would leave the others waiting in all_reduce).
        """
        values = torch.stack([v.detach().float() for v in loss_dict.values()])
        finite = torch.isfinite(values).all().to(torch.float32)
        if comm.get_world_size() > 1:
            flag = finite.clone().to("cuda" if values.is_cuda else "cpu")
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
            finite = flag
        if bool(finite):
            return
        bad = {k: float(v.detach()) for k, v in loss_dict.items() if not torch.isfinite(v).all()}
        where = f"on rank {comm.get_rank()}: {bad}" if bad else "on another rank"
        raise FloatingPointError(
            f"Non-finite SR-RCNN loss at iteration {self.iter} {where}; no optimizer step was "
            "taken with it. All terms: "
            + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in loss_dict.items())
        )

    def _write_metrics(self, loss_dict, data_time, prefix="", iter=None):
        super()._write_metrics(loss_dict, data_time, prefix, iter)
        if comm.is_main_process():
            scalars = {k: float(v.detach()) for k, v in loss_dict.items()}
            g = sum(v for k, v in scalars.items() if k.startswith(G_LOSS_PREFIX))
            d = sum(v for k, v in scalars.items() if not k.startswith(G_LOSS_PREFIX))
            get_event_storage().put_scalars(G_total_loss=g, D_total_loss=d)

    def state_dict(self):
        ret = super().state_dict()
        if self.g_optimizer is not None:
            ret["g_optimizer"] = self.g_optimizer.state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.g_optimizer is not None:
            self.g_optimizer.load_state_dict(state_dict["g_optimizer"])
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])


def _broadcast_parameters(model: nn.Module) -> None:
    """Give every worker rank 0's initial parameters and buffers (what DDP does at wrap time)."""
    if comm.get_world_size() == 1:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        torch.distributed.broadcast(t.data, src=0)


def build_step_trainer(cfg, model: nn.Module, data_loader, optimizer):
    """
    The trainer that runs one iteration, for DefaultTrainer's ``_trainer``:
    :class:`SRGANTrainer` for a model with a generator, else detectron2's SimpleTrainer
    (AMPTrainer with SOLVER.AMP.ENABLED), DDP-wrapped when there are several workers. On the
    CPU (GLOO) DDP gets ``device_ids=None``; detectron2's ``create_ddp_model`` would pass the
    local rank, which only works on a GPU.
    """
    from detectron2.engine import AMPTrainer
    from detectron2.engine.defaults import create_ddp_model

    if cfg.SOLVER.AMP.ENABLED and not torch.cuda.is_available():
        raise RuntimeError("SOLVER.AMP.ENABLED needs a CUDA GPU; set SOLVER.AMP.ENABLED False "
                           "to train on the CPU")
    if get_generator(model) is not None:
        amp = {}
        if cfg.SOLVER.AMP.ENABLED:
            amp = {"grad_scaler": torch.amp.GradScaler("cuda"),
                   # SOLVER.AMP.PRECISION is only in newer detectron2 configs: float16 otherwise
                   "precision": getattr(torch, cfg.SOLVER.AMP.get("PRECISION", "float16"))}
        return SRGANTrainer(model, data_loader, optimizer, build_generator_optimizer(cfg, model), **amp)
    ddp_kwargs = {} if model.device.type == "cuda" else {"device_ids": None}
    model = create_ddp_model(model, broadcast_buffers=False, **ddp_kwargs)
    return (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)
