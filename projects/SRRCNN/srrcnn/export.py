# -*- coding: utf-8 -*-
"""
TorchScript and ONNX export of R-CNN models (Mask R-CNN, SR-RCNN) through detectron2's own export
path: :class:`detectron2.export.TracingAdapter` for tracing, ``scripting_with_instances`` for
scripting (Mask R-CNN only), as detectron2's ``tools/deploy/export_model.py``. Also the
tensor-only RoI selection that makes SR-RCNN's "size_aware" test mode traceable.

An exported model takes one image, (3, H, W) float32 in the model's INPUT.FORMAT, already
resized as DefaultPredictor resizes it, and returns the detections of
``model.inference(..., do_postprocess=False)``: boxes in that image's coordinates, RoI masks
(see docs/EXPORT.md).
"""
import logging
import math
import os
from typing import Dict, List, Tuple

import torch
from torch import nn

from detectron2.export import TracingAdapter, dump_torchscript_IR, scripting_with_instances
from detectron2.structures import Boxes, Instances
from detectron2.utils.file_io import PathManager

logger = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
EXPORT_METHODS = ("tracing", "scripting")
# SR-RCNN test modes that export; the diagnostics "sr_lr" and "size_aware_x2" run a second
# backbone pass through a forward hook, which a trace does not follow
EXPORTABLE_TEST_MODES = ("hr", "size_aware", "sr")
# the lowest opset in which torchvision's ONNX RoIAlign keeps aligned=True (ROIAlignV2)
ONNX_OPSET = 16
# TorchScript model file; the ONNX one is model.onnx
TORCHSCRIPT_FILE = "model.ts"
ONNX_FILE = "model.onnx"


def select_per_image_traceable(candidates: torch.Tensor, score: torch.Tensor,
                               boxes: List[torch.Tensor], max_per_image: int) -> torch.Tensor:
    """
    The selection of :meth:`SRTestModes.select_size_aware` in tensor operations only, so that
    a traced model (TorchScript, ONNX) selects for its own input: per image the candidate
    RoIs or, where there are more than ``max_per_image`` (> 0), the ``max_per_image``
    highest-scoring of them. The same RoIs as the eager loop (up to equal scores at that
    limit), in another order (by score).

    Args:
        candidates: (R,) bool over the RoIs of all images, concatenated.
        score: (R,) the ranking score.
        boxes: per image, its RoIs' (R_i, 4) boxes (only their number is read); sum R_i = R.
        max_per_image: at most this many per image; <= 0: no limit.

    Returns:
        (R_S,) long indices into the concatenated RoIs, grouped by image.
    """
    selected, offset = [], 0
    for b in boxes:  # a trace fixes the number of images, not the number of RoIs
        n = b.shape[0]
        cand = candidates[offset:offset + n]
        if max_per_image > 0:
            # padded with max_per_image non-candidates, so that the top k always exist
            cand = torch.cat([cand, cand.new_zeros(max_per_image)])
            s = torch.cat([score[offset:offset + n], score.new_zeros(max_per_image)])
            top = torch.where(cand, s, torch.full_like(s, -math.inf)).topk(max_per_image).indices
            keep = top[cand[top]]
        else:
            keep = torch.nonzero(cand).squeeze(1)
        selected.append(keep + offset)
        offset = offset + n
    return torch.cat(selected)


def check_exportable(model: nn.Module, export_method: str = "tracing") -> None:
    """Raise ValueError, saying why, for a model this module cannot export."""
    heads = getattr(model, "roi_heads", None)
    test_mode = getattr(heads, "test_mode", None)
    if test_mode is None:  # not SR-RCNN
        return
    if export_method == "scripting":
        raise ValueError("SR-RCNN does not script (its training paths and test-mode hooks are "
                         "not TorchScript); use --export-method tracing")
    if test_mode not in EXPORTABLE_TEST_MODES:
        raise ValueError(f"MODEL.SRRCNN.TEST_MODE {test_mode!r} does not export; one of "
                         f"{EXPORTABLE_TEST_MODES} does")
    if test_mode == "hr":
        return
    if getattr(heads.generator, "test_norm_stats", "running") != "running":
        raise ValueError("MODEL.SRRCNN.GENERATOR.TEST_NORM_STATS 'batch' does not export "
                         "(a diagnostic); use 'running'")
    if getattr(getattr(heads, "sr_box_pass", None), "backend", ""):
        raise ValueError("MODEL.SRRCNN.TEST_COMPILE.BACKEND is set: torch.compile does not "
                         "trace; export with BACKEND ''")


def tracing_adapter(model: nn.Module, image: torch.Tensor) -> TracingAdapter:
    """
    detectron2's TracingAdapter over ``model.inference([{"image": image}], do_postprocess=False)``.

    Args:
        model: a GeneralizedRCNN (SR-RCNN included) in eval mode.
        image: (3, H, W) float, the model's input format, resized for the test.

    Returns:
        The adapter: ``adapter(image)`` gives the flattened outputs, (pred_boxes (N, 4),
        pred_classes (N,), [pred_masks (N, 1, M, M),] scores (N,), image_size (2,));
        ``adapter.outputs_schema`` turns them back into ``[{"instances": Instances}]``.
    """
    check_exportable(model, "tracing")

    def inference(model, inputs):
        return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]

    return TracingAdapter(model, [{"image": image}], inference).eval()


def output_names(adapter: TracingAdapter) -> List[str]:
    """Names of the flattened outputs: the Instances fields (sorted), then "image_size"."""
    (instances_schema,) = adapter.outputs_schema.schemas[0].schemas
    return list(instances_schema.keys) + ["image_size"]


def export_tracing(model: nn.Module, image: torch.Tensor, fmt: str, output_dir: str,
                   opset: int = ONNX_OPSET) -> Tuple[str, TracingAdapter]:
    """
    Trace ``model`` on ``image`` (see :func:`tracing_adapter`) and save it to ``output_dir``:
    TorchScript (``model.ts``, with detectron2's IR dumps) or ONNX (``model.onnx``, input
    "image" with dynamic height and width, outputs named by :func:`output_names`).

    Returns:
        The file written, and the adapter (its ``outputs_schema`` rebuilds the outputs).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    adapter = tracing_adapter(model, image)
    PathManager.mkdirs(output_dir)
    with torch.no_grad():
        adapter(image)  # records the outputs' schema
        if fmt == "torchscript":
            path = os.path.join(output_dir, TORCHSCRIPT_FILE)
            traced = torch.jit.trace(adapter, (image,), check_trace=False)
            with PathManager.open(path, "wb") as f:
                torch.jit.save(traced, f)
            dump_torchscript_IR(traced, output_dir)
        else:
            path = os.path.join(output_dir, ONNX_FILE)
            names = output_names(adapter)
            dynamic = {n: {0: "detections"} for n in names if n != "image_size"}
            dynamic["image"] = {1: "height", 2: "width"}
            # the TorchScript-based exporter (dynamo=False) follows the trace, as detectron2's
            torch.onnx.export(adapter, (image,), path, dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=names, dynamic_axes=dynamic)
            adapter.eval()  # the exporter leaves the wrapper in training mode
    logger.info("Wrote %s; outputs: %s", path, ", ".join(output_names(adapter)))
    return path, adapter


class _ScriptableAdapter(nn.Module):
    """Returns dicts, not Instances (pytorch/pytorch#46944), as detectron2's export tool."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, inputs: Tuple[Dict[str, torch.Tensor]]) -> List[Dict[str, torch.Tensor]]:
        instances = self.model.inference(inputs, do_postprocess=False)
        return [i.get_fields() for i in instances]


def export_scripting(model: nn.Module, output_dir: str) -> str:
    """
    Script a Mask R-CNN with detectron2's ``scripting_with_instances`` and save ``model.ts``
    to ``output_dir``. Input: a tuple of {"image": (3, H, W)} dicts; output: per image a
    dict of the Instances fields. SR-RCNN does not script: ValueError.
    """
    check_exportable(model, "scripting")
    fields = {"proposal_boxes": Boxes, "objectness_logits": torch.Tensor, "pred_boxes": Boxes,
              "scores": torch.Tensor, "pred_classes": torch.Tensor, "pred_masks": torch.Tensor}
    scripted = scripting_with_instances(_ScriptableAdapter(model), fields)
    PathManager.mkdirs(output_dir)
    path = os.path.join(output_dir, TORCHSCRIPT_FILE)
    with PathManager.open(path, "wb") as f:
        torch.jit.save(scripted, f)
    dump_torchscript_IR(scripted, output_dir)
    logger.info("Wrote %s", path)
    return path


class ExportedModel:
    """
    Runs an exported file on one image and returns detectron2 Instances, for checks and
    evaluation in Python: TorchScript through ``torch.jit.load``, ONNX through onnxruntime.

    Args:
        path: ``model.ts`` or ``model.onnx``.
        adapter: the TracingAdapter of the export (its ``outputs_schema``); None for a scripted
            model.
    """

    def __init__(self, path: str, adapter: TracingAdapter = None):
        self.adapter = adapter
        if path.endswith(".onnx"):
            import onnxruntime  # optional: only to run ONNX files

            self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            self._model = None
        else:
            self._session = None
            self._model = torch.jit.load(path, map_location="cpu")

    def __call__(self, image: torch.Tensor) -> Instances:
        """(3, H, W) float image -> Instances (boxes in the image's coordinates, RoI masks)."""
        image = image.cpu()
        with torch.no_grad():
            if self._session is not None:
                outputs = self._session.run(None, {"image": image.numpy()})
                outputs = [torch.from_numpy(x) for x in outputs]
            elif self.adapter is None:  # scripted
                fields = dict(self._model(({"image": image},))[0])
                boxes = fields["pred_boxes"]
                fields["pred_boxes"] = Boxes(getattr(boxes, "tensor", boxes))
                return Instances(tuple(image.shape[-2:]), **fields)
            else:
                outputs = self._model(image)
        instances = self.adapter.outputs_schema(outputs)[0]["instances"]
        return Instances(tuple(int(s) for s in instances.image_size), **instances.get_fields())
