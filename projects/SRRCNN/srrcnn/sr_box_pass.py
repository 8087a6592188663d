# -*- coding: utf-8 -*-
"""G's pass at test: the generator, then the box head and predictor on its output, eager or
under ``torch.compile`` (MODEL.SRRCNN.TEST_COMPILE)."""
from typing import Tuple

import torch
from torch import nn


def sr_box_pass(generator, box_head: nn.Module, box_predictor: nn.Module,
                roi: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Args:
        generator: a module or its forward, (R, C [+ T], P, P) -> (R, C, P, P).
        box_head, box_predictor: the ROI heads' (D's) box head and predictor.
        roi: (R, C [+ T], P, P) G's input: RoI features [and their texture, srrcnn.texture].

    Returns:
        The box predictor's (scores (R, K+1), deltas (R, 4K)) on G(roi).
    """
    return box_predictor(box_head(generator(roi)))


class SRBoxPass:
    """
    :func:`sr_box_pass`, compiled with ``torch.compile(backend, mode)`` when ``backend`` is set
    (compiled on first use, again for a new RoI count until torch marks it dynamic). Holds no
    weights: not a module, adds nothing to a state_dict; the modules are arguments, so a copy
    of the model reuses the compiled function with its own guards.

    Compiled, G's folded copy is passed (:meth:`SRResNetGenerator.inference_module`, resolved
    here: its staleness check reads tensor version counters, which dynamo cannot trace), so
    forward hooks registered on G itself do not run; eager, G is called as usual.
    """

    def __init__(self, backend: str = "", mode: str = "default"):
        self.backend, self.mode = backend, mode
        self._compiled = None
        if backend:
            try:
                self._compiled = torch.compile(sr_box_pass, backend=backend, mode=mode)
            except Exception as e:  # e.g. an unknown backend name
                raise ValueError(f"MODEL.SRRCNN.TEST_COMPILE (backend {backend!r}, mode "
                                 f"{mode!r}): {e}") from e

    def __call__(self, generator: nn.Module, box_head: nn.Module, box_predictor: nn.Module,
                 roi: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """As :func:`sr_box_pass`."""
        if self._compiled is None:
            return sr_box_pass(generator, box_head, box_predictor, roi)
        if hasattr(generator, "inference_module"):
            generator = generator.inference_module()
        return self._compiled(generator.forward, box_head, box_predictor, roi)
