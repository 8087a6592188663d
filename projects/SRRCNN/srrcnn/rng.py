# -*- coding: utf-8 -*-
"""
SR-RCNN's own random draws, kept off torch's global random stream.

Mask R-CNN and SR-RCNN built and trained from the same seed then draw the same numbers for
every part they share: the same initial weights of backbone, RPN, box and mask heads, the same
anchor and RoI samples in every iteration. SR-RCNN's own parts (G's and the real/fake output's
initial weights, G's RoI sample, the 2x crop windows) draw from streams of their own, seeded
from the global seed and, in training, the iteration. With the SR terms off in D's objective
(the add-on configs without the adversarial term), the plain detector then trains as Mask
R-CNN does from the same seed (``tests/test_rng.py``), so that a paired difference of the two
measures what G adds, not seed noise (issue 12: "every shared part gets the same initial
weights").
"""
from contextlib import contextmanager

import torch

from detectron2.utils.events import get_event_storage

# one stream per kind of draw (the key's high part), so that no two of them coincide
G_INIT, ADV_INIT, G_ROIS, X2_CROPS = 1, 2, 3, 4
_STREAMS = 8


@contextmanager
def sr_random_stream(kind: int, step: int = 0):
    """
    Run the body with torch's random state (CPU and CUDA) seeded from the global seed, `kind`
    and `step`, and restore the global state after it: what the body draws does not shift
    any later draw of the global stream.

    Args:
        kind: which of SR-RCNN's draws (G_INIT, ADV_INIT, G_ROIS, X2_CROPS).
        step: e.g. the training iteration, so that each iteration draws anew and an exact
            resume draws the same.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed((torch.initial_seed() * 7919 + step * _STREAMS + kind) % (2 ** 63))
        yield


def training_step_stream(kind: int):
    """:func:`sr_random_stream` for the current training iteration (0 outside a trainer)."""
    try:
        step = get_event_storage().iter
    except AssertionError:  # no EventStorage: a model called outside a trainer
        step = 0
    return sr_random_stream(kind, step)
