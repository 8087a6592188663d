"""YOLO and VisDrone-DET annotation folders as detectron2 datasets (docs/DATASETS_FORMATS.md).

Both loaders return detectron2's standard dicts: "file_name", "image_id" (1-based index of the
image in sorted path order), "height" and "width" (from the image header: PIL's lazy open, no
decode, EXIF orientation applied as detectron2's read_image does) and "annotations", each with
"bbox" (XYWH_ABS), "bbox_mode", a contiguous "category_id" 0..K-1 and "iscrowd". They have no
masks: train them with MODEL.MASK_ON False.

Registration sets metadata evaluator_type "coco", thing_classes and
thing_dataset_id_to_contiguous_id (the category ids of the dataset's COCO json: YOLO class k is
id k + 1, VisDrone keeps its own 1..10) and no json_file, so detectron2's COCOEvaluator converts
the dataset to COCO json itself (convert_to_coco_json, cached in its output folder).
:func:`to_coco_dict` is that conversion with portable file names (tools/convert_to_coco.py).

Label files are matched to images by their path relative to the label and image folders, without
the extension (labels/a/b.txt -> images/a/b.jpg, .png, ...); an image without a label file has no
objects. A bad file raises ValueError naming the file and, for a bad line, the line: a label
file without an image, a malformed line (field count, not a number), an unknown class, a box
with a negative size or outside the image by more than OUTSIDE_TOLERANCE (boxes within it are
clipped to the image).

VisDrone-DET follows its official toolkit (VisDrone2018-DET-toolkit, dropObjectsInIgr.m and
calcAccuracy.m): object_category 1..10 are the classes; 0 ("ignored regions", score 0) marks
regions where neither ground truth nor detections count; 11 ("others") is scored in no class.
Here an ignored region (category 0, or any box with score 0) becomes one iscrowd=1 annotation
per class (COCOeval matches crowd regions per category and ignores the detections inside
them); an object at least VISDRONE_IGNORED_COVER inside the ignored regions is iscrowd=1 too (the
toolkit drops it); "others" boxes are dropped (not a class, not an ignored region). Training
skips iscrowd annotations, as detectron2's DatasetMapper does for COCO crowds.
"""

import functools
import math
import os

import numpy as np
import yaml
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_dict
from detectron2.structures import BoxMode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# A box may leave the image by this share of the image's width / height (labelling tools round);
# it is then clipped to the image. Farther out is an error.
OUTSIDE_TOLERANCE = 0.01
EXIF_ORIENTATION = 274  # the EXIF tag detectron2's read_image applies; 5..8 swap width and height
YOLO_FIELDS = "class cx cy w h"
VISDRONE_FIELDS = (
    "bbox_left,bbox_top,bbox_width,bbox_height,score,object_category,truncation,occlusion"
)
VISDRONE_CLASSES = (  # object_category 1..10
    "pedestrian", "people", "bicycle", "car", "van",
    "truck", "tricycle", "awning-tricycle", "bus", "motor",
)
VISDRONE_IGNORED, VISDRONE_OTHERS = 0, 11  # object_category of ignored regions and "others"
VISDRONE_IGNORED_COVER = 0.5  # toolkit: an object at least half inside ignored regions is dropped


def _line_error(path, line, message):
    return ValueError(f"{path}, line {line}: {message}")


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} not found: {path}")


def _index_files(folder, extensions):
    """{path relative to ``folder`` without extension: path} of the files below it (recursive).

    Raises:
        ValueError: two files differ only by their extension (a.jpg and a.png).
    """
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            stem, ext = os.path.splitext(f)
            if ext.lower() not in extensions:
                continue
            path = os.path.join(root, f)
            key = os.path.relpath(os.path.join(root, stem), folder)
            if key in found:
                raise ValueError(f"Two files for one name: {found[key]} and {path}")
            found[key] = path
    return found


def _match_labels(image_dir, label_dir, skip=None):
    """(images, labels): the {key: path} indexes; every label file has an image.

    ``skip``: a file in the label folder that is not a label file (LabelImg's classes.txt).
    """
    images = _index_files(image_dir, IMAGE_EXTENSIONS)
    labels = _index_files(label_dir, (".txt",))
    for key, path in labels.items():
        if key not in images and not (skip and os.path.samefile(path, skip)):
            raise ValueError(f"{path}: no image for this label file ({key}.* in {image_dir})")
    return images, labels


def image_size(path):
    """(width, height) of an image as detectron2's read_image returns it, from its header only."""
    try:
        with Image.open(path) as image:  # lazy: reads the header, decodes no pixel
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION)
    except (OSError, SyntaxError) as e:  # PIL: UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot read image size of {path}: {e}") from e
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _read_lines(path, sep, num_fields, fields_doc):
    """Yield (line number, list of floats) for each non-empty line of a label file."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            # VisDrone: some lines end in a comma
            fields = line.rstrip(sep).split(sep) if sep else line.split()
            if len(fields) != num_fields:
                raise _line_error(path, n, f"expected {num_fields} fields ({fields_doc}), "
                                           f"got {len(fields)}: {line!r}")
            try:
                values = [float(v) for v in fields]
            except ValueError:
                values = []
            if len(values) != num_fields or not all(map(math.isfinite, values)):
                raise _line_error(path, n, f"not a number in {line!r} ({fields_doc})")
            yield n, values


def _class_index(path, n, value, num_classes, what, source=""):
    """``value`` as an int in [0, num_classes), else a ValueError naming file, line and range."""
    if not value.is_integer() or not 0 <= value < num_classes:
        raise _line_error(path, n, f"unknown {what} {value:g} "
                                   f"(valid: 0..{num_classes - 1}{source})")
    return int(value)


def _checked_box(path, n, box, width, height):
    """XYWH_ABS ``box`` within the image (clipped within OUTSIDE_TOLERANCE), else ValueError."""
    x, y, w, h = box
    if w < 0 or h < 0:
        raise _line_error(path, n, f"negative box width or height ({w:g}, {h:g} px)")
    tx, ty = OUTSIDE_TOLERANCE * width, OUTSIDE_TOLERANCE * height
    if x < -tx or y < -ty or x + w > width + tx or y + h > height + ty:
        raise _line_error(path, n, f"box x0,y0,x1,y1 = {x:g},{y:g},{x + w:g},{y + h:g} px lies "
                                   f"outside the {width}x{height} image")
    if x < 0 or y < 0 or x + w > width or y + h > height:  # within the tolerance: clip
        x1, y1 = min(x + w, width), min(y + h, height)
        x, y = min(max(x, 0.0), width), min(max(y, 0.0), height)
        w, h = max(x1 - x, 0.0), max(y1 - y, 0.0)
    return [x, y, w, h]


def _annotation(box, category_id, iscrowd=0):
    return {"bbox": box, "bbox_mode": BoxMode.XYWH_ABS, "category_id": category_id,
            "iscrowd": iscrowd}


def _image_dicts(images, labels, parse):
    """One dict per image, sorted by key; ``parse(label_file, width, height)`` -> annotations."""
    dicts = []
    for image_id, key in enumerate(sorted(images), 1):
        width, height = image_size(images[key])
        label_file = labels.get(key)
        dicts.append({
            "file_name": images[key],
            "image_id": image_id,
            "height": height,
            "width": width,
            "annotations": parse(label_file, width, height) if label_file else [],
        })
    return dicts


# ------------------------------------------------------------------------------------- YOLO

def read_class_names(names_file):
    """Class names of a YOLO dataset, index k = class k.

    ``names_file``: a text file with one name per line (blank lines skipped), or a YAML file
    (.yaml / .yml, e.g. Ultralytics' data.yaml) whose ``names`` is a list or {index: name}.
    """
    if not os.path.isfile(names_file):
        raise FileNotFoundError(f"YOLO class names file not found: {names_file}")
    with open(names_file) as f:
        if not names_file.lower().endswith((".yaml", ".yml")):
            names = [line.strip() for line in f if line.strip()]
            if not names:
                raise ValueError(f"YOLO class names file {names_file} has no names")
            return names
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"Malformed YAML in {names_file}: {e}") from e
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        names = [names[k] for k in range(len(names))]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{names_file}: expected 'names:' as a list of class names or a "
                         "mapping 0..K-1 -> name")
    return [str(n) for n in names]


def load_yolo_dicts(image_dir, label_dir, names_file):
    """
    Read a YOLO folder: one label file per image, one line per object,
    ``class cx cy w h`` with the box centre and size normalized to [0, 1] by the image size.

    Args:
        image_dir (str): the images (searched recursively).
        label_dir (str): the ``.txt`` label files, mirroring image_dir's layout.
        names_file (str): class names (:func:`read_class_names`); may lie in label_dir.

    Returns:
        list[dict]: detectron2's standard dicts; category_id = the YOLO class index.
    """
    _require_dir(image_dir, "YOLO image folder")
    _require_dir(label_dir, "YOLO label folder")
    num_classes = len(read_class_names(names_file))
    images, labels = _match_labels(image_dir, label_dir, skip=names_file)

    def parse(label_file, width, height):
        annotations = []
        for n, (c, cx, cy, w, h) in _read_lines(label_file, None, 5, YOLO_FIELDS):
            c = _class_index(label_file, n, c, num_classes, "class index", f" from {names_file}")
            box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
            annotations.append(_annotation(_checked_box(label_file, n, box, width, height), c))
        return annotations

    return _image_dicts(images, labels, parse)


# --------------------------------------------------------------------------------- VisDrone

def _cover(boxes, regions, width, height):
    """Share of each XYWH box's pixels inside the union of the XYWH regions (pixel grid)."""
    inside = np.zeros((height, width), dtype=bool)
    for x, y, w, h in regions:
        inside[round(y):round(y + h), round(x):round(x + w)] = True
    shares = []
    for x, y, w, h in boxes:
        pixels = inside[round(y):round(y + h), round(x):round(x + w)]
        shares.append(pixels.mean() if pixels.size else 0.0)
    return shares


def load_visdrone_dicts(image_dir, annotation_dir):
    """
    Read a VisDrone-DET folder: one annotation file per image, one line per box,
    ``bbox_left,bbox_top,bbox_width,bbox_height,score,object_category,truncation,occlusion``
    in pixels. Ignored regions and "others" as the module docstring says.

    Args:
        image_dir (str): the images (VisDrone: ``images/``).
        annotation_dir (str): the ``.txt`` files (VisDrone: ``annotations/``).

    Returns:
        list[dict]: detectron2's standard dicts; category_id = object_category - 1.
    """
    _require_dir(image_dir, "VisDrone image folder")
    _require_dir(annotation_dir, "VisDrone annotation folder")
    images, labels = _match_labels(image_dir, annotation_dir)
    num_categories = VISDRONE_OTHERS + 1

    def parse(label_file, width, height):
        objects, ignored = [], []
        for n, values in _read_lines(label_file, ",", 8, VISDRONE_FIELDS):
            category = _class_index(label_file, n, values[5], num_categories, "object_category")
            box = _checked_box(label_file, n, values[:4], width, height)
            if category == VISDRONE_IGNORED or values[4] == 0:
                ignored.append(box)
            elif category != VISDRONE_OTHERS:
                objects.append((box, category - 1))
        boxes = [box for box, _ in objects]
        covers = _cover(boxes, ignored, width, height) if ignored else [0.0] * len(objects)
        annotations = [_annotation(box, c, int(cover >= VISDRONE_IGNORED_COVER))
                       for (box, c), cover in zip(objects, covers)]
        for box in ignored:  # COCOeval ignores a crowd region only for its own category
            annotations.extend(_annotation(list(box), c, 1) for c in range(len(VISDRONE_CLASSES)))
        return annotations

    return _image_dicts(images, labels, parse)


# ----------------------------------------------------------------------------- registration

def _register(name, loader, params, thing_classes, dataset_ids):
    """Register ``loader(**params)`` lazily under ``name``; the same params again is a no-op."""
    if name in DatasetCatalog.list():
        if getattr(MetadataCatalog.get(name), "label_folders", None) == params:
            return
        raise ValueError(f"Dataset {name!r} is already registered with other files")
    DatasetCatalog.register(name, functools.partial(loader, **params))
    MetadataCatalog.get(name).set(
        evaluator_type="coco",
        thing_classes=list(thing_classes),
        thing_dataset_id_to_contiguous_id={d: i for i, d in enumerate(dataset_ids)},
        image_root=params["image_dir"],
        label_folders=params,  # also tells these datasets apart (no json_file)
    )


def register_yolo_dataset(name, image_dir, label_dir, names_file):
    """Register a YOLO folder (:func:`load_yolo_dicts`) under ``name``.

    Checks the folders and reads the class names now; the label files and image headers are
    read when the dataset is loaded (DatasetCatalog.get).

    Raises:
        FileNotFoundError: a folder or the names file does not exist (the path is named).
        ValueError: a malformed names file, or ``name`` is already registered with other files.
    """
    _require_dir(image_dir, "YOLO image folder")
    _require_dir(label_dir, "YOLO label folder")
    names = read_class_names(names_file)
    params = dict(image_dir=image_dir, label_dir=label_dir, names_file=names_file)
    _register(name, load_yolo_dicts, params, names, range(1, len(names) + 1))


def register_visdrone_dataset(name, image_dir, annotation_dir):
    """Register a VisDrone-DET folder (:func:`load_visdrone_dicts`) under ``name``.

    Checks the folders now; the annotation files and image headers are read when the dataset
    is loaded (DatasetCatalog.get). Raises as :func:`register_yolo_dataset`.
    """
    _require_dir(image_dir, "VisDrone image folder")
    _require_dir(annotation_dir, "VisDrone annotation folder")
    params = dict(image_dir=image_dir, annotation_dir=annotation_dir)
    _register(name, load_visdrone_dicts, params, VISDRONE_CLASSES,
              range(1, len(VISDRONE_CLASSES) + 1))


def to_coco_dict(name):
    """
    COCO json dict of a dataset registered here: detectron2's convert_to_coco_dict (what
    COCOEvaluator evaluates against), with each file_name relative to the image folder, so
    that ``--register-coco NAME the.json IMAGE_DIR`` reads it back.
    """
    coco = convert_to_coco_dict(name)
    image_dir = MetadataCatalog.get(name).label_folders["image_dir"]
    for image in coco["images"]:
        image["file_name"] = os.path.relpath(image["file_name"], image_dir)
    return coco
