"""Tests of the thesis's COCO protocol: tools/make_coco_subset.py, register_coco_subsets, configs.

A small fake COCO json (50 images, 120 annotations, 3 categories) stands in for train2017.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

from srrcnn import add_srrcnn_config
from srrcnn.data import COCO_SUBSETS, register_coco_subsets, subset_paths
from srrcnn.testing import CONFIG_DIR, REPO_ROOT

TOOL = os.path.join(REPO_ROOT, "tools", "make_coco_subset.py")
_spec = importlib.util.spec_from_file_location("make_coco_subset", TOOL)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

NUM_IMAGES, NUM_ANNOTATIONS = 50, 120
COCO_TRAIN2017_IMAGES = 118287


def fake_coco(categories=None, num_images=NUM_IMAGES, num_annotations=NUM_ANNOTATIONS, seed=0):
    """A COCO instances dict; ids are not contiguous, the json order is shuffled, and some images
    have no annotation. Areas span small, medium and large."""
    rng = np.random.default_rng(seed)
    if categories is None:
        categories = [{"id": i, "name": f"c{i}", "supercategory": "s"} for i in (1, 3, 7)]
    image_ids = rng.permutation(np.arange(num_images) * 3 + 5).tolist()
    images = [
        {"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480, "license": 1}
        for i in image_ids
    ]
    annotated = image_ids[: num_images - 8]  # 8 images without annotations
    annotations = []
    for k in range(num_annotations):
        side = float(rng.choice([10, 20, 50, 80, 120, 200]))
        x, y = float(rng.integers(0, 400)), float(rng.integers(0, 250))
        annotations.append({
            "id": 1000 + 7 * k,
            "image_id": annotated[int(rng.integers(len(annotated)))],
            "category_id": categories[int(rng.integers(len(categories)))]["id"],
            "bbox": [x, y, side, side],
            "area": side * side,
            "segmentation": [[x, y, x + side, y, x + side, y + side, x, y + side]],
            "iscrowd": 0,
        })
    annotations = [annotations[i] for i in rng.permutation(len(annotations))]
    return {
        "info": {"description": "fake"},
        "licenses": [{"id": 1, "name": "l"}],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }


def write(obj, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def coco_json(tmp_path):
    return write(fake_coco(), tmp_path / "instances_train2017.json")


def image_ids(coco):
    return {im["id"] for im in coco["images"]}


def test_deterministic_bytes_independent_of_json_order(coco_json, tmp_path):
    shuffled = fake_coco()
    shuffled["images"].reverse()
    shuffled["annotations"].reverse()
    other = write(shuffled, tmp_path / "other" / "instances_train2017.json")
    outs = [
        tool.make_coco_subset(coco_json, 0.2, 0, out=str(tmp_path / "a.json")),
        tool.make_coco_subset(coco_json, 0.2, 0, out=str(tmp_path / "b.json")),
        tool.make_coco_subset(other, 0.2, 0, out=str(tmp_path / "c.json")),
    ]
    data = [open(p, "rb").read() for p in outs]
    assert data[0] == data[1] == data[2]
    seed1 = read(tool.make_coco_subset(coco_json, 0.2, 1, out=str(tmp_path / "d.json")))
    assert image_ids(seed1) != image_ids(read(outs[0]))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]  # atomic write cleaned up


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 1.0])
def test_whole_images_with_all_their_annotations(coco_json, fraction):
    full = read(coco_json)
    sub = tool.make_subset(full, fraction, seed=0)
    chosen = image_ids(sub)
    assert len(chosen) == round(fraction * NUM_IMAGES) == len(sub["images"])
    expected = sorted(a["id"] for a in full["annotations"] if a["image_id"] in chosen)
    assert [a["id"] for a in sub["annotations"]] == expected  # all of chosen, none of the rest
    for key in ("categories", "info", "licenses"):
        assert sub[key] == full[key]
    assert [im["id"] for im in sub["images"]] == sorted(chosen)


def test_nested_fractions(coco_json):
    """Same seed: 10 % is the head of the permutation that gives 20 %, so 10 % is inside 20 %."""
    full = read(coco_json)
    ids = [image_ids(tool.make_subset(full, f, seed=0)) for f in (0.1, 0.2, 0.5)]
    assert ids[0] < ids[1] < ids[2]


def test_drop_empty_images(coco_json):
    full = read(coco_json)
    annotated = {a["image_id"] for a in full["annotations"]}
    sub = tool.make_subset(full, 0.5, seed=0, keep_empty=False)
    assert image_ids(sub) <= annotated and len(sub["images"]) == round(0.5 * len(annotated))
    kept = tool.make_subset(full, 1.0, seed=0)  # default: empty images are candidates too
    assert len(kept["images"]) == NUM_IMAGES


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, math.nan])
def test_bad_fraction(coco_json, fraction):
    with pytest.raises(ValueError, match="fraction"):
        tool.make_coco_subset(coco_json, fraction, 0)


def test_missing_json_names_path(tmp_path):
    missing = str(tmp_path / "nowhere" / "instances_train2017.json")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tool.make_coco_subset(missing, 0.1, 0)


def test_cli_default_output_is_the_registered_file(tmp_path):
    """Default --json and --out under $DETECTRON2_DATASETS land where registration looks."""
    write(fake_coco(), tmp_path / "coco" / "annotations" / "instances_train2017.json")
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path))
    run = subprocess.run([sys.executable, TOOL, "--fraction", "0.1", "--seed", "0"], env=env,
                         capture_output=True, text=True, check=True)
    json_file = subset_paths(str(tmp_path), 0.1, 0)[0]
    assert json_file.endswith("instances_train2017_10pct_seed0.json")
    assert os.path.isfile(json_file) and json_file in run.stderr
    assert "5 of 50 images" in run.stderr and "small" in run.stderr  # one-line summary
    run = subprocess.run([sys.executable, TOOL, "--fraction", "0.1"],
                         env=dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "empty")),
                         capture_output=True, text=True)
    assert run.returncode == 2 and str(tmp_path / "empty") in run.stderr
    assert "Traceback" not in run.stderr


def test_registration_is_lazy(tmp_path, catalog_names):
    name = f"test_coco_10pct_{uuid.uuid4().hex[:8]}"
    catalog_names.append(name)
    subsets = ((name, (0.1, 0)),)
    register_coco_subsets(root=str(tmp_path), subsets=subsets)  # no files: no error
    register_coco_subsets(root=str(tmp_path), subsets=subsets)  # idempotent
    metadata = MetadataCatalog.get(name)
    assert metadata.thing_classes == MetadataCatalog.get("coco_2017_val").thing_classes
    assert metadata.evaluator_type == "coco"
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get(name)
    assert subset_paths(str(tmp_path), 0.1, 0)[0] in str(e.value)
    assert "python tools/make_coco_subset.py --fraction 0.1 --seed 0" in str(e.value)


def test_registered_subset_loads(tmp_path, catalog_names):
    categories = [c for c in COCO_CATEGORIES if c["isthing"]]  # builtin metadata: 80 classes
    full = write(fake_coco(categories), tmp_path / "coco" / "annotations" / "instances_train2017.json")
    tool.make_coco_subset(full, 0.2, 0)
    name = f"test_coco_20pct_{uuid.uuid4().hex[:8]}"
    catalog_names.append(name)
    register_coco_subsets(root=str(tmp_path), subsets=((name, (0.2, 0)),))
    records = DatasetCatalog.get(name)
    assert len(records) == round(0.2 * NUM_IMAGES)
    assert all(r["file_name"].startswith(str(tmp_path / "coco" / "train2017")) for r in records)
    assert all(0 <= a["category_id"] < 80 for r in records for a in r["annotations"])


def test_default_names_registered():
    assert [n for n, _ in COCO_SUBSETS] == ["coco_2017_train_10pct", "coco_2017_train_20pct"]
    assert {"coco_2017_train_10pct", "coco_2017_train_20pct"} <= set(DatasetCatalog.list())


def _load(name):
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIG_DIR, "coco_subsets", name))
    return cfg


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        out.update(_flat(v, prefix + k + ".") if isinstance(v, dict) else {prefix + k: v})
    return out


@pytest.mark.parametrize("pct", [10, 20])
def test_subset_configs(pct):
    base, sr = (_load(f"{m}_R_50_FPN_{pct}pct.yaml") for m in ("mask_rcnn", "sr_rcnn"))
    images = round(pct / 100 * COCO_TRAIN2017_IMAGES)  # 11829 / 23657
    for cfg in (base, sr):
        assert cfg.DATASETS.TRAIN == (f"coco_2017_train_{pct}pct",)
        assert cfg.DATASETS.TEST == ("coco_2017_val",)
        batch = cfg.SOLVER.IMS_PER_BATCH
        # 24 epochs, LR x0.1 at epochs 16 and 22 (SPEC §4), whole iterations
        assert cfg.SOLVER.MAX_ITER == math.floor(24 * images / batch + 0.5)
        assert tuple(cfg.SOLVER.STEPS) == tuple(math.floor(e * images / batch + 0.5) for e in (16, 22))
    assert (base.SOLVER.IMS_PER_BATCH, sr.SOLVER.IMS_PER_BATCH) == (16, 6)
    a, b = _flat(base), _flat(sr)
    assert {k for k in a if a[k] != b[k]} == {
        "MODEL.META_ARCHITECTURE", "MODEL.ROI_HEADS.NAME", "OUTPUT_DIR",
        "SOLVER.IMS_PER_BATCH", "SOLVER.BASE_LR", "SOLVER.REFERENCE_WORLD_SIZE",
        "SOLVER.MAX_ITER", "SOLVER.STEPS",
    }
