#!/usr/bin/env python
"""An oracle for the generator: how much would real 2x features of the small RoIs be worth to a
detector's own head? (issue 12, docs/SMALL_OBJECTS.md)

For every trained run of tools/run_evidence.py in OUT/<variant>/seed<k>/ (model_final.pth and
run.json), evaluate its model again, with the harness's own eval command, in test modes
  hr:            the plain detector (no G),
  size_aware:    G on the RoIs predicted small, merged (SR-RCNN runs only),
  size_aware_x2: the same RoIs pooled instead from a 2x pass of the whole image (the oracle G:
                 what a perfect "1x -> 2x" generator would give this head),
into OUT/<variant>/seed<k>/eval_x2/, and print per variant the mean ± std over seeds of each
mode minus hr (the same weights: exactly paired). A Mask R-CNN run is evaluated as an SR-RCNN
model (MODEL.META_ARCHITECTURE SRRCNN, ROI_HEADS.NAME SRROIHeads): it loads every weight it has;
the generator it lacks is not used by hr and size_aware_x2. Evaluated runs are skipped.

  python tools/x2_oracle.py --out output/issue12 \
      --variants mask_rcnn,sr_rcnn_double_addon,sr_rcnn_double_head,sr_rcnn_double \
      --write docs/results/small_objects_cpu/x2_oracle.md
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SR_OPTS = ["MODEL.META_ARCHITECTURE", "SRRCNN", "MODEL.ROI_HEADS.NAME", "SRROIHeads"]
TRAIN_NET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train_net.py")
KEYS = ("AP", "APs", "APm", "APl")


def oracle_command(run_dir: str, modes: str):
    """The run's eval command (run.json) with the oracle's test modes and output folder, run by
    this Python and this repository's train_net.py."""
    with open(os.path.join(run_dir, "run.json")) as f:
        cmd = list(json.load(f)["eval_command"])
    cmd[:2] = [sys.executable, TRAIN_NET]
    cmd[cmd.index("--test-modes") + 1] = modes
    cmd[len(cmd) - 1 - cmd[::-1].index("OUTPUT_DIR") + 1] = os.path.join(run_dir, "eval_x2")
    return cmd + SR_OPTS


def evaluate(run_dir: str, modes: str) -> dict:
    """{mode: bbox results} of the run, evaluated now unless eval_x2/ holds them."""
    out = os.path.join(run_dir, "eval_x2", "eval_results.json")
    if not os.path.isfile(out):
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        with open(os.path.join(run_dir, "eval_x2.log"), "w") as log:
            code = subprocess.run(oracle_command(run_dir, modes), stdout=log,
                                  stderr=subprocess.STDOUT, env=env).returncode
        if code or not os.path.isfile(out):
            raise SystemExit(f"{run_dir}: oracle eval failed (exit {code}); see "
                             f"{os.path.join(run_dir, 'eval_x2.log')}")
    with open(out) as f:
        return {m: r["bbox"] for m, r in json.load(f)["results"].items()}


def cell(values, signed: bool = True) -> str:
    """mean ± std (signed: with the sign and (k/n), the seeds above 0)."""
    mean = statistics.mean(values)
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    if not signed:
        return f"{mean:.1f}{spread}"
    return f"{mean:+.1f}{spread} ({sum(v > 0 for v in values)}/{len(values)})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="a tools/run_evidence.py --out folder")
    p.add_argument("--variants", required=True, help="comma-separated variant folders in OUT")
    p.add_argument("--write", help="also write the table (Markdown) to this file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    lines = ["| variant | mode − hr | n | " + " | ".join(KEYS) + " |",
             "|---|---|---|" + "---|" * len(KEYS)]
    for variant in args.variants.split(","):
        folder = os.path.join(args.out, variant)
        runs = sorted(d for d in (os.listdir(folder) if os.path.isdir(folder) else [])
                      if os.path.isfile(os.path.join(folder, d, "model_final.pth")))
        if not runs:
            print(f"{folder}: no trained run (model_final.pth) found", file=sys.stderr)
            continue
        modes = "hr,size_aware_x2" if variant.startswith("mask_rcnn") else "hr,size_aware,size_aware_x2"
        results = [evaluate(os.path.join(folder, r), modes) for r in runs]
        for mode in modes.split(",")[1:]:
            diffs = {k: [r[mode][k] - r["hr"][k] for r in results] for k in KEYS}
            lines.append(f"| {variant} | {mode} | {len(runs)} | "
                         + " | ".join(cell(diffs[k]) for k in KEYS) + " |")
        lines.append(f"| {variant} | (hr itself) | {len(runs)} | "
                     + " | ".join(cell([r["hr"][k] for r in results], False) for k in KEYS) + " |")
    text = ("Box AP, mean ± std over seeds of (mode − hr) on the same weights "
            "((k/n): seeds where the mode is higher).\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.write:
        os.makedirs(os.path.dirname(os.path.abspath(args.write)), exist_ok=True)
        with open(args.write, "w") as f:
            f.write(f"`python tools/x2_oracle.py {' '.join(argv)}`\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
