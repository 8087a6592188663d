#!/usr/bin/env python
"""What the RoI features of small objects hold (issue 12, docs/SMALL_OBJECTS.md §2d-2e).

Two analyses of trained runs (folders with config.yaml and model_final.pth), no training of
the detector. Small objects: ground-truth boxes with sqrt(area) < --max-size in the original
image's pixels.

gap: are the 2x-crop targets of the "full_to_double" pair the features a 2x pass gives?
  In training, G's target for a small RoI is its feature in a 2x pass over a CROP_SIZE window
  around a small object (srrcnn/x2_crops.py); the test-time oracle (size_aware_x2) pools the
  same box from a 2x pass over the whole image. Per small box of the test set this pools, with
  the model's box pooler, from
    1x:       the image's own pass,
    2x:       a pass over the image upsampled 2x (bilinear, as size_aware_x2),
    crop<S>:  a pass over the window of S input pixels centred on the box, upsampled 2x (as
              the training targets; S from --crop-sizes),
    G(1x):    for an SR-RCNN model, its generator on the 1x feature,
  and prints per source its relative distance to the 2x feature (||f - f_2x|| / ||f_2x||,
  mean over boxes), the cosine similarity, the accuracy and mean ground-truth probability of
  the model's own box head on it, and the mean feature norm.

probe: how much class information is in a small object's RoI feature, at each resolution?
  A feature generator (G) can only use what is in its input. For each source (0.5x: the image
  downsampled 0.5x as the thesis's RoI_LR, boxes scaled too; 1x; 2x: upsampled, bilinear), it
  pools the small boxes of --train-dataset and --dataset with the run's frozen backbone and
  trains a fresh probe (3 conv layers and 2 fully connected, AdamW, --epochs) to classify them
  among the foreground classes; it prints the probe's test accuracy and, for reference, the
  model's own head's (foreground classes only). A run trained at 2x input (the ceiling) sees
  its own input as "1x".

  python tools/roi_features.py gap --run output/issue12/mask_rcnn/seed0 --crop-sizes 64,128
  python tools/roi_features.py probe --run output/issue12/mask_rcnn/seed0 \
      output/issue12/mask_rcnn_x2_input/seed0 --write probe.md

--write F: also write the tables to F (Markdown if F ends in .md, else json).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

import srrcnn.data  # noqa: F401  (registers the embedded datasets)
from srrcnn import add_srrcnn_config
from srrcnn.meta_arch import downsample_batch
from srrcnn.x2_crops import X2_SCALE, select_windows, upscale_crops


def load(run_dir: str):
    cfg = get_cfg()
    add_srrcnn_config(cfg)
    cfg.set_new_allowed(True)
    cfg.merge_from_file(os.path.join(run_dir, "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(os.path.join(run_dir, "model_final.pth"))
    return cfg, model


def small_boxes(cfg, record, max_size: float):
    """The image resized as the model's test input (3, H, W) and its ground truth (Instances)
    with sqrt(area) < max_size in the original image's pixels."""
    image = utils.read_image(record["file_name"], format=cfg.INPUT.FORMAT)
    tr = T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST).get_transform(image)
    scale = tr.new_h / tr.h if isinstance(tr, T.ResizeTransform) else 1.0
    image = tr.apply_image(image)
    annos = [utils.transform_instance_annotations(a, [tr], image.shape[:2]) for a in record["annotations"]]
    inst = utils.annotations_to_instances(annos, image.shape[:2])
    keep = inst.gt_boxes.area().sqrt() < max_size * scale
    return torch.as_tensor(image.transpose(2, 0, 1).copy()), inst[keep]


def pool(model, features, boxes):
    heads = model.roi_heads
    return heads.box_pooler([features[f] for f in heads.box_in_features], boxes)


def pyramid(model, images, scale: float, mode: str = "bilinear"):
    """The model's pyramid of the batch resampled by `scale` (1: as it is)."""
    x = images.tensor
    if scale != 1:
        x = downsample_batch(x, scale, mode, model.backbone.size_divisibility)
    return model.backbone(x)


def head_probabilities(model, roi_features):
    """(R, K + 1) softmax of the model's own box head and predictor."""
    scores, _ = model.roi_heads.box_predictor(model.roi_heads.box_head(roi_features))
    return F.softmax(scores, dim=1)


def table(title, header, rows):
    return [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(r) + " |" for r in rows] + [""]


# ---- gap ----------------------------------------------------------------------------------

@torch.no_grad()
def gap(cfg, model, records, crop_sizes, max_size):
    """{source: statistics} over the small boxes of `records` (see the module docstring)."""
    feats, labels = {}, []
    for record in records:
        image, gt = small_boxes(cfg, record, max_size)
        if len(gt) == 0:
            continue
        images = model.preprocess_image([{"image": image}])
        h, w = images.image_sizes[0]
        feats.setdefault("1x", []).append(pool(model, pyramid(model, images, 1), [gt.gt_boxes]))
        feats.setdefault("2x", []).append(
            pool(model, pyramid(model, images, X2_SCALE), [Boxes(gt.gt_boxes.tensor * X2_SCALE)]))
        labels.append(gt.gt_classes)
        for size in crop_sizes:
            # one window per box, centred on it as in training (images smaller than a window: none)
            windows = [select_windows([gt[i:i + 1]], [(h, w)], size, float("inf"), 1) for i in range(len(gt))]
            if any(len(win) == 0 for win in windows):
                raise SystemExit(f"{record['file_name']}: image {h}x{w} smaller than a {size} px crop")
            windows = torch.cat(windows)
            crops = upscale_crops(images.tensor, windows, size)
            shift = windows[:, 1:3].repeat(1, 2)
            boxes = [Boxes(((gt.gt_boxes.tensor[i] - shift[i]) * X2_SCALE)[None]) for i in range(len(gt))]
            feats.setdefault(f"crop{size}", []).append(pool(model, model.backbone(crops), boxes))
    labels = torch.cat(labels)
    feats = {k: torch.cat(v) for k, v in feats.items()}
    generator = getattr(model.roi_heads, "generator", None)
    if generator is not None:  # what an SR-RCNN's G makes of the 1x feature
        feats["G(1x)"] = generator(feats["1x"])
    ref = feats["2x"].flatten(1)
    rows = {}
    for name, f in feats.items():
        x = f.flatten(1)
        prob = head_probabilities(model, f)
        rows[name] = dict(
            rel_dist_to_2x=float(((x - ref).norm(dim=1) / ref.norm(dim=1).clamp(min=1e-12)).mean()),
            cosine_to_2x=float(F.cosine_similarity(x, ref, dim=1).mean()),
            head_accuracy=float((prob.argmax(1) == labels).float().mean()),
            gt_probability=float(prob.gather(1, labels[:, None]).mean()),
            feature_norm=float(x.norm(dim=1).mean()))
    return dict(boxes=len(labels), sources=rows)


def gap_lines(run, result):
    rows = [[name, f"{r['rel_dist_to_2x']:.3f}", f"{r['cosine_to_2x']:.3f}", f"{r['head_accuracy']:.3f}",
             f"{r['gt_probability']:.3f}", f"{r['feature_norm']:.1f}"] for name, r in result["sources"].items()]
    return table(f"`{run}`: {result['boxes']} small ground-truth boxes",
                 ["source", "rel. distance to 2x", "cosine to 2x", "head accuracy", "p(gt)", "norm"], rows)


# ---- probe --------------------------------------------------------------------------------

PROBE_SOURCES = {"0.5x": (0.5, "antialias"), "1x": (1.0, None), "2x": (X2_SCALE, "bilinear")}


@torch.no_grad()
def probe_features(cfg, model, records, max_size, sources):
    """{source: (R, C, P, P)}, the labels (R,), and the model's own head's probabilities on 1x."""
    feats, labels, own = {s: [] for s in sources}, [], []
    for record in records:
        image, gt = small_boxes(cfg, record, max_size)
        if len(gt) == 0:
            continue
        images = model.preprocess_image([{"image": image}])
        for name in sources:
            scale, mode = PROBE_SOURCES[name]
            roi = pool(model, pyramid(model, images, scale, mode), [Boxes(gt.gt_boxes.tensor * scale)])
            feats[name].append(roi)
            if name == "1x":
                own.append(head_probabilities(model, roi))
        labels.append(gt.gt_classes)
    return {k: torch.cat(v) for k, v in feats.items()}, torch.cat(labels), (torch.cat(own) if own else None)


class Probe(torch.nn.Module):
    """(R, C, P, P) -> (R, K): 3 conv layers (64 channels) and 2 fully connected (256)."""

    def __init__(self, channels: int, size: int, num_classes: int, width: int = 64):
        super().__init__()
        conv = [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU()]
        for _ in range(2):
            conv += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*conv, torch.nn.Flatten(), torch.nn.Linear(width * size * size, 256),
                                       torch.nn.ReLU(), torch.nn.Linear(256, num_classes))

    def forward(self, x):
        return self.net(x)


def train_probe(x_train, y_train, x_test, y_test, num_classes, epochs, seed=0):
    """Test accuracy of a fresh probe trained on (x_train, y_train); features normalised by the
    training set's per-channel mean and std."""
    torch.manual_seed(seed)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    probe = Probe(x_train.shape[1], x_train.shape[2], num_classes)
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(epochs):
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            loss = F.cross_entropy(probe(x_train[batch]), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float((probe(x_test).argmax(1) == y_test).float().mean())


def probe(cfg, model, train_records, test_records, max_size, sources, epochs):
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    train, y_train, _ = probe_features(cfg, model, train_records, max_size, sources)
    test, y_test, own = probe_features(cfg, model, test_records, max_size, sources)
    rows = {name: dict(probe_accuracy=train_probe(train[name], y_train, test[name], y_test,
                                                  num_classes, epochs)) for name in sources}
    own_acc = None if own is None else float((own[:, :num_classes].argmax(1) == y_test).float().mean())
    return dict(train_boxes=len(y_train), test_boxes=len(y_test), head_accuracy_1x=own_acc, sources=rows)


def probe_lines(run, result):
    rows = [[name, f"{r['probe_accuracy']:.3f}"] for name, r in result["sources"].items()]
    own = result["head_accuracy_1x"]
    title = (f"`{run}`: probes trained on {result['train_boxes']} small boxes, tested on "
             f"{result['test_boxes']}; the model's own head on 1x: "
             + ("-" if own is None else f"{own:.3f}"))
    return table(title, ["source", "probe accuracy"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("analysis", choices=("gap", "probe"))
    p.add_argument("--run", required=True, nargs="+", help="run folders with config.yaml and model_final.pth")
    p.add_argument("--max-size", type=float, default=32.0, help="small: sqrt(box area) below this")
    p.add_argument("--dataset", help="test images; default: the run's DATASETS.TEST[0]")
    p.add_argument("--max-images", type=int, default=100, help="test images used")
    p.add_argument("--crop-sizes", default="64,128", help="gap: crop windows in input pixels")
    p.add_argument("--train-dataset", help="probe: training images; default: the run's DATASETS.TRAIN[0]")
    p.add_argument("--max-train-images", type=int, default=400, help="probe: training images used")
    p.add_argument("--sources", default="0.5x,1x,2x", help="probe: " + ", ".join(PROBE_SOURCES))
    p.add_argument("--epochs", type=int, default=30, help="probe: training epochs")
    p.add_argument("--write", help="also write the tables (.md) or the results (json) to this file")
    args = p.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    for s in sources:
        if s not in PROBE_SOURCES:
            p.error(f"--sources: unknown source {s!r} (one of {', '.join(PROBE_SOURCES)})")
    out, lines = {}, []
    for run in args.run:
        cfg, model = load(run)
        test = DatasetCatalog.get(args.dataset or cfg.DATASETS.TEST[0])[:args.max_images]
        if args.analysis == "gap":
            crop_sizes = [int(s) for s in args.crop_sizes.split(",") if s]
            out[run] = gap(cfg, model, test, crop_sizes, args.max_size)
            new = gap_lines(run, out[run])
        else:
            train = DatasetCatalog.get(args.train_dataset or cfg.DATASETS.TRAIN[0])[:args.max_train_images]
            out[run] = probe(cfg, model, train, test, args.max_size, sources, args.epochs)
            new = probe_lines(run, out[run])
        print("\n".join(new), flush=True)
        lines += new
    if args.write:
        command = "python tools/roi_features.py " + " ".join(sys.argv[1:] if argv is None else argv)
        with open(args.write, "w") as f:
            if args.write.endswith(".md"):
                f.write(f"`{command}`\n\n" + "\n".join(lines))
            else:
                json.dump(dict(command=command, results=out), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
