"""Datasets of SR-RCNN: the embedded synthetic srrcnn_shapes and COCO-format registration.

Importing this package registers the DEFAULT_SHAPES names (srrcnn_shapes_train / _val /
_tiny_train / _tiny_val) under $SRRCNN_DATASETS; nothing is generated until first use.
"""

from .datasets import (
    DEFAULT_SHAPES,
    ensure_dataset,
    ensure_generated,
    get_datasets_root,
    register_coco_dataset,
    register_default_datasets,
    register_srrcnn_shapes,
    variant_paths,
)
from .dataset_mapper import CheckedDatasetMapper
from .synthetic import CLASS_NAMES, expected_bin_shares, generate_dataset, render_object

register_default_datasets()
