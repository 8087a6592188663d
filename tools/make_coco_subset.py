#!/usr/bin/env python
"""Write a deterministic random subset of whole images of a COCO instances json (SPEC §6).

The thesis's COCO protocol trains on 10 % and 20 % of COCO train2017 (Tables 2-3):

  python tools/make_coco_subset.py --fraction 0.1 --seed 0
  python tools/make_coco_subset.py --fraction 0.2 --seed 0

Input (--json): default $DETECTRON2_DATASETS/coco/annotations/instances_train2017.json
($DETECTRON2_DATASETS defaults to ./datasets, as in detectron2's builtin.py). Output (--out):
default next to the input, <input stem>_<pct>pct_seed<seed>.json, e.g.
instances_train2017_10pct_seed0.json, the files srrcnn.data.register_coco_subsets names
coco_2017_train_10pct / _20pct.

Selection: the candidate image ids, sorted ascending (so the json's order does not matter), are
shuffled by numpy.random.default_rng(seed).permutation, and the first round(fraction * N) are
kept with ALL their annotations (crowd ones included). Subsets are nested: for one seed the
10 % subset is contained in the 20 % one. Candidates are all images by default
(--keep-empty); --no-keep-empty drops images without annotations before sampling, so N counts
only annotated images (COCO train2017: 118287 images, 117266 with annotations; detectron2's
DATALOADER.FILTER_EMPTY_ANNOTATIONS drops empty images at training time anyway).
"categories", "info" and "licenses" are copied unchanged. The output is deterministic bytes
(sorted keys, images and annotations sorted by id, no timestamp) written atomically.
Needs only numpy; prints a one-line summary with the small/medium/large share by COCO area.
"""

import argparse
import json
import logging
import os
import sys
import tempfile

import numpy as np

logger = logging.getLogger("make_coco_subset")

SMALL_AREA, LARGE_AREA = 32**2, 96**2  # COCO: small < 32^2 <= medium < 96^2 <= large (SPEC §7)
COPIED_KEYS = ("info", "licenses", "categories")  # copied unchanged when present


def default_json():
    """$DETECTRON2_DATASETS/coco/annotations/instances_train2017.json (root default ./datasets)."""
    root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    return os.path.join(root, "coco", "annotations", "instances_train2017.json")


def check_fraction(fraction):
    """Raise ValueError unless 0 < fraction <= 1."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):  # False for NaN too
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")


def percent_label(fraction):
    """0.1 -> "10", 0.125 -> "12.5": the <pct> of the default output name."""
    return f"{round(fraction * 100, 6):g}"


def default_out(json_file, fraction, seed):
    """<dir of json_file>/<stem>_<pct>pct_seed<seed>.json."""
    stem = os.path.splitext(os.path.basename(json_file))[0]
    name = f"{stem}_{percent_label(fraction)}pct_seed{seed}.json"
    return os.path.join(os.path.dirname(json_file), name)


def select_image_ids(image_ids, fraction, seed):
    """Return the chosen ids, a set: the first round(fraction * N) of a seeded permutation.

    Args:
        image_ids (iterable[int]): candidate image ids (any order; sorted here).
        fraction (float): in (0, 1].
        seed (int): seed of numpy.random.default_rng.
    """
    check_fraction(fraction)
    ids = np.array(sorted(image_ids), dtype=np.int64)
    num = int(round(fraction * len(ids)))
    if num == 0:
        raise ValueError(f"fraction {fraction} of {len(ids)} images selects no image")
    return set(np.random.default_rng(seed).permutation(ids)[:num].tolist())


def make_subset(coco, fraction, seed, keep_empty=True):
    """Return a COCO instances dict holding the chosen images and all of their annotations.

    Args:
        coco (dict): a COCO instances json ("images", "annotations", "categories", ...).
        fraction, seed: as in :func:`select_image_ids`.
        keep_empty (bool): whether images without annotations are candidates.
    """
    annotated = {a["image_id"] for a in coco["annotations"]}
    candidates = [im["id"] for im in coco["images"] if keep_empty or im["id"] in annotated]
    chosen = select_image_ids(candidates, fraction, seed)
    out = {k: coco[k] for k in COPIED_KEYS if k in coco}
    out["images"] = sorted((im for im in coco["images"] if im["id"] in chosen), key=lambda x: x["id"])
    out["annotations"] = sorted(
        (a for a in coco["annotations"] if a["image_id"] in chosen), key=lambda a: a["id"]
    )
    return out


def size_shares(annotations):
    """Return the (small, medium, large) shares of annotations by their COCO "area" field."""
    areas = np.array([a["area"] for a in annotations], dtype=np.float64)
    if len(areas) == 0:
        return 0.0, 0.0, 0.0
    small = float(np.mean(areas < SMALL_AREA))
    large = float(np.mean(areas >= LARGE_AREA))
    return small, 1.0 - small - large, large


def write_json_atomic(obj, path):
    """Write ``obj`` as deterministic JSON bytes to ``path`` via a temporary file + os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp_{os.path.basename(path)}_", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, sort_keys=True, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def make_coco_subset(json_file, fraction, seed, out=None, keep_empty=True):
    """Read ``json_file``, write the subset (default name: :func:`default_out`), return its path.

    Raises:
        FileNotFoundError: ``json_file`` does not exist (the path is named).
        ValueError: ``fraction`` not in (0, 1], or it selects no image.
    """
    check_fraction(fraction)
    if not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"COCO annotation file not found: {json_file} (pass --json, or set "
            "$DETECTRON2_DATASETS to the folder holding coco/annotations/)"
        )
    out = out or default_out(json_file, fraction, seed)
    with open(json_file) as f:
        coco = json.load(f)
    subset = make_subset(coco, fraction, seed, keep_empty=keep_empty)
    write_json_atomic(subset, out)
    small, medium, large = size_shares(subset["annotations"])
    crowd = sum(bool(a.get("iscrowd", 0)) for a in subset["annotations"])
    logger.info(
        "%s: %d of %d images (fraction %g, seed %d, %s), %d annotations (%d crowd); "
        "by area small %.1f%% / medium %.1f%% / large %.1f%%",
        out, len(subset["images"]), len(coco["images"]), fraction, seed,
        "empty images kept" if keep_empty else "empty images dropped",
        len(subset["annotations"]), crowd, 100 * small, 100 * medium, 100 * large,
    )
    return out


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, required=True, help="share of images, in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="numpy default_rng seed (default 0)")
    parser.add_argument("--json", default=None, help=f"input COCO json (default {default_json()})")
    parser.add_argument("--out", default=None, help="output json (default: next to the input, "
                        "<stem>_<pct>pct_seed<seed>.json)")
    parser.add_argument("--keep-empty", action=argparse.BooleanOptionalAction, default=True,
                        help="sample from all images (default) or, with --no-keep-empty, only "
                        "from images with annotations")
    return parser


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argument_parser()
    args = parser.parse_args(argv)
    try:
        return make_coco_subset(args.json or default_json(), args.fraction, args.seed,
                                out=args.out, keep_empty=args.keep_empty)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))  # one line and exit status 2, no traceback


if __name__ == "__main__":
    main(sys.argv[1:])
