"""Tests of srrcnn.data: the synthetic srrcnn_shapes generator and the dataset registration."""

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from srrcnn.data import datasets, synthetic

SHARE_TOLERANCE = 0.03  # documented vs measured size-bin share, absolute
MAIN_SIZE = 320  # image size of the main splits
SOFT_LR_ACCURACY = (0.45, 0.75)  # "soft" detail at 0.5x: clearly above chance, clearly below 1x


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def main_split(tmp_path_factory):
    """A 40-image variant at the main image size (about 340 instances, a few seconds)."""
    out = tmp_path_factory.mktemp("main")
    synthetic.generate_dataset(str(out), 40, MAIN_SIZE, seed=0)
    with open(out / "annotations.json") as f:
        return out, json.load(f)


def test_determinism(tmp_path):
    for sub, seed in (("a", 0), ("b", 0), ("c", 1)):
        synthetic.generate_dataset(str(tmp_path / sub), 6, 128, seed)
    a, b, c = (_read(tmp_path / sub / "annotations.json") for sub in "abc")
    assert a == b and a != c
    names = sorted(os.listdir(tmp_path / "a" / "images"))
    assert len(names) == 6
    for name in names:
        assert _read(tmp_path / "a" / "images" / name) == _read(tmp_path / "b" / "images" / name)


def test_soft_detail_keeps_layout(tmp_path):
    """detail="soft" changes only the pattern pixels; the default kind keeps its folder and json."""
    for detail in synthetic.DETAIL_KINDS:
        synthetic.generate_dataset(str(tmp_path / detail), 2, 128, seed=0, detail=detail)
    with open(tmp_path / "checker" / "annotations.json") as f:
        checker = json.load(f)
    with open(tmp_path / "soft" / "annotations.json") as f:
        soft = json.load(f)
    assert "detail" not in checker["info"] and soft["info"]["detail"] == "soft"
    assert soft["annotations"] == checker["annotations"] and soft["images"] == checker["images"]
    name = checker["images"][0]["file_name"]
    images = [cv2.imread(str(tmp_path / d / "images" / name)) for d in synthetic.DETAIL_KINDS]
    changed = (images[0] != images[1]).any(axis=2).mean()
    assert 0 < changed < 0.2, changed  # only the class patterns differ
    assert synthetic.dataset_dirname() == synthetic.DATASET_DIRNAME == "srrcnn_shapes_v1"
    assert synthetic.dataset_dirname("soft") == "srrcnn_shapes_soft_v1"
    with pytest.raises(ValueError, match="detail"):
        synthetic.generate_dataset(str(tmp_path / "bad"), 1, 128, seed=0, detail="blurry")


def test_validity(main_split):
    out, coco = main_split
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    image = cv2.imread(str(out / "images" / coco["images"][0]["file_name"]))
    assert image.shape == (MAIN_SIZE, MAIN_SIZE, 3)
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(synthetic.CLASS_NAMES) + 1))
    assert len(coco["annotations"]) > 200
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
        assert 0 < ann["area"] <= w * h and ann["iscrowd"] == 0
        assert 1 <= ann["category_id"] <= len(synthetic.CLASS_NAMES)
        assert ann["segmentation"] and all(len(p) >= 6 for p in ann["segmentation"])
        points = np.concatenate([np.reshape(p, (-1, 2)) for p in ann["segmentation"]])
        assert (points >= [x - 0.5, y - 0.5]).all() and (points <= [x + w + 0.5, y + h + 0.5]).all()
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])


def test_size_bin_shares(main_split):
    _, coco = main_split
    bins = np.array([synthetic.area_bin(a["area"]) for a in coco["annotations"]])
    measured = np.bincount(bins, minlength=3) / len(bins)
    expected = synthetic.expected_bin_shares(MAIN_SIZE)
    assert expected == (0.5, 0.3, 0.2)
    np.testing.assert_allclose(measured, expected, atol=SHARE_TOLERANCE)
    # Below 256 px large objects do not fit: they leave the schedule (documented).
    assert synthetic.expected_bin_shares(128) == (0.625, 0.375, 0.0)


def _detail_features(rng, class_id, count, canvas=48, crop=12, detail="checker"):
    """High-pass magnitude of the central ``crop`` x ``crop`` pixels of ``count`` small objects.

    Returns (count, crop * crop) at 1x and the same after a 0.5x INTER_AREA round trip.
    """
    hr, lr = [], []
    for _ in range(count):
        side = rng.uniform(*synthetic.BIN_SIDE_RANGES[0])
        patch, mask = synthetic.render_object(rng, side, class_id, angle=0.0, detail=detail)
        image = np.full((canvas, canvas, 3), rng.uniform(40, 215), np.float32)
        h, w = mask.shape
        y0, x0 = (canvas - h) // 4 * 2, (canvas - w) // 4 * 2  # even, as the generator pastes
        image[y0 : y0 + h, x0 : x0 + w][mask] = patch[mask]
        grey = image.mean(axis=2) + rng.normal(0.0, 4.0, (canvas, canvas))
        half = cv2.resize(grey, (canvas // 2, canvas // 2), interpolation=cv2.INTER_AREA)
        back = cv2.resize(half, (canvas, canvas), interpolation=cv2.INTER_LINEAR)
        lo = (canvas - crop) // 2
        for img, out in ((grey, hr), (back, lr)):
            f = np.abs(img - cv2.blur(img, (3, 3)))[lo : lo + crop, lo : lo + crop].ravel()
            out.append(f / np.linalg.norm(f))
    return np.array(hr), np.array(lr)


def _separability(per_class):
    """Nearest-class-mean accuracy (half to fit, half to test) and between/within mean distance."""
    fit = [f[: len(f) // 2] for f in per_class]
    means = np.array([f.mean(axis=0) for f in fit])
    test = [f[len(f) // 2 :] for f in per_class]
    hits = [
        np.argmin(((t[:, None] - means[None]) ** 2).sum(-1), axis=1) == c
        for c, t in enumerate(test)
    ]
    within = np.mean([np.linalg.norm(f - means[c], axis=1).mean() for c, f in enumerate(fit)])
    between = np.mean(
        [np.linalg.norm(m1 - m2) for i, m1 in enumerate(means) for m2 in means[i + 1 :]]
    )
    return np.mean(hits), between / within


def _half_resolution_separability(detail, count=60, seed=0):
    """(accuracy, between/within ratio) of ``count`` small instances per class at 1x and 0.5x."""
    rng = np.random.default_rng(seed)
    feats = [
        _detail_features(rng, c, count, detail=detail) for c in range(len(synthetic.CLASS_NAMES))
    ]
    return _separability([f[0] for f in feats]), _separability([f[1] for f in feats])


def test_detail_vanishes_at_half_resolution():
    """Small instances: classes separate at 1x; at 0.5x their mean images nearly coincide."""
    (acc_hr, ratio_hr), (acc_lr, ratio_lr) = _half_resolution_separability("checker")
    chance = 1.0 / len(synthetic.CLASS_NAMES)
    assert acc_hr >= 0.7 and acc_lr <= chance + 0.15, (acc_hr, acc_lr)
    assert ratio_lr < 0.3 * ratio_hr, (ratio_hr, ratio_lr)


def test_soft_detail_degrades_at_half_resolution():
    """detail="soft": small instances separate at 1x; at 0.5x accuracy drops, but only partly."""
    (acc_hr, ratio_hr), (acc_lr, ratio_lr) = _half_resolution_separability("soft")
    assert acc_hr >= 0.8, acc_hr
    assert SOFT_LR_ACCURACY[0] <= acc_lr <= min(SOFT_LR_ACCURACY[1], acc_hr - 0.15), acc_lr
    assert 0.3 * ratio_hr < ratio_lr < ratio_hr, (ratio_hr, ratio_lr)


def test_register_and_load(tmp_path, monkeypatch, catalog_names):
    root, cwd = tmp_path / "root", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv(datasets.ROOT_ENV, str(root))
    monkeypatch.chdir(cwd)
    name = "test_srrcnn_shapes_register"
    catalog_names.append(name)
    datasets.register_srrcnn_shapes(name, "train", 4, 128, seed=3)
    datasets.register_srrcnn_shapes(name, "train", 4, 128, seed=3)  # same parameters: no-op
    with pytest.raises(ValueError, match=name):
        datasets.register_srrcnn_shapes(name, "train", 4, 128, seed=4)
    metadata = MetadataCatalog.get(name)
    assert metadata.evaluator_type == "coco"
    assert metadata.thing_classes == list(synthetic.CLASS_NAMES)
    assert not os.path.exists(metadata.json_file)  # registration generates nothing
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 4 and os.path.isfile(metadata.json_file)
    assert os.path.join(str(root), "srrcnn_shapes_v1", "train_n4_s128_seed3") in metadata.json_file
    annotations = [a for d in dicts for a in d["annotations"]]
    assert annotations and all(a["bbox_mode"] == BoxMode.XYWH_ABS for a in annotations)
    assert {a["category_id"] for a in annotations} <= set(range(len(synthetic.CLASS_NAMES)))
    assert all(os.path.isfile(d["file_name"]) and d["height"] == 128 for d in dicts)
    assert os.listdir(cwd) == [] and os.listdir(root) == ["srrcnn_shapes_v1"]
    assert os.listdir(root / "srrcnn_shapes_v1") == ["train_n4_s128_seed3"]  # no temp folder left

    other = "test_srrcnn_shapes_ensure"
    catalog_names.append(other)
    datasets.register_srrcnn_shapes(other, "val", 2, 128, seed=5)
    json_file = datasets.ensure_generated(other)
    assert json_file == MetadataCatalog.get(other).json_file and os.path.isfile(json_file)


def test_lost_race_uses_winner(tmp_path, monkeypatch):
    """If another process publishes the variant first, its copy is kept and ours discarded."""
    generate = datasets.generate_dataset

    def racing_generate(out_dir, num_images, image_size, seed, detail):
        winner = os.path.dirname(datasets.variant_paths(str(tmp_path), "x", 2, 128, 0)[0])
        generate(winner, num_images, image_size, seed, detail)  # the other process, first
        with open(os.path.join(winner, "winner"), "w"):
            pass
        generate(out_dir, num_images, image_size, seed, detail)

    monkeypatch.setattr(datasets, "generate_dataset", racing_generate)
    json_file, image_root = datasets.ensure_dataset(str(tmp_path), "x", 2, 128, 0)
    folder = os.path.dirname(json_file)
    assert os.path.isfile(os.path.join(folder, "winner")) and len(os.listdir(image_root)) == 2
    assert os.listdir(os.path.dirname(folder)) == [os.path.basename(folder)]


def test_import_registers_defaults_and_generates_nothing(tmp_path):
    names = set(DatasetCatalog.list())
    assert {name for name, _ in datasets.DEFAULT_SHAPES} <= names
    assert "srrcnn_shapes_train" in names and "srrcnn_shapes_tiny_val" in names
    env = {k: v for k, v in os.environ.items() if k != datasets.ROOT_ENV}
    code = (
        "import srrcnn.data, detectron2.data as d; assert 'srrcnn_shapes_val' in d.DatasetCatalog"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
    assert os.listdir(tmp_path) == []


def test_soft_names_registered(tmp_path, monkeypatch, catalog_names):
    """The srrcnn_shapes_soft_* twins: same splits as the defaults, own cache folder, loadable."""
    splits = ("train", "val", "pretrain", "tiny_train", "tiny_val", "tiny_pretrain")
    assert [name for name, _ in datasets.SOFT_SHAPES] == [f"srrcnn_shapes_soft_{s}" for s in splits]
    for (name, args), (soft_name, soft_args) in zip(datasets.DEFAULT_SHAPES, datasets.SOFT_SHAPES):
        params = MetadataCatalog.get(name).srrcnn_shapes
        soft_params = MetadataCatalog.get(soft_name).srrcnn_shapes
        assert args == soft_args and params["detail"] == "checker"
        assert soft_params == dict(params, detail="soft")
        assert f"{os.sep}srrcnn_shapes_v1{os.sep}" in MetadataCatalog.get(name).json_file
        assert f"{os.sep}srrcnn_shapes_soft_v1{os.sep}" in MetadataCatalog.get(soft_name).json_file

    monkeypatch.setenv(datasets.ROOT_ENV, str(tmp_path))
    name = "test_srrcnn_shapes_soft"
    catalog_names.append(name)
    datasets.register_srrcnn_shapes(name, "val", 2, 128, seed=5, detail="soft")
    with pytest.raises(ValueError, match=name):  # same split, other detail kind: another dataset
        datasets.register_srrcnn_shapes(name, "val", 2, 128, seed=5)
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 2 and os.listdir(tmp_path) == ["srrcnn_shapes_soft_v1"]


def test_register_coco_errors(tmp_path, catalog_names):
    images = tmp_path / "images"
    missing_json, missing_dir = tmp_path / "missing.json", tmp_path / "no_images"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing_json))):
        datasets.register_coco_dataset("test_coco_a", str(missing_json), str(images))
    good = tmp_path / "good.json"
    coco = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "thing"}]}
    good.write_text(json.dumps(coco))
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing_dir))):
        datasets.register_coco_dataset("test_coco_a", str(good), str(missing_dir))
    images.mkdir()
    not_json, no_keys = tmp_path / "not_json.json", tmp_path / "no_keys.json"
    not_json.write_text("{ this is not json")
    no_keys.write_text(json.dumps({"images": []}))
    for bad in (not_json, no_keys):
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            datasets.register_coco_dataset("test_coco_a", str(bad), str(images))
    assert "test_coco_a" not in DatasetCatalog.list()
    catalog_names.append("test_coco_ok")
    datasets.register_coco_dataset("test_coco_ok", str(good), str(images))
    metadata = MetadataCatalog.get("test_coco_ok")
    assert metadata.evaluator_type == "coco" and metadata.thing_classes == ["thing"]
    assert datasets.ensure_generated("test_coco_ok") == str(good)
    assert DatasetCatalog.get("test_coco_ok") == []
