# -*- coding: utf-8 -*-
"""SR-RCNN: super-resolved RoI features for small objects, as a detectron2 project.

Importing this package registers the meta-architecture, the ROI heads, the generator and the
embedded datasets in detectron2's registries and catalogs. SlicedPredictor: sliced inference on
large images for any detectron2 R-CNN.
"""
from .checkpoint import AtomicDetectionCheckpointer
from .config import add_srrcnn_config
from .fast_rcnn import SRFastRCNNOutputLayers
from .gan_trainer import (
    GeneratorLRScheduler,
    SRGANTrainer,
    build_discriminator_optimizer,
    build_generator_lr_scheduler,
    build_generator_optimizer,
    build_step_trainer,
    get_generator,
    split_generator_parameters,
)
from .generator import SRRCNN_GENERATOR_REGISTRY, SRResNetGenerator, build_generator
from .meta_arch import SRRCNN
from .resume import DataResumeHook, ResumableTrainingSampler, RNGStateHook, build_resumable_train_loader
from .roi_heads import SRROIHeads
from .sliced import SlicedPredictor, slice_grid, sliced_inference
from .trainer import SRRCNNTrainer

from . import data  # noqa: F401  (registers the embedded datasets; generates nothing)
