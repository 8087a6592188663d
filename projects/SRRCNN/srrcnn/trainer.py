# -*- coding: utf-8 -*-
"""The DefaultTrainer of SR-RCNN: two optimizers, exact resume, atomic checkpoints."""
import weakref

from detectron2.data import build_detection_test_loader
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from .checkpoint import AtomicDetectionCheckpointer
from .data import CheckedDatasetMapper
from .evaluation import evaluate_test_modes, report_test_modes
from .gan_trainer import (
    GeneratorLRScheduler,
    SRGANTrainer,
    build_discriminator_optimizer,
    build_generator_lr_scheduler,
    build_step_trainer,
)
from .resume import DataResumeHook, RNGStateHook, build_resumable_train_loader


class SRRCNNTrainer(DefaultTrainer):
    """
    DefaultTrainer that trains SR-RCNN with :class:`SRGANTrainer` (G and D steps every
    iteration, each with its optimizer and LR scheduler) and any other model (Mask R-CNN) as
    detectron2 does. Checkpoints are written atomically and hold what an exact ``--resume``
    needs: both optimizers and schedulers, the RNG states and the position in the data stream.
    Images are read through :class:`CheckedDatasetMapper`. Like DefaultTrainer it has no
    evaluator: subclasses override ``build_evaluator``.
    """

    def __init__(self, cfg):
        # DefaultTrainer.__init__, except that build_step_trainer picks the per-iteration
        # trainer (DefaultTrainer hard-codes SimpleTrainer / AMPTrainer and its DDP wrapping),
        # the data stream can resume mid-way and checkpoints are atomic. (PreciseBN, off in
        # every config, builds its own loader with DefaultTrainer.build_train_loader.)
        TrainerBase.__init__(self)
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        mapper = CheckedDatasetMapper(cfg, True)
        data_loader, self._sampler = build_resumable_train_loader(cfg, mapper)
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicDetectionCheckpointer(self._trainer.model, cfg.OUTPUT_DIR,
                                                        trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """DefaultTrainer's hooks, RNGStateHook and DataResumeHook first, and G's LR scheduler
        right after D's."""
        ret = super().build_hooks()
        ret.insert(0, RNGStateHook())
        if self._sampler is not None:
            images_per_worker = self.cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
            ret.insert(0, DataResumeHook(self._sampler, images_per_worker))
        if isinstance(self._trainer, SRGANTrainer) and self._trainer.g_optimizer is not None:
            g_opt = self._trainer.g_optimizer
            d_sched = next(i for i, h in enumerate(ret) if type(h) is hooks.LRScheduler)
            g_sched = GeneratorLRScheduler(g_opt, build_generator_lr_scheduler(self.cfg, g_opt))
            ret.insert(d_sched + 1, g_sched)
        return ret

    @classmethod
    def build_optimizer(cls, cfg, model):
        """D's SGD optimizer: every parameter but the generator's (G has its own AdamW)."""
        return build_discriminator_optimizer(cfg, model)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = CheckedDatasetMapper(cfg, False)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def test_modes(cls, cfg, model, modes):
        """
        ``cls.test`` once per SR-RCNN test mode (a model without G: once, as "hr"); on the main
        process, verify_results, side-by-side AP tables in the log and
        OUTPUT_DIR/eval_results.json. Returns {mode: results}.
        """
        by_mode = evaluate_test_modes(model, modes, lambda m: cls.test(cfg, m))
        if comm.is_main_process():
            for results in by_mode.values():
                verify_results(cfg, results)
            report_test_modes(cfg, by_mode)
        return by_mode
