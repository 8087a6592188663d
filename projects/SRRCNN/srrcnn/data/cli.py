"""The --register-* flags of train_net.py and demo/demo.py: datasets named on the command line.

    --register-coco NAME JSON IMAGE_DIR
    --register-yolo NAME IMAGE_DIR LABEL_DIR NAMES_FILE
    --register-visdrone NAME IMAGE_DIR ANNOTATION_DIR

Each is repeatable; NAME is then usable in DATASETS.TRAIN / DATASETS.TEST. Formats:
docs/DATASETS_FORMATS.md.
"""

from detectron2.data import DatasetCatalog

from .datasets import register_coco_dataset
from .yolo_visdrone import register_visdrone_dataset, register_yolo_dataset

# format: (metavar after NAME, register function, help). Only "coco" is read at registration.
REGISTER_FLAGS = {
    "coco": (("JSON", "IMAGE_DIR"), register_coco_dataset, "a COCO-format instances json"),
    "yolo": (("IMAGE_DIR", "LABEL_DIR", "NAMES_FILE"), register_yolo_dataset,
             "a YOLO folder (labels/*.txt: 'class cx cy w h', normalized; NAMES_FILE: one "
             "class name per line, or a data.yaml with names:)"),
    "visdrone": (("IMAGE_DIR", "ANNOTATION_DIR"), register_visdrone_dataset,
                 "a VisDrone-DET folder (images/, annotations/; ignored regions as its toolkit)"),
}


def add_register_arguments(parser):
    """Add the --register-coco / -yolo / -visdrone flags to an argparse parser."""
    for fmt, (metavar, _, what) in REGISTER_FLAGS.items():
        parser.add_argument(
            f"--register-{fmt}", nargs=len(metavar) + 1, action="append",
            metavar=("NAME",) + metavar,
            help=f"register {what} under NAME (repeatable); use NAME in DATASETS.TRAIN / "
            "DATASETS.TEST",
        )
    return parser


def register_from_args(args, load=False):
    """
    Register the datasets of ``args``' --register-* flags.

    Args:
        load (bool): also read each YOLO / VisDrone dataset now (its label files and image
            headers), so that a bad file stops the command before a model is built. Without
            it they are read when first used (the demo needs only their class names).

    Raises:
        SystemExit: one line, "Dataset error (--register-<format> NAME): ..." naming the file
            (and line) at fault.
    """
    for fmt, (_, register, _) in REGISTER_FLAGS.items():
        for name, *paths in getattr(args, f"register_{fmt}", None) or []:
            try:
                register(name, *paths)
                if load and fmt != "coco":
                    DatasetCatalog.get(name)
            except (FileNotFoundError, ValueError) as e:
                raise SystemExit(f"Dataset error (--register-{fmt} {name}): {e}")
