"""Datasets of SR-RCNN: the embedded synthetic srrcnn_shapes; COCO-format, YOLO and VisDrone-DET
registration (also from the command line: cli.py).

Importing this package registers the DEFAULT_SHAPES names (srrcnn_shapes_train / _val /
_tiny_train / _tiny_val, the pretraining splits _pretrain / _tiny_pretrain) and their
SOFT_SHAPES twins (srrcnn_shapes_soft_train / ...) under
$SRRCNN_DATASETS, nothing generated until first use, and the COCO
train subsets coco_2017_train_10pct / _20pct under $DETECTRON2_DATASETS (files made by
tools/make_coco_subset.py; read on first use).
"""

from .datasets import (
    DEFAULT_SHAPES,
    SOFT_SHAPES,
    ensure_dataset,
    ensure_generated,
    get_datasets_root,
    register_coco_dataset,
    register_default_datasets,
    register_srrcnn_shapes,
    variant_paths,
)
from .coco_subsets import COCO_SUBSETS, register_coco_subsets, subset_paths
from .dataset_mapper import CheckedDatasetMapper
from .yolo_visdrone import (
    load_visdrone_dicts,
    load_yolo_dicts,
    register_visdrone_dataset,
    register_yolo_dataset,
    to_coco_dict,
)
from .cli import add_register_arguments, register_from_args
from .synthetic import (
    CLASS_NAMES,
    DETAIL_KINDS,
    expected_bin_shares,
    generate_dataset,
    render_object,
)

register_default_datasets()
register_coco_subsets()
