# -*- coding: utf-8 -*-
"""
What an exact ``--resume`` needs beyond detectron2's checkpoint: the position in the data
stream and the random number generators' states.
"""
import itertools
import random

import numpy as np
import torch

from detectron2.data.samplers import TrainingSampler
from detectron2.engine import HookBase
from detectron2.utils import comm


class ResumableTrainingSampler(TrainingSampler):
    """
    :class:`TrainingSampler` that can start part-way into its (seeded, infinite) index stream,
    so that a resumed run sees the images the uninterrupted run would have seen. Skipping
    costs nothing: only indices are generated, no image is read.
    """

    def __init__(self, size: int, shuffle: bool = True, seed=None):
        super().__init__(size, shuffle, seed)
        self.start = 0  # indices of this worker's stream already consumed

    def __iter__(self):
        # TrainingSampler yields stream[rank::world]; skip `start` of those
        first = self._rank + self.start * self._world_size
        yield from itertools.islice(self._infinite_indices(), first, None, self._world_size)


class DataResumeHook(HookBase):
    """
    Before training (the data loader's iterator is created lazily, at the first step), move
    the sampler to ``start_iter x images per worker``. Exact when every batch takes its
    images in stream order: ``DATALOADER.NUM_WORKERS`` <= 1 or the resume iteration a
    multiple of it, and one aspect-ratio group (or ``ASPECT_RATIO_GROUPING`` False).
    """

    def __init__(self, sampler: ResumableTrainingSampler, images_per_worker: int):
        self._sampler = sampler
        self._images_per_worker = images_per_worker

    def before_train(self):
        self._sampler.start = self.trainer.iter * self._images_per_worker


class RNGStateHook(HookBase):
    """
    Puts the torch, numpy and python RNG states of this process into every checkpoint (as a
    hook state, see TrainerBase.state_dict) and restores them on resume, so that RoI sampling
    continues as in an uninterrupted run. Data-loader worker processes draw their own seeds:
    random augmentation after a resume is a different draw.

    The data loader of :func:`build_resumable_train_loader` draws its worker seeds from a
    generator of its own, not from torch's global one (which creating it would advance).
    """

    def state_dict(self):
        # plain tensors / tuples only: checkpoints are read with torch.load(weights_only=True)
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict):
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def build_resumable_train_loader(cfg, mapper):
    """
    detectron2's ``build_detection_train_loader(cfg, mapper)``, with a
    :class:`ResumableTrainingSampler` where it would use a TrainingSampler.

    Returns:
        (data_loader, sampler): sampler is None when another sampler is configured
        (resuming then restarts that sampler's stream, as detectron2 does).
    """
    from detectron2.data import build_detection_train_loader

    kwargs = build_detection_train_loader.from_config(cfg, mapper=mapper)
    sampler = kwargs.get("sampler")
    if type(sampler) is TrainingSampler:  # noqa: E721 (subclasses keep their own logic)
        sampler = ResumableTrainingSampler(len(kwargs["dataset"]), seed=sampler._seed)
        kwargs["sampler"] = sampler
        # the DataLoader's own generator (worker seeds), so that creating its iterator leaves
        # torch's global RNG, which RNGStateHook restores on resume, untouched
        kwargs["seed"] = sampler._seed + comm.get_rank()
    else:
        sampler = None
    return build_detection_train_loader(**kwargs), sampler
