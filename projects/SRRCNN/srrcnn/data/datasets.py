"""Register srrcnn_shapes variants and COCO-format datasets in detectron2's catalogs.

srrcnn_shapes variants are generated on first use (DatasetCatalog.get or ensure_generated) into
$SRRCNN_DATASETS (default "datasets", relative to the working directory, as detectron2 reads
$DETECTRON2_DATASETS), one folder per parameter set, published by an atomic rename. Every variant
has a detail kind (synthetic.DETAIL_KINDS): "checker" (default) or "soft".
"""

import functools
import json
import logging
import os
import shutil
import tempfile

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json, register_coco_instances

from .synthetic import CLASS_NAMES, dataset_dirname, generate_dataset

logger = logging.getLogger(__name__)

ROOT_ENV = "SRRCNN_DATASETS"  # cache root; read when a dataset is registered
# name: (split, num_images, image_size, seed). Registering generates nothing.
DEFAULT_SHAPES = (
    ("srrcnn_shapes_train", ("train", 400, 320, 0)),
    ("srrcnn_shapes_val", ("val", 100, 320, 1)),
    # a separate split (seed 2) to pretrain detectors on (tools/run_evidence.py --pretrain-budget)
    ("srrcnn_shapes_pretrain", ("train", 400, 320, 2)),
    ("srrcnn_shapes_tiny_train", ("train", 8, 256, 0)),  # tests and smoke runs
    ("srrcnn_shapes_tiny_val", ("val", 8, 256, 1)),
    ("srrcnn_shapes_tiny_pretrain", ("train", 8, 256, 2)),
)
# The same splits (sizes, seeds, hence layouts) with detail="soft": small objects' class
# detail is degraded, not erased, by a 0.5x downsample. srrcnn_shapes_soft_train etc.
SOFT_SHAPES = tuple(
    (name.replace("srrcnn_shapes", "srrcnn_shapes_soft", 1), args) for name, args in DEFAULT_SHAPES
)
# Large canvases for sliced inference (docs/LARGE_IMAGES.md): the same objects at the same pixel
# sizes as the 320 px splits on 1280 x 1280 images (object counts scale with the area: ~150 per
# image), so whole-image inference at INPUT.MIN_SIZE_TEST 320 shrinks them 4x and 320 px slices
# keep them at training scale.
LARGE_SHAPES = (("srrcnn_shapes_large_val", ("val", 12, 1280, 3)),)
COCO_REQUIRED_KEYS = ("images", "annotations", "categories")


def get_datasets_root():
    """Return the cache root: $SRRCNN_DATASETS, else "datasets" (relative to the working dir)."""
    return os.path.expanduser(os.getenv(ROOT_ENV, "datasets"))


def variant_paths(root, split, num_images, image_size, seed, detail="checker"):
    """Return (json_file, image_root) of root/<dirname>/<split>_n<N>_s<size>_seed<seed>/.

    <dirname> is srrcnn_shapes_vV for the default detail kind, srrcnn_shapes_<detail>_vV else.
    """
    subdir = f"{split}_n{num_images}_s{image_size}_seed{seed}"
    folder = os.path.join(root, dataset_dirname(detail), subdir)
    return os.path.join(folder, "annotations.json"), os.path.join(folder, "images")


def ensure_dataset(root, split, num_images, image_size, seed, detail="checker"):
    """Generate a variant under ``root`` unless present; safe when several processes race.

    Generation goes to a temporary folder beside the final one and one atomic rename publishes
    it; a process that loses the race discards its copy and uses the winner's.
    Returns (json_file, image_root).
    """
    json_file, image_root = variant_paths(root, split, num_images, image_size, seed, detail)
    if os.path.isfile(json_file):
        return json_file, image_root
    folder = os.path.dirname(json_file)
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp_{os.path.basename(folder)}_", dir=parent)
    try:
        logger.info("Generating %s (first use) ...", folder)
        generate_dataset(tmp, num_images, image_size, seed, detail=detail)
        try:
            os.rename(tmp, folder)  # atomic; fails when another process published first
        except OSError:
            if not os.path.isfile(json_file):
                raise
            logger.info("Another process generated %s first; using it", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
    return json_file, image_root


def _load_shapes(name, root, split, num_images, image_size, seed, detail):
    """DatasetCatalog loader: generate if missing, then return detectron2 dicts (list[dict])."""
    json_file, image_root = ensure_dataset(root, split, num_images, image_size, seed, detail)
    return load_coco_json(json_file, image_root, name)


def register_srrcnn_shapes(name, split, num_images, image_size, seed, root=None, detail="checker"):
    """Register a srrcnn_shapes variant lazily: nothing is generated until it is first loaded.

    Metadata gets evaluator_type "coco", thing_classes and the (deterministic) json_file and
    image_root; call :func:`ensure_generated` before building a COCOEvaluator on a dataset that
    has not been loaded yet. Registering the same name again with the same parameters is a no-op.

    Args:
        name (str): dataset name, e.g. "srrcnn_shapes_train".
        split (str): a label for the folder name ("train", "val", ...); content depends on seed.
        num_images (int): number of images.
        image_size (int): image height and width in pixels (>= 128; large objects need >= 256).
        seed (int): generator seed.
        root (str or None): cache root; None reads $SRRCNN_DATASETS (default "datasets").
        detail (str): how class patterns are rendered, one of synthetic.DETAIL_KINDS: "checker"
            (erased on small objects by 0.5x) or "soft" (degraded but partly kept by 0.5x).
    """
    root = get_datasets_root() if root is None else root
    json_file, image_root = variant_paths(root, split, num_images, image_size, seed, detail)
    params = dict(
        root=root,
        split=split,
        num_images=num_images,
        image_size=image_size,
        seed=seed,
        detail=detail,
    )
    if name in DatasetCatalog.list():
        if getattr(MetadataCatalog.get(name), "srrcnn_shapes", None) == params:
            return
        raise ValueError(
            f"Dataset {name!r} is already registered with other parameters; choose another name "
            f"or DatasetCatalog.remove / MetadataCatalog.remove it first (wanted {params})."
        )
    DatasetCatalog.register(name, functools.partial(_load_shapes, name, **params))
    MetadataCatalog.get(name).set(
        evaluator_type="coco",
        thing_classes=list(CLASS_NAMES),
        thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(CLASS_NAMES))},
        json_file=json_file,
        image_root=image_root,
        srrcnn_shapes=params,
    )


def ensure_generated(name):
    """Generate a registered srrcnn_shapes dataset if missing; return its json_file.

    For datasets registered otherwise (e.g. :func:`register_coco_dataset`), only returns the
    metadata's json_file: None for YOLO and VisDrone folders, which COCOEvaluator converts to
    COCO json itself. Call before building a COCOEvaluator, which reads that file.
    """
    if name not in DatasetCatalog.list():
        raise KeyError(f"Dataset {name!r} is not registered")
    metadata = MetadataCatalog.get(name)
    params = getattr(metadata, "srrcnn_shapes", None)
    if params is not None:
        return ensure_dataset(**params)[0]
    return getattr(metadata, "json_file", None)


def register_default_datasets(root=None):
    """Register the DEFAULT_SHAPES, SOFT_SHAPES and LARGE_SHAPES names (cheap: generates nothing).

    ``root`` as in register_srrcnn_shapes.
    """
    for names, detail in ((DEFAULT_SHAPES, "checker"), (SOFT_SHAPES, "soft"),
                          (LARGE_SHAPES, "checker")):
        for name, (split, num_images, image_size, seed) in names:
            register_srrcnn_shapes(
                name, split, num_images, image_size, seed, root=root, detail=detail
            )


def register_coco_dataset(name, json_file, image_root):
    """Register any COCO-format instances dataset, checking its files now rather than at load time.

    Parses ``json_file`` once (full COCO train2017 takes some seconds) to set thing_classes.

    Raises:
        FileNotFoundError: ``json_file`` or ``image_root`` does not exist (the path is named).
        ValueError: ``json_file`` is not valid JSON or lacks "images", "annotations" or
            "categories"; or ``name`` is already registered with other files.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO annotation file not found: {json_file}")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"COCO image folder not found: {image_root}")
    try:
        with open(json_file) as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Malformed COCO annotation file {json_file}: not valid JSON ({e})") from e
    missing = [k for k in COCO_REQUIRED_KEYS if not isinstance(coco, dict) or k not in coco]
    if missing:
        raise ValueError(f"Malformed COCO annotation file {json_file}: missing keys {missing}")
    if name in DatasetCatalog.list():
        metadata = MetadataCatalog.get(name)
        if (getattr(metadata, "json_file", None), getattr(metadata, "image_root", None)) == (
            json_file,
            image_root,
        ):
            return
        raise ValueError(f"Dataset {name!r} is already registered with other files")
    categories = sorted(coco["categories"], key=lambda c: c["id"])  # load_coco_json's order
    register_coco_instances(name, {}, json_file, image_root)
    MetadataCatalog.get(name).thing_classes = [c["name"] for c in categories]
