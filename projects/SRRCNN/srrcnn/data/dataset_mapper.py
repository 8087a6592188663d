# -*- coding: utf-8 -*-
"""detectron2's DatasetMapper with clear errors for images that cannot be read and for masks
that a box-only dataset does not have."""
import copy

from detectron2.data import DatasetMapper


class CheckedDatasetMapper(DatasetMapper):
    """
    :class:`DatasetMapper` that names the file when an image cannot be read or decoded
    (PIL's own message shows a file object, or nothing for an empty file), and says to set
    MODEL.MASK_ON False when a training annotation has no mask (YOLO and VisDrone datasets have
    boxes only; the mask head would otherwise fail on a missing gt_masks field).
    """

    def __call__(self, dataset_dict):
        file_name = dataset_dict.get("file_name", "?")
        if self.is_train and self.use_instance_mask and any(
            "segmentation" not in a
            for a in dataset_dict.get("annotations", []) if not a.get("iscrowd", 0)
        ):
            raise ValueError(f"{file_name}: an annotation has no mask ('segmentation') but "
                             "MODEL.MASK_ON is True; train box-only datasets (YOLO, VisDrone) "
                             "with MODEL.MASK_ON False")
        try:
            return super().__call__(copy.deepcopy(dataset_dict))
        except (OSError, SyntaxError) as e:  # PIL: UnidentifiedImageError is an OSError
            raise RuntimeError(f"Cannot read image {file_name}: {type(e).__name__}: {e}") from e
