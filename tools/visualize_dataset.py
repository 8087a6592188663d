#!/usr/bin/env python
"""Draw samples of a registered dataset with their boxes, masks and class names.

Writes a grid of images drawn by detectron2's Visualizer (--output) and, optionally, a figure of
small instances of every class at 1x beside the same crop after a 0.5x INTER_AREA round trip
(--detail-output), which shows the class detail vanish. srrcnn_shapes datasets are generated on
first use under --root (default $SRRCNN_DATASETS, else ./datasets).

  python tools/visualize_dataset.py --dataset srrcnn_shapes_val --root /tmp/srrcnn_datasets \
      --output docs/results/dataset/dataset_samples.png \
      --detail-output docs/results/dataset/dataset_detail_lr.png
"""

import argparse
import io
import json
import logging
import os

import cv2
import numpy as np
from PIL import Image

logger = logging.getLogger("visualize_dataset")

MAX_PNG_BYTES = 1 << 20  # docs figures stay under 1 MB: larger ones are quantised to a palette
SMALL_AREA = 32**2  # COCO small: area < 32^2
CROP = 40  # detail figure crop around each small instance, px (even: keeps 2x2 alignment)
ZOOM = 4  # detail figure magnification, nearest neighbour
LABEL_WIDTH = 90  # detail figure class-name column, px


def save_png(rgb, path):
    """Save (H, W, 3) uint8 RGB as PNG; quantise to 256 colours if it would exceed 1 MB."""
    image = Image.fromarray(rgb)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    if buffer.tell() > MAX_PNG_BYTES:
        buffer = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    return buffer.tell()


def draw_grid(dicts, metadata, num, cols, scale):
    """Return an RGB (rows * H, cols * W, 3) grid of the first ``num`` images, annotated."""
    from detectron2.utils.visualizer import Visualizer

    np.random.seed(0)  # the Visualizer draws random instance colours: make the figure repeatable
    tiles = []
    for d in dicts[:num]:
        image = cv2.imread(d["file_name"])[:, :, ::-1]  # BGR file -> RGB for the Visualizer
        tiles.append(Visualizer(image, metadata, scale=scale).draw_dataset_dict(d).get_image())
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % cols)
    rows = [np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, axis=0)


def draw_detail(json_file, image_root, class_names, per_class):
    """Return an RGB figure: per class a row of small instances as (1x | 0.5x upsampled) pairs."""
    with open(json_file) as f:
        coco = json.load(f)
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    rows = []
    for cat_id, name in enumerate(class_names, start=1):
        small = [a for a in coco["annotations"] if a["category_id"] == cat_id]
        small = [a for a in small if a["area"] < SMALL_AREA][:per_class]
        pairs = []
        for ann in small:
            image = cv2.imread(os.path.join(image_root, files[ann["image_id"]]))
            x, y, w, h = ann["bbox"]
            # Even crop origin, so the 0.5x blocks match those of the full image.
            cx, cy = (x + w // 2) // 2 * 2, (y + h // 2) // 2 * 2
            padded = np.pad(image, ((CROP // 2, CROP // 2), (CROP // 2, CROP // 2), (0, 0)))
            crop = padded[cy : cy + CROP, cx : cx + CROP]
            half = cv2.resize(crop, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            back = cv2.resize(half, (CROP, CROP), interpolation=cv2.INTER_NEAREST)
            gap = np.full((CROP, 1, 3), 255, np.uint8)  # 1 px (4 zoomed) between 1x and 0.5x
            pairs.append(np.concatenate([crop, gap, back, gap, gap, gap], axis=1))
        row = cv2.resize(
            np.concatenate(pairs, axis=1), None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST
        )
        label = np.full((row.shape[0], LABEL_WIDTH, 3), 255, np.uint8)
        cv2.putText(label, name, (5, row.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0))
        rows.append(np.concatenate([label, row], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = np.full((24, width, 3), 255, np.uint8)
    text = "each pair: 1x | after 0.5x INTER_AREA (shown upsampled)"
    cv2.putText(header, text, (5, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0))
    return np.concatenate([header] + rows, axis=0)[:, :, ::-1]  # BGR -> RGB


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="srrcnn_shapes_val")
    parser.add_argument("--root", help="cache root for srrcnn_shapes (sets SRRCNN_DATASETS)")
    parser.add_argument("--output", default="docs/results/dataset/dataset_samples.png")
    parser.add_argument("--detail-output", help="also write the 1x vs 0.5x detail figure here")
    parser.add_argument("--num", type=int, default=9, help="images in the grid")
    parser.add_argument("--cols", type=int, default=3, help="grid columns")
    parser.add_argument("--scale", type=float, default=1.0, help="Visualizer scale")
    parser.add_argument("--per-class", type=int, default=6, help="small instances per class")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.root:
        os.environ["SRRCNN_DATASETS"] = args.root  # read when srrcnn.data registers its names
    from detectron2.data import DatasetCatalog, MetadataCatalog

    import srrcnn.data  # noqa: F401  (registers the srrcnn_shapes names)

    dicts = DatasetCatalog.get(args.dataset)  # generates srrcnn_shapes on first use
    metadata = MetadataCatalog.get(args.dataset)
    size = save_png(draw_grid(dicts, metadata, args.num, args.cols, args.scale), args.output)
    logger.info("Wrote %s (%d bytes)", args.output, size)
    if args.detail_output:
        figure = draw_detail(
            metadata.json_file, metadata.image_root, metadata.thing_classes, args.per_class
        )
        logger.info("Wrote %s (%d bytes)", args.detail_output, save_png(figure, args.detail_output))
    print(f"Wrote {args.output}" + (f" and {args.detail_output}" if args.detail_output else ""))


if __name__ == "__main__":
    main()
