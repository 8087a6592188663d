#!/usr/bin/env python
"""Multi-seed evidence: train every variant on the same seeds, data and budget; evaluate; summarize.

Variants are config files (configs/evidence/*.yaml: a _BASE_ plus the keys it changes) listed in
configs/evidence/variants.txt, one a line: name, input scale (2x: images at twice --input-size),
test modes, config, table label (--list prints them); the first is the default baseline. Never
rename a variant: its run folders and their run.json are named after it.

Each (variant, seed) run lives in OUT/<variant>/seed<k>/ (train.log, eval.log, run.json: the exact
commands, host.json: the float kernels each training segment and evaluation ran on); a rerun skips
evaluated runs, only evaluates trained ones and resumes the others from their last checkpoint. A run.json that differs from what would run now is an error (use another
--out): results are never overwritten. Then RESULTS.md (mean ± std over seeds, paired
differences to the baseline, per-seed numbers), results.json and results_ap_by_size.png are
written into --docs-dir (default docs/results/evidence, over the committed ones) from the complete
runs (tools/evidence_report.py).

Protocol: from scratch (default), or with --pretrain-budget N fine-tuned: per seed, the harness
first trains --pretrain-config (Mask R-CNN) for N iterations on --pretrain-dataset, a split
separate from the train and test data, into OUT/pretrain/seed<k>/ (resumed and reused like the
runs), and every run of that seed, baseline and SR-RCNN alike, starts from those weights
(MODEL.WEIGHTS; its own schedule still starts at iteration 0).

  python tools/run_evidence.py --seeds 0 1 2 --budget 600 --jobs 2
  python tools/run_evidence.py --seeds 0 1 2 --budget 600 --pretrain-budget 600 --jobs 2
  python tools/run_evidence.py --variants mask_rcnn,sr_rcnn --modes sr,hr --budget 2 --seeds 0 \
      --train-dataset srrcnn_shapes_tiny_train --test-dataset srrcnn_shapes_tiny_val \
      --out output/evidence_tiny --docs-dir output/evidence_tiny/docs \
      SOLVER.IMS_PER_BATCH 2            # trailing KEY VALUE pairs: applied to every run, last

The harness sets SEED, OUTPUT_DIR, DATASETS.*, MODEL.DEVICE, DATALOADER.NUM_WORKERS,
MODEL.WEIGHTS and the schedule (SOLVER.MAX_ITER, STEPS, WARMUP_ITERS, CHECKPOINT_PERIOD, from
--budget or --pretrain-budget) itself.
"""
import argparse
import concurrent.futures
import datetime
import logging
import os
import shlex
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when imported
from evidence_report import read_json, row_label, write_json, write_report  # noqa: E402
from evidence_runs import (  # noqa: E402
    INPUT_KEYS, Job, Pretrain, Run, config_path, execute, pretrain_settings)

from srrcnn.evaluation import TEST_MODE_NAMES  # noqa: E402

logger = logging.getLogger("run_evidence")

INDEX = "configs/evidence/variants.txt"  # relative to the repository root (or absolute)
# set by the harness for every run; the command line's opts may not set them
HARNESS_KEYS = ("OUTPUT_DIR", "SEED", "SOLVER.MAX_ITER", "SOLVER.STEPS", "SOLVER.WARMUP_ITERS",
                "SOLVER.CHECKPOINT_PERIOD", "DATASETS.TRAIN", "DATASETS.TEST", "MODEL.DEVICE",
                "DATALOADER.NUM_WORKERS", "MODEL.WEIGHTS")


def load_variants(index: str = INDEX) -> Dict[str, Dict]:
    """{name: dict(label, config, modes, input_scale)} from the index, in its order; ``config``
    as run.json records it: relative to the repository root (for an index given so)."""
    variants = OrderedDict()
    with open(config_path(index)) as f:
        for i, line in enumerate(f, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                cols = line.split(None, 4)
                if (len(cols) < 5 or cols[1] not in ("1x", "2x") or cols[0] in variants
                        or not set(cols[2].split(",")) <= set(TEST_MODE_NAMES)):
                    raise ValueError(f"{index}:{i}: not 'name 1x|2x modes config label', a "
                                     f"repeated name or an unknown test mode: {line.strip()}")
                name, scale, modes, config, label = cols
                variants[name] = dict(label=label.strip(), modes=modes.split(","),
                                      input_scale=int(scale[0]), config=os.path.normpath(
                                          os.path.join(os.path.dirname(index), config)))
    return variants


VARIANTS = load_variants()
# what --pretrain-budget trains, by default: the baseline's config
PRETRAIN_CONFIG = VARIANTS["mask_rcnn"]["config"]


def protocol(args) -> str:
    """How the runs start (and their image size, if --input-size), for RESULTS.md."""
    size = (f"images resized to {args.input_size} px (a 2x-input variant: "
            f"{2 * args.input_size} px), " if args.input_size else "")
    if not args.pretrain_budget:
        return size + "from scratch"
    model = ("a Mask R-CNN" if args.pretrain_config == PRETRAIN_CONFIG
             else f"a `{args.pretrain_config}` model")
    return (f"{size}fine-tuned from {model} pretrained for {args.pretrain_budget} iterations on "
            f"`{args.pretrain_dataset}` (one per seed)")


def describe_device(args, threads: str) -> str:
    if args.device.startswith("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU visible"
        return f"{gpu} ({args.jobs} run(s) at a time)"
    return (f"CPU, {threads} thread(s) per run ({args.jobs} run(s) at a time, "
            f"{os.cpu_count()} cores)")


def run_device(args, threads: str) -> str:
    """The device the runs in --out were made on: as recorded by the run, else this machine's."""
    path = os.path.join(args.out, "device.txt")
    if args.report_only and os.path.isfile(path):
        with open(path) as f:
            return f.read().strip()
    return describe_device(args, threads)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=600, help="iterations per run (SOLVER.MAX_ITER)")
    p.add_argument("--variants", help=f"comma-separated subset of the variants in {INDEX} "
                   "(default: all; run and shown in the order given; --list prints them)")
    p.add_argument("--modes", help="comma-separated test modes: keep only these of each variant's")
    p.add_argument("--baseline", help="VARIANT[:MODE] compared against, always run (default: the "
                   "first variant chosen, its first test mode)")
    p.add_argument("--train-dataset", default="srrcnn_shapes_train")
    p.add_argument("--test-dataset", default="srrcnn_shapes_val")
    p.add_argument("--pretrain-budget", type=int, default=0, metavar="N",
                   help="fine-tune every run from a model pretrained for N iterations, one per "
                   "seed (into OUT/pretrain/seed<k>/); 0: train from scratch")
    p.add_argument("--pretrain-dataset", default="srrcnn_shapes_pretrain",
                   help="what --pretrain-budget trains on")
    p.add_argument("--pretrain-config", default=PRETRAIN_CONFIG,
                   help="what --pretrain-budget trains (relative to the repository root)")
    p.add_argument("--input-size", type=int, default=0, metavar="S",
                   help="resize every run's images to S px (train and test; a 2x variant's to "
                   "2S); 0: the configs' sizes. Size keys in input pixels (e.g. "
                   "MODEL.SRRCNN.X2.*) are not scaled: pass them as opts")
    p.add_argument("--register-coco", nargs=3, action="append", default=[],
                   metavar=("NAME", "JSON", "IMAGE_DIR"), help="passed on to train_net.py")
    p.add_argument("--out", default="output/evidence", help="runs go to OUT/<variant>/seed<k>/")
    p.add_argument("--docs-dir", default="docs/results/evidence",
                   help="where RESULTS.md, results.json, PNG go")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, OMP_NUM_THREADS = "
                   "cores // JOBS each unless set")
    p.add_argument("--device", default="cpu", help="MODEL.DEVICE of every run (cpu, cuda)")
    p.add_argument("--num-workers", type=int, default=1, help="DATALOADER.NUM_WORKERS")
    p.add_argument("--notes", help="a Markdown file appended to RESULTS.md under 'Notes'")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: write the docs from the runs complete in --out")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides, every run")
    args = p.parse_args(argv)
    args.opts = args.opts[1:] if args.opts[:1] == ["--"] else args.opts
    chosen = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = [n for n in chosen if n not in VARIANTS]
    names = list(OrderedDict.fromkeys(n for n in chosen if n in VARIANTS))  # as given
    base, _, base_mode = (args.baseline or names[0]).partition(":")
    if unknown or base not in VARIANTS:
        p.error(f"unknown variant(s) {unknown or [base]}; known: {', '.join(VARIANTS)}")
    args.variants = [base] + [n for n in names if n != base]
    args.baseline = (base, base_mode or None)
    if len(args.opts) % 2:
        p.error(f"command line opts must be KEY VALUE pairs: {args.opts}")
    fixed = [k for k in args.opts[::2]
             if k in HARNESS_KEYS or (args.input_size and k in INPUT_KEYS)]
    if fixed:
        p.error(f"command line opts set {fixed}: the harness sets these (see --budget, --seeds, "
                "...)")
    if (args.budget < 1 or args.jobs < 1 or args.pretrain_budget < 0 or args.input_size < 0
            or not args.seeds):
        p.error("--budget and --jobs must be >= 1, --pretrain-budget and --input-size >= 0, "
                "--seeds not empty")
    if args.pretrain_budget and not os.path.isfile(config_path(args.pretrain_config)):
        p.error(f"--pretrain-config: config file not found: {config_path(args.pretrain_config)}")
    return p, args


def select_variants(p, args) -> Dict[str, Dict]:
    """The chosen variants (baseline first), modes restricted by --modes; checks config files."""
    keep = args.modes.split(",") if args.modes else None
    out = OrderedDict()
    for name in args.variants:
        v = dict(VARIANTS[name])
        v["modes"] = [m for m in v["modes"] if keep is None or m in keep]
        config = config_path(v["config"])
        if not v["modes"]:
            p.error(f"--modes {args.modes} leaves variant {name} no test mode (it has "
                    f"{VARIANTS[name]['modes']})")
        if not os.path.isfile(config):
            p.error(f"variant {name}: config file not found: {config}")
        out[name] = v
    labels = [row_label(v, m) for v in out.values() for m in v["modes"]]
    if len(set(labels)) < len(labels):
        p.error(f"variants give duplicate table rows {labels}: give them distinct labels")
    mode = args.baseline[1]
    if mode is not None and mode not in out[args.baseline[0]]["modes"]:
        p.error(f"--baseline: {args.baseline[0]} has no test mode {mode!r}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit code (1 if a run failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return _main(argv)
    finally:
        logger.removeHandler(handler)


def _main(argv: List[str]) -> int:
    p, args = parse_args(argv)
    variants = select_variants(p, args)
    if args.list:
        for name, v in variants.items():
            modes = ",".join(v["modes"])
            print(f"{name:30} {v['input_scale']}x {modes:31} {v['config']}  {v['label']}")
        return 0
    if args.notes and not os.path.isfile(args.notes):
        p.error(f"--notes file not found: {args.notes}")
    pretrains = {s: Pretrain(s, args) for s in args.seeds} if args.pretrain_budget else {}
    # variant by variant: with --jobs, the first variants' seeds complete first (and pretrain
    # in parallel)
    runs = [Run(n, variants[n], s, args, pretrains.get(s)) for n in variants for s in args.seeds]
    jobs = list(pretrains.values()) + runs
    states = {j.key: j.state() for j in jobs}  # every manifest checked before anything starts
    todo = [r for r in runs if states[r.key] != "done"]
    to_pretrain = [pt for pt in pretrains.values() if states[pt.key] == "train" and any(
        r.pretrain is pt and states[r.key] == "train" for r in todo)]  # those needed
    for pt in pretrains.values():
        if states[pt.key] == "done":
            logger.info("[skip]  %s: already trained (%s)", pt.key, pt.final)
        elif pt in to_pretrain and args.dry_run:
            print(shlex.join(pt.train_command))
    for r in runs:
        if states[r.key] == "done":
            logger.info("[skip]  %s: already evaluated (%s)", r.key, r.eval_json)
        elif args.dry_run:
            for step in (("train", "eval") if states[r.key] == "train" else ("eval",)):
                print(shlex.join(r.manifest[f"{step}_command"]))
    if args.dry_run:
        return 0
    if args.report_only:
        write_summary(args, argv, variants, jobs, os.environ.get("OMP_NUM_THREADS", "-"))
        return 0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "device.txt"), "w") as f:  # for a later --report-only
        f.write(describe_device(args, os.environ.get("OMP_NUM_THREADS", "-")))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))
    for j in to_pretrain + todo:
        os.makedirs(j.dir, exist_ok=True)
        if not os.path.isfile(os.path.join(j.dir, "run.json")):
            write_json(os.path.join(j.dir, "run.json"), j.manifest)
    errors, pool = [], concurrent.futures.ThreadPoolExecutor(args.jobs)
    try:
        for err in pool.map(lambda r: execute(r, env), todo):
            if err:
                errors.append(err)
                logger.error("[FAILED] %s", err)
    finally:  # on Ctrl-C (which the running train_net.py processes get too) start no other run
        pool.shutdown(cancel_futures=True)
    write_summary(args, argv, variants, jobs, env["OMP_NUM_THREADS"])
    for err in errors:
        logger.error("failed: %s", err.split("\n")[0])
    return 1 if errors else 0


def write_summary(args, argv, variants, jobs: List[Job], threads: str) -> None:
    """The report in --docs-dir (evidence_report.write_report) from the complete runs (``jobs``:
    the runs and the pretrainings, whose times are listed too)."""
    results, timings = OrderedDict(), OrderedDict()
    for r in jobs:
        if isinstance(r, Run) and os.path.isfile(r.eval_json):
            results.setdefault(r.name, {})[f"seed{r.seed}"] = read_json(r.eval_json)["results"]
        times = os.path.join(r.dir, "times.json")
        if os.path.isfile(times):
            timings.setdefault(r.name, {})[f"seed{r.seed}"] = read_json(times)
    command = ["python", "tools/run_evidence.py", *(a for a in argv if a != "--report-only")]
    info = dict(command=command,
                date=f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
                device=run_device(args, threads), budget=args.budget, protocol=protocol(args),
                pretrain=pretrain_settings(args), train_dataset=args.train_dataset,
                test_dataset=args.test_dataset, seeds=args.seeds)
    notes = open(args.notes).read() if args.notes else None
    md, chart = write_report(args.docs_dir, info, variants, args.baseline, results, timings, notes)
    logger.info("Wrote %s, results.json%s (%d of %d runs complete)", md, ", " + chart if chart
                else "", sum(map(len, results.values())), sum(isinstance(r, Run) for r in jobs))


if __name__ == "__main__":
    sys.exit(main())
