#!/usr/bin/env python
"""Convert a YOLO or VisDrone-DET folder to a COCO instances json (docs/DATASETS_FORMATS.md).

  python tools/convert_to_coco.py yolo IMAGE_DIR LABEL_DIR NAMES_FILE --out train.json
  python tools/convert_to_coco.py visdrone IMAGE_DIR ANNOTATION_DIR --out val.json

It reads the folder with the loaders of --register-yolo / --register-visdrone
(srrcnn.data.yolo_visdrone) and converts it as COCOEvaluator does (detectron2's
convert_to_coco_dict), with file names relative to IMAGE_DIR, so that
``train_net.py --register-coco NAME out.json IMAGE_DIR`` reads it back. Category ids: YOLO class
k is k + 1, VisDrone keeps 1..10; VisDrone's ignored regions are iscrowd annotations. A bad file
stops with one line naming it (and the line), exit status 2.
"""

import argparse
import json
import logging
import os
import sys
import tempfile

from detectron2.data import DatasetCatalog, MetadataCatalog

from srrcnn.data.cli import REGISTER_FLAGS
from srrcnn.data.yolo_visdrone import to_coco_dict

logger = logging.getLogger("convert_to_coco")
FORMATS = ("yolo", "visdrone")


def convert(fmt, paths, out):
    """Write the COCO json of the ``fmt`` folder given by ``paths`` (the flag's, after NAME)."""
    name = f"__convert_to_coco_{fmt}"
    REGISTER_FLAGS[fmt][1](name, *paths)
    try:
        coco = to_coco_dict(name)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
        json.dump(coco, f)
    os.replace(f.name, out)  # atomic: no half-written json
    annotations = coco.get("annotations", [])
    logger.info("%s: %d images, %d annotations (%d iscrowd), %d categories", out,
                len(coco["images"]), len(annotations), sum(a["iscrowd"] for a in annotations),
                len(coco["categories"]))
    return out


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    formats = parser.add_subparsers(dest="format", required=True)
    for fmt in FORMATS:
        sub = formats.add_parser(fmt, help=REGISTER_FLAGS[fmt][2])
        for metavar in REGISTER_FLAGS[fmt][0]:
            sub.add_argument(metavar.lower(), metavar=metavar)
        sub.add_argument("--out", required=True, help="the COCO json to write")
    return parser


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argument_parser()
    args = parser.parse_args(argv)
    paths = [getattr(args, m.lower()) for m in REGISTER_FLAGS[args.format][0]]
    try:
        return convert(args.format, paths, args.out)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))  # one line and exit status 2, no traceback


if __name__ == "__main__":
    main(sys.argv[1:])
