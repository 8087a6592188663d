# -*- coding: utf-8 -*-
"""YOLO and VisDrone-DET folders (srrcnn.data.yolo_visdrone), their --register-* flags
(srrcnn.data.cli) and tools/convert_to_coco.py, on tiny samples written into tmp_path."""
import importlib.util
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, BoxMode, Instances

from srrcnn.data import CheckedDatasetMapper, register_from_args
from srrcnn.data.yolo_visdrone import (
    VISDRONE_CLASSES,
    load_visdrone_dicts,
    load_yolo_dicts,
    read_class_names,
    register_visdrone_dataset,
    register_yolo_dataset,
)
from srrcnn.testing import REPO_ROOT, get_tiny_cfg


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_net = _load("train_net", os.path.join(REPO_ROOT, "train_net.py"))
convert_tool = _load("convert_to_coco", os.path.join(REPO_ROOT, "tools", "convert_to_coco.py"))

# YOLO: image key -> (width, height, label file text or None); boxes chosen exact in binary
YOLO_IMAGES = {
    "a.png": (64, 32, "0 0.5 0.5 0.25 0.5\n\n1 0.125 0.25 0.25 0.5\n"
                      "0 0.99609375 0.5 0.015625 0.5\n"),  # leaves by 0.25 px: clipped
    "c.png": (20, 10, None),  # no label file: no objects
    os.path.join("sub", "b.jpg"): (40, 40, "1 0.5 0.5 0.5 0.25\n"),
}
YOLO_EXPECTED = {  # file: [(XYWH_ABS box, category_id)]
    "a.png": [([24.0, 8.0, 16.0, 16.0], 0), ([0.0, 0.0, 16.0, 16.0], 1),
              ([63.25, 8.0, 0.75, 16.0], 0)],
    "c.png": [],
    os.path.join("sub", "b.jpg"): [([10.0, 15.0, 20.0, 10.0], 1)],
}
# VisDrone, one 100x80 image: line -> what it becomes
VISDRONE_SIZE = (100, 80)
VISDRONE_LINES = [
    "10,10,20,10,1,4,0,0",      # car
    "50,40,8,16,1,1,0,1,",      # pedestrian; a trailing comma, as in some VisDrone files
    "60,0,40,30,0,0,0,0",       # ignored region
    "70,5,10,10,1,5,0,0",       # van inside the ignored region: iscrowd
    "0,60,10,10,1,11,0,0",      # "others": dropped
    "30,50,10,10,0,6,0,0",      # score 0: an ignored region too
    "99.5,40,1.5,10,1,10,0,0",  # motor leaving the image by 1 px (1 %): clipped
    "55,20,10,20,1,4,0,0",      # car a quarter inside the ignored region: kept
]
VISDRONE_OBJECTS = [  # (box, category_id, iscrowd)
    ([10.0, 10.0, 20.0, 10.0], 3, 0), ([50.0, 40.0, 8.0, 16.0], 0, 0),
    ([70.0, 5.0, 10.0, 10.0], 4, 1), ([99.5, 40.0, 0.5, 10.0], 9, 0),
    ([55.0, 20.0, 10.0, 20.0], 3, 0),
]
VISDRONE_IGNORED = [[60.0, 0.0, 40.0, 30.0], [30.0, 50.0, 10.0, 10.0]]


def write_image(path, width, height):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 30)).save(path)


def yolo_sample(root):
    """(image_dir, label_dir, names_file) of YOLO_IMAGES under root."""
    image_dir, label_dir = root / "images", root / "labels"
    for key, (w, h, text) in YOLO_IMAGES.items():
        write_image(str(image_dir / key), w, h)
        if text is not None:
            label = label_dir / (os.path.splitext(key)[0] + ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
    names = root / "names.txt"
    names.write_text("cat\n\ndog\n")
    return str(image_dir), str(label_dir), str(names)


def visdrone_sample(root, lines=VISDRONE_LINES):
    """(image_dir, annotation_dir) of one image with ``lines`` under root."""
    write_image(str(root / "images" / "0000001_00000_d_0000001.jpg"), *VISDRONE_SIZE)
    (root / "annotations").mkdir()
    (root / "annotations" / "0000001_00000_d_0000001.txt").write_text("\n".join(lines) + "\n")
    return str(root / "images"), str(root / "annotations")


def boxes_of(d):
    return [(a["bbox"], a["category_id"], a["iscrowd"]) for a in d["annotations"]]


# ----------------------------------------------------------------------------- the dicts

def test_yolo_dicts(tmp_path):
    image_dir, label_dir, names = yolo_sample(tmp_path)
    dicts = load_yolo_dicts(image_dir, label_dir, names)
    assert [os.path.relpath(d["file_name"], image_dir) for d in dicts] == sorted(YOLO_IMAGES)
    assert [d["image_id"] for d in dicts] == [1, 2, 3]
    for d in dicts:
        key = os.path.relpath(d["file_name"], image_dir)
        assert (d["width"], d["height"]) == YOLO_IMAGES[key][:2]
        assert boxes_of(d) == [(box, c, 0) for box, c in YOLO_EXPECTED[key]]  # exact
        assert all(a["bbox_mode"] == BoxMode.XYWH_ABS for a in d["annotations"])


def test_yolo_names_files(tmp_path):
    lists = tmp_path / "data.yaml"
    lists.write_text("path: .\nnames: [plane, ship]\n")
    mapping = tmp_path / "map.yml"
    mapping.write_text("names:\n  0: plane\n  1: ship\n")
    assert read_class_names(str(lists)) == read_class_names(str(mapping)) == ["plane", "ship"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("nc: 2\n")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        read_class_names(str(bad))
    # LabelImg keeps classes.txt among the label files: it is not a label file without image
    image_dir, label_dir, _ = yolo_sample(tmp_path)
    classes = os.path.join(label_dir, "classes.txt")
    with open(classes, "w") as f:
        f.write("cat\ndog\n")
    assert len(load_yolo_dicts(image_dir, label_dir, classes)) == len(YOLO_IMAGES)


def test_visdrone_dicts_ignored_regions_and_others(tmp_path):
    (d,) = load_visdrone_dicts(*visdrone_sample(tmp_path))
    assert (d["width"], d["height"]) == VISDRONE_SIZE
    objects = [b for b in boxes_of(d) if not (b[2] and b[0] in VISDRONE_IGNORED)]
    assert objects == VISDRONE_OBJECTS
    crowd_regions = [b for b in boxes_of(d) if b[2] and b[0] in VISDRONE_IGNORED]
    # each ignored region once per class: COCOeval ignores crowd detections per category
    assert sorted(crowd_regions) == sorted(
        (region, c, 1) for region in VISDRONE_IGNORED for c in range(len(VISDRONE_CLASSES))
    )


def test_exif_rotated_image_size(tmp_path):
    """Sizes as detectron2's read_image returns them: EXIF orientation 6 swaps width and height."""
    image_dir, label_dir = tmp_path / "images", tmp_path / "labels"
    image_dir.mkdir()
    label_dir.mkdir()
    exif = Image.Exif()
    exif[274] = 6
    Image.new("RGB", (60, 20)).save(image_dir / "r.jpg", exif=exif)
    (label_dir / "r.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    names = tmp_path / "names.txt"
    names.write_text("thing\n")
    (d,) = load_yolo_dicts(str(image_dir), str(label_dir), str(names))
    assert (d["width"], d["height"]) == (20, 60)
    assert d["annotations"][0]["bbox"] == [5.0, 15.0, 10.0, 30.0]


# ------------------------------------------------------------------------------ bad files

YOLO_BAD = [  # second line of a.txt -> what the error says
    ("0 0.5 0.5 0.1", "expected 5 fields"),
    ("0 0.5 x 0.1 0.1", "not a number"),
    ("0 nan 0.5 0.1 0.1", "not a number"),
    ("2 0.5 0.5 0.1 0.1", "unknown class index 2"),
    ("0.5 0.5 0.5 0.1 0.1", "unknown class index 0.5"),
    ("0 1.2 0.5 0.2 0.2", "outside the 64x32 image"),
    ("0 0.5 0.5 -0.1 0.1", "negative box width"),
]
VISDRONE_BAD = [
    ("1,2,3,4,1,4,0", "expected 8 fields"),
    ("1,2,3,x,1,4,0,0", "not a number"),
    ("1,2,3,4,1,12,0,0", "unknown object_category 12"),
    ("90,70,20,20,1,4,0,0", "outside the 100x80 image"),
]


@pytest.mark.parametrize("line,message", YOLO_BAD)
def test_yolo_bad_line_names_file_and_line(tmp_path, line, message):
    image_dir, label_dir, names = yolo_sample(tmp_path)
    label = os.path.join(label_dir, "a.txt")
    with open(label, "w") as f:
        f.write(f"0 0.5 0.5 0.25 0.5\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(f"{label}, line 2: ") + ".*" + message):
        load_yolo_dicts(image_dir, label_dir, names)


@pytest.mark.parametrize("line,message", VISDRONE_BAD)
def test_visdrone_bad_line_names_file_and_line(tmp_path, line, message):
    image_dir, annotation_dir = visdrone_sample(tmp_path, [VISDRONE_LINES[0], line])
    label = os.path.join(annotation_dir, "0000001_00000_d_0000001.txt")
    with pytest.raises(ValueError, match=re.escape(f"{label}, line 2: ") + ".*" + message):
        load_visdrone_dicts(image_dir, annotation_dir)


def test_missing_or_unreadable_image_names_the_file(tmp_path):
    image_dir, label_dir, names = yolo_sample(tmp_path / "yolo")
    orphan = os.path.join(label_dir, "sub", "gone.txt")
    with open(orphan, "w") as f:
        f.write("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=re.escape(orphan) + ": no image"):
        load_yolo_dicts(image_dir, label_dir, names)
    os.remove(orphan)
    broken = os.path.join(image_dir, "c.png")
    with open(broken, "wb") as f:
        f.write(b"not a png")
    with pytest.raises(ValueError, match="Cannot read image size of " + re.escape(broken)):
        load_yolo_dicts(image_dir, label_dir, names)

    image_dir, annotation_dir = visdrone_sample(tmp_path / "visdrone")
    orphan = os.path.join(annotation_dir, "0000002.txt")
    with open(orphan, "w") as f:
        f.write(VISDRONE_LINES[0] + "\n")
    with pytest.raises(ValueError, match=re.escape(orphan) + ": no image"):
        load_visdrone_dicts(image_dir, annotation_dir)


def test_register_missing_paths_name_the_path(tmp_path, catalog_names):
    image_dir, label_dir, names = yolo_sample(tmp_path)
    for args in ((str(tmp_path / "no_images"), label_dir, names),
                 (image_dir, str(tmp_path / "no_labels"), names),
                 (image_dir, label_dir, str(tmp_path / "no_names.txt"))):
        missing = next(a for a in args if not os.path.exists(a))
        with pytest.raises(FileNotFoundError, match=re.escape(missing)):
            register_yolo_dataset("test_yolo_missing", *args)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no_ann"))):
        register_visdrone_dataset("test_visdrone_missing", image_dir, str(tmp_path / "no_ann"))
    assert "test_yolo_missing" not in DatasetCatalog.list()


# ---------------------------------------------------------- evaluation and the converter

def _evaluate(name, output_dir, detections):
    """bbox AP of COCOEvaluator on one image; ``detections``: [(XYWH box, class, score)]."""
    evaluator = COCOEvaluator(name, output_dir=str(output_dir), distributed=False)
    evaluator.reset()
    instances = Instances(VISDRONE_SIZE[::-1])
    xywh = torch.tensor([b for b, _, _ in detections], dtype=torch.float32)
    instances.pred_boxes = Boxes(BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS))
    instances.pred_classes = torch.tensor([c for _, c, _ in detections])
    instances.scores = torch.tensor([s for _, _, s in detections])
    evaluator.process([{"image_id": 1}], [{"instances": instances}])
    return evaluator.evaluate()["bbox"]["AP"]


def test_coco_evaluator_ignores_detections_in_ignored_regions(tmp_path, catalog_names):
    """COCOEvaluator converts the VisDrone dataset itself; detections in ignored regions, and
    a missed object inside one, change nothing."""
    name = "test_visdrone_eval"
    catalog_names.append(name)
    register_visdrone_dataset(name, *visdrone_sample(tmp_path))
    hits = [(box, c, 0.5) for box, c, crowd in VISDRONE_OBJECTS if not crowd]
    in_ignored = [([62.0, 2.0, 20.0, 20.0], 3, 0.95), ([31.0, 51.0, 8.0, 8.0], 5, 0.9)]
    assert _evaluate(name, tmp_path / "a", hits + in_ignored) == pytest.approx(100.0)
    assert os.path.isfile(tmp_path / "a" / f"{name}_coco_format.json")
    # the same detection outside the ignored regions is a false positive
    outside = [([0.0, 62.0, 20.0, 10.0], 3, 0.95)]
    assert _evaluate(name, tmp_path / "b", hits + outside) < 99.0


@pytest.mark.parametrize("fmt", ["yolo", "visdrone"])
def test_converter_round_trip(tmp_path, catalog_names, fmt):
    paths = yolo_sample(tmp_path) if fmt == "yolo" else visdrone_sample(tmp_path)
    loader = load_yolo_dicts if fmt == "yolo" else load_visdrone_dicts
    out = tmp_path / "out" / "coco.json"
    convert_tool.main([fmt, *paths, "--out", str(out)])
    api = COCO(str(out))  # pycocotools reads it
    expected_names = ["cat", "dog"] if fmt == "yolo" else list(VISDRONE_CLASSES)
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == expected_names
    assert api.getCatIds() == list(range(1, len(expected_names) + 1))
    assert all(not os.path.isabs(im["file_name"]) for im in api.dataset["images"])
    # back through --register-coco's reader: the same dicts
    name = f"test_round_trip_{fmt}"
    catalog_names.append(name)
    again = load_coco_json(str(out), paths[0], name)
    assert MetadataCatalog.get(name).thing_classes == expected_names
    original = loader(*paths)
    assert len(again) == len(original)
    for a, b in zip(again, original):
        assert (a["file_name"], a["image_id"], a["height"], a["width"]) == (
            b["file_name"], b["image_id"], b["height"], b["width"])
        got = [(np.round(x["bbox"], 3).tolist(), x["category_id"], x.get("iscrowd", 0))
               for x in a.get("annotations", [])]
        want = [(np.round(x["bbox"], 3).tolist(), x["category_id"], x["iscrowd"])
                for x in b["annotations"]]
        assert got == want


def test_converter_bad_file_exits_naming_file_and_line(tmp_path, capsys):
    image_dir, label_dir, names = yolo_sample(tmp_path)
    label = os.path.join(label_dir, "a.txt")
    with open(label, "w") as f:
        f.write("0 0.5 0.5 0.25\n")
    with pytest.raises(SystemExit) as e:
        convert_tool.main(["yolo", image_dir, label_dir, names, "--out", str(tmp_path / "o.json")])
    assert e.value.code == 2
    assert f"{label}, line 1: expected 5 fields" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


# -------------------------------------------------------------------- train_net.py's flags

def test_train_net_flags_register_both_formats(tmp_path, catalog_names):
    yolo = yolo_sample(tmp_path / "yolo")
    visdrone = visdrone_sample(tmp_path / "visdrone")
    catalog_names.extend(["test_flag_yolo", "test_flag_visdrone"])
    args = train_net.argument_parser().parse_args([
        "--config-file", "x.yaml", "--register-yolo", "test_flag_yolo", *yolo,
        "--register-visdrone", "test_flag_visdrone", *visdrone,
    ])
    register_from_args(args, load=True)
    assert MetadataCatalog.get("test_flag_yolo").thing_classes == ["cat", "dog"]
    metadata = MetadataCatalog.get("test_flag_visdrone")
    assert metadata.thing_classes == list(VISDRONE_CLASSES) and metadata.evaluator_type == "coco"
    assert len(DatasetCatalog.get("test_flag_yolo")) == len(YOLO_IMAGES)


def test_train_net_flag_bad_file_is_a_clear_exit(tmp_path, catalog_names):
    image_dir, label_dir, names = yolo_sample(tmp_path)
    label = os.path.join(label_dir, "sub", "b.txt")
    with open(label, "w") as f:
        f.write("1 0.5 0.5 0.5 0.25\n7 0.5 0.5 0.5 0.25\n")
    catalog_names.append("test_flag_bad")
    args = train_net.argument_parser().parse_args(
        ["--register-yolo", "test_flag_bad", image_dir, label_dir, names])
    with pytest.raises(SystemExit, match=re.escape(
            f"Dataset error (--register-yolo test_flag_bad): {label}, line 2: unknown class")):
        register_from_args(args, load=True)


def test_box_only_dataset_with_mask_on_is_a_clear_error(tmp_path):
    (d,) = load_visdrone_dicts(*visdrone_sample(tmp_path))
    cfg = get_tiny_cfg(sr=False)
    assert cfg.MODEL.MASK_ON
    with pytest.raises(ValueError, match="MODEL.MASK_ON False"):
        CheckedDatasetMapper(cfg, True)(d)
    cfg.MODEL.MASK_ON = False
    mapped = CheckedDatasetMapper(cfg, True)(d)
    assert len(mapped["instances"]) == sum(not crowd for _, _, crowd in VISDRONE_OBJECTS)
