# -*- coding: utf-8 -*-
"""detectron2's DatasetMapper with a clear error for images that cannot be read."""
import copy

from detectron2.data import DatasetMapper


class CheckedDatasetMapper(DatasetMapper):
    """
    :class:`DatasetMapper` that names the file when an image cannot be read or decoded
    (PIL's own message shows a file object, or nothing for an empty file).
    """

    def __call__(self, dataset_dict):
        file_name = dataset_dict.get("file_name", "?")
        try:
            return super().__call__(copy.deepcopy(dataset_dict))
        except (OSError, SyntaxError) as e:  # PIL: UnidentifiedImageError is an OSError
            raise RuntimeError(f"Cannot read image {file_name}: {type(e).__name__}: {e}") from e
