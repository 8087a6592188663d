# -*- coding: utf-8 -*-
"""Tests of srrcnn/gan_trainer.py: parameter groups, gradient routing, the two-optimizer step
(SPEC §3-§4, §8)."""

import copy
import unittest

import torch

from detectron2.engine import hooks
from detectron2.solver import build_lr_scheduler
from detectron2.utils.events import EventStorage

from srrcnn.gan_trainer import (
    GeneratorLRScheduler,
    SRGANTrainer,
    build_discriminator_optimizer,
    build_generator_lr_scheduler,
    build_generator_optimizer,
    split_generator_parameters,
)
from srrcnn.roi_heads import G_LOSS_PREFIX
from srrcnn.testing import get_model_no_weights, get_tiny_cfg, tiny_inputs

# the D terms computed on G(RoI_LR): they reach the backbone only through G's input
SR_D_TERMS = ("loss_cls_sr", "loss_box_reg_sr")



def _ids(params):
    return {id(p) for p in params}


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(params, before):
    return [not torch.equal(p.detach(), b) for p, b in zip(params, before)]


def _split_objectives(loss_dict):
    g = sum(v for k, v in loss_dict.items() if k.startswith(G_LOSS_PREFIX))
    d = sum(v for k, v in loss_dict.items() if not k.startswith(G_LOSS_PREFIX))
    return g, d


class _GanTest(unittest.TestCase):
    GENERATOR = "SRResNetGenerator"  # MODEL.SRRCNN.GENERATOR.NAME

    def setUp(self):
        torch.manual_seed(42)
        self.cfg = get_tiny_cfg()
        self.cfg.MODEL.SRRCNN.GENERATOR.NAME = self.GENERATOR
        self.model = get_model_no_weights(self.cfg)
        self.model.train()
        self.g_params, self.d_params = split_generator_parameters(self.model)

    def _trainer(self, batches, cfg=None):
        cfg = cfg or self.cfg
        return SRGANTrainer(
            self.model,
            batches,
            build_discriminator_optimizer(cfg, self.model),
            build_generator_optimizer(cfg, self.model),
        )

    def _state_dict_after_a_step(self):
        """(the batches, a copy of the trainer's state_dict after one step on them)."""
        batches = [tiny_inputs(2)] * 2
        trainer = self._trainer(batches)
        self._run_steps(trainer, 1)
        return batches, copy.deepcopy(trainer.state_dict())

    def _run_steps(self, trainer, n=1):
        with EventStorage(trainer.iter) as storage:
            trainer.storage = storage
            for _ in range(n):
                trainer.run_step()
                storage.step()
                trainer.iter += 1
        return storage

    def _named_d_groups(self):
        """D's modules, each of which must get gradients from D's objective."""
        m = self.model
        return {
            "backbone": m.backbone,
            "rpn": m.proposal_generator,
            "box_head": m.roi_heads.box_head,
            "box_predictor": m.roi_heads.box_predictor,
            "adv_score": m.roi_heads.box_predictor.adv_score,
            "mask_head": m.roi_heads.mask_head,
        }


class TestParameterGroups(_GanTest):
    def test_split(self):
        g_ids, d_ids = _ids(self.g_params), _ids(self.d_params)
        self.assertEqual(len(g_ids), len(self.g_params))
        self.assertFalse(g_ids & d_ids)
        all_ids = {id(p) for p in self.model.parameters() if p.requires_grad}
        self.assertEqual(g_ids | d_ids, all_ids)
        self.assertEqual(g_ids, _ids(self.model.roi_heads.generator.parameters()))
        self.assertTrue(_ids(self.model.roi_heads.box_predictor.adv_score.parameters()) <= d_ids)

        with self.assertRaisesRegex(ValueError, "generator"):
            split_generator_parameters(get_model_no_weights(get_tiny_cfg(sr=False)))

    def test_optimizers(self):
        d_opt = build_discriminator_optimizer(self.cfg, self.model)
        g_opt = build_generator_optimizer(self.cfg, self.model)
        self.assertIsInstance(d_opt, torch.optim.SGD)
        self.assertIsInstance(g_opt, torch.optim.AdamW)
        d_opt_ids = {id(p) for grp in d_opt.param_groups for p in grp["params"]}
        g_opt_ids = {id(p) for grp in g_opt.param_groups for p in grp["params"]}
        self.assertEqual(d_opt_ids, _ids(self.d_params))  # every D parameter, no G parameter
        self.assertEqual(g_opt_ids, _ids(self.g_params))
        self.assertEqual([grp["lr"] for grp in g_opt.param_groups], [1e-4])
        self.assertEqual(
            g_opt.param_groups[0]["weight_decay"], self.cfg.SOLVER.GENERATOR.WEIGHT_DECAY
        )
        # hiding G from build_optimizer does not freeze it
        self.assertTrue(all(p.requires_grad for p in self.model.roi_heads.generator.parameters()))

        # a model without generator gets detectron2's optimizer over everything
        mask_rcnn = get_model_no_weights(get_tiny_cfg(sr=False))
        opt = build_discriminator_optimizer(get_tiny_cfg(sr=False), mask_rcnn)
        self.assertEqual(
            {id(p) for grp in opt.param_groups for p in grp["params"]}, _ids(mask_rcnn.parameters())
        )


class TestGradientRouting(_GanTest):
    """SPEC §3/§8: G's objective trains only w; D's trains theta, through G's input."""

    def _forward(self, inputs=None):
        with EventStorage():
            return self.model(inputs or tiny_inputs(2))

    def test_routing_as_run_step(self):
        loss_dict = self._forward()
        g_total, d_total = _split_objectives(loss_dict)

        # without routing, D's objective WOULD reach G's weights: the check below is meaningful
        leak = torch.autograd.grad(d_total, self.g_params, retain_graph=True, allow_unused=True)
        self.assertTrue(any(x is not None and x.abs().sum() > 0 for x in leak))

        # (a) G's objective -> generator parameters only
        g_total.backward(inputs=self.g_params, retain_graph=True)
        for p in self.g_params:
            self.assertIsNotNone(p.grad)
        self.assertTrue(all(p.grad.abs().sum() > 0 for p in self.g_params))
        for p in self.d_params:
            self.assertIsNone(p.grad)
        g_grads = [p.grad.clone() for p in self.g_params]

        # (b) D's objective -> every other parameter, nothing added to G's
        d_total.backward(inputs=self.d_params)
        for p, before in zip(self.g_params, g_grads):
            self.assertTrue(torch.equal(p.grad, before))
        for name, module in self._named_d_groups().items():
            grads = [p.grad for p in module.parameters()]
            self.assertTrue(all(g is not None for g in grads), name)
            self.assertGreater(sum(float(g.abs().sum()) for g in grads), 0, name)
        # every D parameter is reached (none is silently left out of the graph)
        no_grad = [
            n
            for n, p in self.model.named_parameters()
            if id(p) in _ids(self.d_params) and p.grad is None
        ]
        self.assertEqual(no_grad, [])

    def test_d_reaches_backbone_through_generator_input(self):
        gen_inputs = []
        handle = self.model.roi_heads.generator.register_forward_pre_hook(
            lambda m, args: gen_inputs.append(args[0])
        )
        loss_dict = self._forward()
        handle.remove()
        sr_terms = sum(loss_dict[k] for k in SR_D_TERMS)
        backbone = list(self.model.backbone.parameters())
        # (c) D's SR terms have a non-zero gradient on RoI_LR (G's input) and the backbone
        (g_in,) = torch.autograd.grad(sr_terms, gen_inputs, retain_graph=True)
        self.assertGreater(g_in.abs().sum().item(), 0)
        grads = torch.autograd.grad(sr_terms, backbone, allow_unused=True)
        self.assertGreater(sum(float(g.abs().sum()) for g in grads if g is not None), 0)

        # ... and only through G's input: cut it and the backbone gets nothing from them
        handle = self.model.roi_heads.generator.register_forward_pre_hook(
            lambda m, args: (args[0].detach(),)
        )
        loss_dict = self._forward()
        handle.remove()
        sr_terms = sum(loss_dict[k] for k in SR_D_TERMS)
        grads = torch.autograd.grad(sr_terms, backbone, allow_unused=True)
        self.assertTrue(all(g is None or g.abs().sum() == 0 for g in grads))

        # MODEL.SRRCNN.D_THROUGH_G False makes that cut; G's own objective still trains G
        self.model.roi_heads.d_through_g = False
        loss_dict = self._forward()
        sr_terms = sum(loss_dict[k] for k in SR_D_TERMS)
        grads = torch.autograd.grad(sr_terms, backbone, allow_unused=True, retain_graph=True)
        self.assertTrue(all(g is None or g.abs().sum() == 0 for g in grads))
        g_total = sum(v for k, v in loss_dict.items() if k.startswith(G_LOSS_PREFIX))
        grads = torch.autograd.grad(g_total, self.g_params, allow_unused=True)
        self.assertGreater(sum(float(g.abs().sum()) for g in grads if g is not None), 0)


class TestSRGANTrainer(_GanTest):
    def test_step_changes_both_groups(self):
        trainer = self._trainer([tiny_inputs(2)])
        g0, d0 = _snapshot(self.g_params), _snapshot(self.d_params)
        storage = self._run_steps(trainer)
        self.assertTrue(all(_changed(self.g_params, g0)))
        self.assertGreater(sum(_changed(self.d_params, d0)), 0.9 * len(self.d_params))
        for k in ("G_total_loss", "D_total_loss", "total_loss", "loss_G_content", "loss_D_adv"):
            self.assertIn(k, storage.histories())

    def test_each_optimizer_moves_only_its_group(self):
        inputs = tiny_inputs(2)
        trainer = self._trainer([inputs] * 2)
        # only G steps
        for grp in trainer.optimizer.param_groups:
            grp.update(lr=0.0, momentum=0.0, weight_decay=0.0)
        g0, d0 = _snapshot(self.g_params), _snapshot(self.d_params)
        self._run_steps(trainer)
        self.assertTrue(all(_changed(self.g_params, g0)))
        self.assertFalse(any(_changed(self.d_params, d0)))
        # only D steps
        trainer.optimizer = build_discriminator_optimizer(self.cfg, self.model)
        for grp in trainer.g_optimizer.param_groups:
            grp.update(lr=0.0, weight_decay=0.0)
        g0, d0 = _snapshot(self.g_params), _snapshot(self.d_params)
        self._run_steps(trainer)
        self.assertFalse(any(_changed(self.g_params, g0)))
        self.assertGreater(sum(_changed(self.d_params, d0)), 0.9 * len(self.d_params))

    def test_content_loss_falls(self):
        cfg = self.cfg.clone()
        cfg.SOLVER.GENERATOR.BASE_LR = 1e-3
        n = 15
        trainer = self._trainer([tiny_inputs(1, size=(64, 80))] * n, cfg)
        storage = self._run_steps(trainer, n)
        content = [v for v, _ in storage.history("loss_G_content").values()]
        self.assertEqual(len(content), n)
        self.assertLess(content[-1], content[0])
        self.assertLess(min(content[-3:]), 0.7 * content[0], content)
        for name, hist in storage.histories().items():
            if name.startswith("loss_"):
                for v, _ in hist.values():
                    self.assertTrue(torch.isfinite(torch.tensor(v)), name)

    def test_empty_batch(self):
        trainer = self._trainer([tiny_inputs(2, num_boxes=0)])
        g0 = _snapshot(self.g_params)
        self._run_steps(trainer)
        self.assertTrue(any(_changed(self.g_params, g0)))

    def test_non_finite_loss_raises_before_update(self):
        trainer = self._trainer([tiny_inputs(2)])
        forward = self.model.forward

        def nan_forward(data):
            losses = forward(data)
            losses["loss_G_content"] = losses["loss_G_content"] * float("nan")
            return losses

        self.model.forward = nan_forward
        trainer.iter = 5
        before = _snapshot(list(self.model.parameters()))
        with self.assertRaises(FloatingPointError) as ctx:
            self._run_steps(trainer)
        msg = str(ctx.exception)
        self.assertIn("loss_G_content", msg)
        self.assertIn("iteration 5", msg)
        self.assertFalse(any(_changed(list(self.model.parameters()), before)))
        self.assertTrue(all(p.grad is None for p in self.model.parameters()))  # no backward ran

    def test_state_dict(self):
        batches, sd = self._state_dict_after_a_step()
        self.assertIn("optimizer", sd)
        self.assertIn("g_optimizer", sd)
        self.assertEqual(sd["iteration"], 1)
        self.assertGreater(len(sd["g_optimizer"]["state"]), 0)

        fresh = self._trainer(batches)
        self.assertEqual(len(fresh.g_optimizer.state), 0)
        fresh.load_state_dict(copy.deepcopy(sd))
        self.assertEqual(fresh.iter, 1)
        for key, opt in (("optimizer", fresh.optimizer), ("g_optimizer", fresh.g_optimizer)):
            loaded = opt.state_dict()
            self.assertEqual(loaded["param_groups"], sd[key]["param_groups"], key)
            self.assertEqual(set(loaded["state"]), set(sd[key]["state"]), key)
            for i, state in sd[key]["state"].items():
                for name, value in state.items():
                    torch.testing.assert_close(loaded["state"][i][name], value)
        # the generator's AdamW moments are there
        self.assertIn("exp_avg", next(iter(fresh.g_optimizer.state.values())))


class TestGeneratorWithoutParameters(_GanTest):
    """MODEL.SRRCNN.GENERATOR.NAME "IdentityGenerator": G's objective trains nothing, D's SR
    terms on G's input itself still train D."""

    GENERATOR = "IdentityGenerator"

    def test_no_g_optimizer_and_d_steps(self):
        self.assertEqual(self.g_params, [])
        self.assertIsNone(build_generator_optimizer(self.cfg, self.model))
        trainer = self._trainer([tiny_inputs(2)] * 2)
        d0 = _snapshot(self.d_params)
        storage = self._run_steps(trainer)
        self.assertGreater(sum(_changed(self.d_params, d0)), 0.9 * len(self.d_params))
        for k in ("G_total_loss", "loss_G_content", *SR_D_TERMS):
            self.assertIn(k, storage.histories())

    def test_state_dict_without_g_optimizer(self):
        batches, sd = self._state_dict_after_a_step()
        self.assertIn("optimizer", sd)
        self.assertNotIn("g_optimizer", sd)
        fresh = self._trainer(batches)
        fresh.load_state_dict(sd)
        self.assertEqual(fresh.iter, 1)
        self.assertEqual(fresh.optimizer.state_dict()["param_groups"], sd["optimizer"]["param_groups"])


class TestGeneratorLRScheduler(_GanTest):
    def test_both_schedulers_kept(self):
        self.assertNotEqual(GeneratorLRScheduler.__qualname__, hooks.LRScheduler.__qualname__)
        self.assertTrue(issubclass(GeneratorLRScheduler, hooks.LRScheduler))

        cfg = self.cfg.clone()
        cfg.SOLVER.MAX_ITER = 10
        cfg.SOLVER.WARMUP_ITERS = 4
        cfg.SOLVER.STEPS = (5,)

        def make():
            trainer = self._trainer([tiny_inputs(1, size=(64, 80))] * 2, cfg)
            trainer.register_hooks(
                [
                    hooks.LRScheduler(
                        trainer.optimizer, build_lr_scheduler(cfg, trainer.optimizer)
                    ),
                    GeneratorLRScheduler(
                        trainer.g_optimizer, build_generator_lr_scheduler(cfg, trainer.g_optimizer)
                    ),
                ]
            )
            return trainer

        trainer = make()
        trainer.train(0, 2)
        lr_g = [v for v, _ in trainer.storage.history("lr_G").values()]
        lr_d = [v for v, _ in trainer.storage.history("lr").values()]
        self.assertEqual(len(lr_g), 2)
        # the same schedule shape (warmup) on G's own base LR
        for g, d in zip(lr_g, lr_d):
            self.assertAlmostEqual(g / d, cfg.SOLVER.GENERATOR.BASE_LR / cfg.SOLVER.BASE_LR)
        self.assertLess(lr_g[0], lr_g[1])
        self.assertAlmostEqual(
            trainer.g_optimizer.param_groups[0]["lr"], trainer._hooks[1].scheduler.get_last_lr()[0]
        )

        sd = trainer.state_dict()
        self.assertEqual(set(sd["hooks"]), {"LRScheduler", "GeneratorLRScheduler"})
        self.assertEqual(
            sd["hooks"]["GeneratorLRScheduler"]["base_lrs"], [cfg.SOLVER.GENERATOR.BASE_LR]
        )
        self.assertEqual(sd["hooks"]["LRScheduler"]["last_epoch"], 2)

        resumed = make()
        resumed.load_state_dict(copy.deepcopy(sd))
        self.assertEqual(resumed.iter, 2)
        for h_new, h_old in zip(resumed._hooks, trainer._hooks):
            self.assertEqual(h_new.scheduler.state_dict(), h_old.scheduler.state_dict())


if __name__ == "__main__":
    unittest.main()


def test_generator_gradient_clipping_from_config():
    from srrcnn.testing import get_model_no_weights, get_tiny_cfg

    cfg = get_tiny_cfg(sr=True)
    cfg.SOLVER.GENERATOR.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.GENERATOR.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.GENERATOR.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = get_model_no_weights(cfg)
    g_opt = build_generator_optimizer(cfg, model)
    d_opt = build_discriminator_optimizer(cfg, model)  # D's clipping stays off
    assert "Clip" in type(g_opt).__name__ and "Clip" not in type(d_opt).__name__
    g_params, _ = split_generator_parameters(model)
    for p in g_params:
        p.grad = torch.full_like(p, 10.0)
    g_opt.step()
    for p in g_params:  # per-parameter norm clipping, as detectron2's SOLVER.CLIP_GRADIENTS
        assert float(p.grad.norm()) <= 0.5 + 1e-5


def test_amp_trainer_is_built_from_this_detectron2s_config(monkeypatch):
    """SOLVER.AMP.ENABLED builds SRGANTrainer with a GradScaler and float16 autocast, also with
    a detectron2 whose config has no SOLVER.AMP.PRECISION (this one: the GPU check found it)."""
    import srrcnn.gan_trainer as gan_trainer

    cfg = get_tiny_cfg(sr=True)
    cfg.SOLVER.AMP.ENABLED = True
    model = get_model_no_weights(cfg)
    monkeypatch.setattr(gan_trainer.torch.cuda, "is_available", lambda: True)  # no GPU needed to build
    trainer = gan_trainer.build_step_trainer(cfg, model, iter([]), build_discriminator_optimizer(cfg, model))
    assert isinstance(trainer, SRGANTrainer)
    assert trainer.grad_scaler is not None and trainer.precision == torch.float16
    if "PRECISION" in cfg.SOLVER.AMP:
        cfg.SOLVER.AMP.PRECISION = "bfloat16"
        trainer = gan_trainer.build_step_trainer(cfg, model, iter([]), build_discriminator_optimizer(cfg, model))
        assert trainer.precision == torch.bfloat16
