#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""
Are two checkpoints' shared weights the same? E.g. an SR-RCNN add-on run without SR terms in
D's objective against Mask R-CNN's run of the same seed (docs/SMALL_OBJECTS.md §2g): with
SR-RCNN's own random draws off the global stream (srrcnn/rng.py) their shared weights should
be equal bit for bit at every checkpoint.

    python tools/paired_weights.py output/issue12/mask_rcnn/seed0/model_0000149.pth \\
        output/issue12/sr_rcnn_double_reader/seed0/model_0000149.pth

Prints, for the weights of the first checkpoint's model that the second also holds: how many
are bit-identical, the largest absolute difference, and the weights only one of them holds.
Exit status 0 when all shared weights are identical, 1 otherwise.
"""
import argparse
import sys

import torch


def load_model_state(path):
    """The ``model`` state dict of a detectron2 checkpoint (or a bare state dict)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        sys.exit(f"paired_weights: no checkpoint {path}")
    return ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt


def compare(a, b):
    """(identical names, differing names with their max |a - b|, names only in a, only in b)."""
    same, differ = [], {}
    for name in a.keys() & b.keys():
        x, y = torch.as_tensor(a[name]), torch.as_tensor(b[name])
        if x.shape == y.shape and torch.equal(x, y):
            same.append(name)
        else:
            differ[name] = (float((x.double() - y.double()).abs().max()) if x.shape == y.shape
                            else float("inf"))
    return sorted(same), differ, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first")
    p.add_argument("second")
    args = p.parse_args(argv)
    same, differ, only_a, only_b = compare(load_model_state(args.first), load_model_state(args.second))
    print(f"shared weights: {len(same) + len(differ)}; bit-identical: {len(same)}; "
          f"differing: {len(differ)}" + (f" (largest |difference| {max(differ.values()):.3g})"
                                         if differ else ""))
    for name, d in sorted(differ.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  differs: {name}  max |difference| {d:.3g}")
    print(f"only in the first: {len(only_a)}; only in the second: {len(only_b)}"
          + (f" (e.g. {', '.join(only_b[:3])})" if only_b else ""))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
