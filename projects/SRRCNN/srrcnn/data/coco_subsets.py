"""Register the thesis's COCO train subsets (SPEC §6, Tables 2-3): coco_2017_train_10pct / _20pct.

Each name is a COCO instances dataset over <root>/coco/annotations/
instances_train2017_<pct>pct_seed<seed>.json (written by tools/make_coco_subset.py) and the images
<root>/coco/train2017, with root = $DETECTRON2_DATASETS (default "datasets"), as detectron2's
builtin.py registers coco_2017_train. Metadata is detectron2's builtin COCO metadata, so class
names and contiguous ids match coco_2017_val. Registration reads no file; loading a subset whose
json is missing raises FileNotFoundError naming the file and the command that creates it.
"""

import functools
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

# name: (fraction of train2017 images, seed of tools/make_coco_subset.py)
COCO_SUBSETS = (
    ("coco_2017_train_10pct", (0.1, 0)),
    ("coco_2017_train_20pct", (0.2, 0)),
)
MAKE_COMMAND = "python tools/make_coco_subset.py --fraction {fraction} --seed {seed}"


def subset_paths(root, fraction, seed):
    """Return (json_file, image_root) of a train2017 subset; the name is the tool's default."""
    pct = f"{round(fraction * 100, 6):g}"  # as tools/make_coco_subset.py's percent_label
    json_file = os.path.join(
        root, "coco", "annotations", f"instances_train2017_{pct}pct_seed{seed}.json"
    )
    return json_file, os.path.join(root, "coco", "train2017")


def _load_subset(name, json_file, image_root, fraction, seed):
    """DatasetCatalog loader: detectron2 dicts (list[dict]) of the subset, or a clear error."""
    if not os.path.isfile(json_file):
        full = os.path.join(os.path.dirname(json_file), "instances_train2017.json")
        command = MAKE_COMMAND.format(fraction=fraction, seed=seed)
        raise FileNotFoundError(
            f"Dataset {name!r}: COCO subset annotation file not found: {json_file}. "
            f"Create it with: {command} --json {full}"
        )
    return load_coco_json(json_file, image_root, name)


def register_coco_subsets(root=None, subsets=COCO_SUBSETS):
    """Register the COCO train2017 subsets lazily; names already registered are skipped.

    Args:
        root (str or None): datasets root holding coco/; None reads $DETECTRON2_DATASETS
            (default "datasets", relative to the working directory).
        subsets (tuple): (name, (fraction, seed)) pairs; default :data:`COCO_SUBSETS`.
    """
    if root is None:
        root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    for name, (fraction, seed) in subsets:
        if name in DatasetCatalog.list():
            continue
        json_file, image_root = subset_paths(root, fraction, seed)
        DatasetCatalog.register(
            name, functools.partial(_load_subset, name, json_file, image_root, fraction, seed)
        )
        MetadataCatalog.get(name).set(
            json_file=json_file,
            image_root=image_root,
            evaluator_type="coco",
            coco_subset=dict(fraction=fraction, seed=seed),
            **_get_builtin_metadata("coco"),
        )
