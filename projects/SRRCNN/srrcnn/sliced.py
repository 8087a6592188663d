# -*- coding: utf-8 -*-
"""
Sliced inference on large images (SAHI: slicing-aided hyper inference), for any GeneralizedRCNN.

The image is tiled into overlapping windows (the last row and column flush with the image
border), each window is resized by the model's own test resize (INPUT.MIN_SIZE_TEST /
MAX_SIZE_TEST, as DefaultPredictor does) and several go through the model in one batch; their
boxes are mapped back to image coordinates, optionally joined by a pass over the whole image,
merged class-wise (:mod:`srrcnn.slice_merge`: detectron2's ``batched_nms``, or greedy
non-maximum merging), and at most TEST.DETECTIONS_PER_IMAGE are kept. Masks stay as the mask
head's M x M RoI masks until the merge is done; only the kept detections are pasted into the
image (as the model's own postprocessing does), so memory does not grow with the number of
windows.

:class:`SlicedPredictor` is DefaultPredictor with this inference; it reads ``cfg.TEST.SLICE``
(``add_srrcnn_config``) and takes keyword overrides.
"""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

import detectron2.data.transforms as T
from detectron2.engine import DefaultPredictor
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Instances

# also importable from here (docs/LARGE_IMAGES.md; demo/demo.py, tools/sliced_eval.py)
from .slice_merge import (  # noqa: F401
    MERGE_METHODS, MERGE_METRICS, ROI_MASKS, merge_detections, merge_groups, nmm_groups
)

Window = Tuple[int, int, int, int]  # (x0, y0, x1, y1) in image pixels, x1 and y1 exclusive


class KeepSize(T.Augmentation):
    """A test "resize" that keeps the image (or slice) at its own resolution."""

    def get_transform(self, image):
        return T.NoOpTransform()


def check_slice_args(slice_size: int, overlap: float, full_image_pass: bool = False,
                     merge: str = "nms", merge_metric: str = "iou", merge_thresh: float = 0.5,
                     max_detections: int = 100, batch_size: int = 4) -> None:
    """Raise ValueError, naming the argument, unless :func:`sliced_inference`'s are usable."""
    if isinstance(slice_size, bool) or not isinstance(slice_size, (int, np.integer)) \
            or slice_size <= 0:
        raise ValueError(f"slice size must be a positive integer (pixels), got {slice_size!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"slice overlap must be a ratio in [0, 1), got {overlap!r}")
    if merge not in MERGE_METHODS:
        raise ValueError(f"merge must be one of {MERGE_METHODS}, got {merge!r}")
    if merge_metric not in MERGE_METRICS:
        raise ValueError(f"merge metric must be one of {MERGE_METRICS}, got {merge_metric!r}")
    if merge == "nms" and merge_metric != "iou":
        raise ValueError("merge 'nms' (detectron2's batched_nms) matches by 'iou' only; "
                         f"use merge 'nmm' for {merge_metric!r}")
    if not 0.0 < merge_thresh <= 1.0:
        raise ValueError(f"merge threshold must be in (0, 1], got {merge_thresh!r}")
    if max_detections < 1:
        raise ValueError(f"max detections per image must be >= 1, got {max_detections!r}")
    if batch_size < 1:
        raise ValueError(f"slice batch size must be >= 1, got {batch_size!r}")


def _starts(length: int, size: int, stride: int) -> List[int]:
    """Window starts along one axis: every ``stride``, the last one flush with the end."""
    if length <= size:
        return [0]
    return list(range(0, length - size, stride)) + [length - size]


def slice_grid(height: int, width: int, slice_size: int, overlap: float) -> List[Window]:
    """
    Tile an image into square windows of ``slice_size`` that overlap by ``overlap`` of a side.

    Windows step by ``slice_size - floor(overlap * slice_size)`` pixels; the last row and column
    are moved back to end at the image border, so every pixel is covered and no window leaves
    the image. Along a side shorter than ``slice_size`` there is one window of the whole side
    (an image smaller than a slice is one window, the image).

    Returns:
        list of (x0, y0, x1, y1) windows, row-major.
    """
    check_slice_args(slice_size, overlap)
    stride = slice_size - int(math.floor(overlap * slice_size))
    ys = _starts(height, slice_size, stride)
    xs = _starts(width, slice_size, stride)
    h, w = min(height, slice_size), min(width, slice_size)
    return [(x, y, x + w, y + h) for y in ys for x in xs]


def to_image_coordinates(result: Instances, window: Window,
                         image_size: Tuple[int, int]) -> Instances:
    """
    Map one window's raw detections (``model.inference(..., do_postprocess=False)``) to the image.

    Boxes are rescaled from the resized window to the window (detector_postprocess: scaled,
    clipped, empty ones dropped) and shifted by its origin; ``pred_masks`` (R, 1, M, M) are kept
    unpasted under ROI_MASKS; ``pred_keypoints`` (R, K, 3) are shifted too.

    Args:
        result: detections on the resized window, ``image_size`` = its (h', w').
        window: (x0, y0, x1, y1) in image pixels.
        image_size: (H, W) of the image.

    Returns:
        Instances of ``image_size`` with pred_boxes, scores, pred_classes (and ROI_MASKS).
    """
    if result.has("pred_masks"):
        result.set(ROI_MASKS, result.pred_masks)
        result.remove("pred_masks")
    x0, y0, x1, y1 = window
    result = detector_postprocess(result, y1 - y0, x1 - x0)
    result.pred_boxes.tensor += result.pred_boxes.tensor.new_tensor([x0, y0, x0, y0])
    if result.has("pred_keypoints"):
        result.pred_keypoints[:, :, :2] += result.pred_keypoints.new_tensor([x0, y0])
    return Instances(image_size, **result.get_fields())


def predict_windows(model, image: np.ndarray, windows: Sequence[Window], resize,
                    batch_size: int) -> List[Instances]:
    """
    Run ``model`` on image windows, ``batch_size`` windows per forward call.

    Args:
        model: a GeneralizedRCNN (or subclass) in eval mode.
        image: (H, W, C) uint8 array in the model's INPUT.FORMAT.
        windows: (x0, y0, x1, y1) each (a batch of several sizes is padded, as any batch).
        resize: the test-time Augmentation applied to every window (DefaultPredictor's ``aug``).

    Returns:
        per window, its detections in image coordinates (:func:`to_image_coordinates`).
    """
    out = []
    device = model.device
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        inputs = []
        for x0, y0, x1, y1 in batch:
            crop = image[y0:y1, x0:x1]
            crop = resize.get_transform(crop).apply_image(crop)
            tensor = torch.as_tensor(crop.astype("float32").transpose(2, 0, 1)).to(device)
            inputs.append({"image": tensor, "height": y1 - y0, "width": x1 - x0})
        results = model.inference(inputs, do_postprocess=False)
        out += [to_image_coordinates(r, w, image.shape[:2]) for r, w in zip(results, batch)]
    return out


def sliced_inference(model, image: np.ndarray, resize, slice_size: int, overlap: float,
                     full_image_pass: bool = False, merge: str = "nms", merge_metric: str = "iou",
                     merge_thresh: float = 0.5, max_detections: int = 100,
                     batch_size: int = 4) -> Instances:
    """
    Detect objects in a large image by slices (:func:`slice_grid`), merged into one result.

    A single window (image no larger than a slice) is the model's own result, unmerged, plus
    no whole-image pass (it would be the same window).

    Args:
        model: a GeneralizedRCNN (or subclass) in eval mode.
        image: (H, W, C) uint8 array in the model's INPUT.FORMAT.
        resize: test-time Augmentation applied to each window (DefaultPredictor's ``aug``).
        slice_size, overlap: see :func:`slice_grid`.
        full_image_pass: also run the whole image (resized the same way) and merge it in.
        merge, merge_metric, merge_thresh, max_detections: see :func:`merge_detections`.
        batch_size: windows per forward call.

    Returns:
        Instances of (H, W) as a model call returns them: pred_boxes, scores, pred_classes
        and, with a mask head, pred_masks (N, H, W) bool.
    """
    check_slice_args(slice_size, overlap, full_image_pass, merge, merge_metric, merge_thresh,
                     max_detections, batch_size)
    height, width = image.shape[:2]
    windows = slice_grid(height, width, slice_size, overlap)
    results = predict_windows(model, image, windows, resize, batch_size)
    if full_image_pass and len(windows) > 1:
        results += predict_windows(model, image, [(0, 0, width, height)], resize, 1)
    if len(results) == 1:  # nothing to merge: the model's own detections (sorted), masks pasted
        kept = torch.arange(min(len(results[0]), max_detections), device=results[0].scores.device)
        return merge_groups(results[0], list(kept[:, None]))
    return merge_detections(Instances.cat(results), merge, merge_metric, merge_thresh,
                            max_detections)


class SlicedPredictor(DefaultPredictor):
    """
    DefaultPredictor (same cfg, weights, input format and test resize) that detects by slices.

    Settings come from ``cfg.TEST.SLICE`` (``add_srrcnn_config``); keyword arguments override
    them: ``slice_size``, ``overlap``, ``full_image_pass``, ``merge``, ``merge_metric``,
    ``merge_thresh``, ``batch_size``. At most ``cfg.TEST.DETECTIONS_PER_IMAGE`` are kept.

    Example::

        predictor = SlicedPredictor(cfg, slice_size=320, overlap=0.2, full_image_pass=True)
        instances = predictor(cv2.imread("large.png"))["instances"]
    """

    def __init__(self, cfg, slice_size: Optional[int] = None, overlap: Optional[float] = None,
                 full_image_pass: Optional[bool] = None, merge: Optional[str] = None,
                 merge_metric: Optional[str] = None, merge_thresh: Optional[float] = None,
                 batch_size: Optional[int] = None):
        super().__init__(cfg)
        s = cfg.TEST.SLICE
        given = dict(slice_size=slice_size, overlap=overlap, full_image_pass=full_image_pass,
                     merge=merge, merge_metric=merge_metric, merge_thresh=merge_thresh,
                     batch_size=batch_size)
        self.slice_args = dict(
            slice_size=s.SIZE, overlap=s.OVERLAP, full_image_pass=s.FULL_IMAGE_PASS,
            merge=s.MERGE, merge_metric=s.MERGE_METRIC, merge_thresh=s.MERGE_THRESH,
            batch_size=s.BATCH_SIZE,
        )
        self.slice_args.update({k: v for k, v in given.items() if v is not None})
        self.slice_args["max_detections"] = cfg.TEST.DETECTIONS_PER_IMAGE
        check_slice_args(**self.slice_args)

    def __call__(self, original_image: np.ndarray):
        """
        Args:
            original_image: (H, W, C) uint8, BGR (as DefaultPredictor).

        Returns:
            {"instances": Instances of (H, W)}, as DefaultPredictor.
        """
        with torch.no_grad():  # inference only, as DefaultPredictor
            image = original_image[:, :, ::-1] if self.input_format == "RGB" else original_image
            instances = sliced_inference(self.model, np.ascontiguousarray(image), self.aug,
                                         **self.slice_args)
        return {"instances": instances}

    def whole_image(self, original_image: np.ndarray):
        """DefaultPredictor's prediction on the whole image, with the same model."""
        return super().__call__(original_image)
