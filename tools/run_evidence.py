#!/usr/bin/env python
"""Multi-seed evidence: train every variant on the same seeds, data and budget; evaluate; summarize.

Each (variant, seed) run lives in OUT/<variant>/seed<k>/ (train.log, eval.log, run.json: the exact
commands); a rerun skips evaluated runs, only evaluates trained ones and resumes the others from
their last checkpoint. A run.json that differs from what would run now is an error (use another
--out): results are never overwritten. Then DOCS/RESULTS.md (mean ± std over seeds, paired
differences to the baseline, per-seed numbers), DOCS/results.json and DOCS/results_ap_by_size.png
are written from the complete runs.

Protocol: from scratch (default), or with --pretrain-budget N fine-tuned: per seed, the harness
first trains --pretrain-config (Mask R-CNN) for N iterations on --pretrain-dataset, a split
separate from the train and test data, into OUT/pretrain/seed<k>/ (resumed and reused like the
runs), and every run of that seed, baseline and SR-RCNN alike, starts from those weights
(MODEL.WEIGHTS; its own schedule still starts at iteration 0).

  python tools/run_evidence.py --seeds 0 1 2 --budget 600 --jobs 2
  python tools/run_evidence.py --seeds 0 1 2 --budget 600 --pretrain-budget 600 --jobs 2
  python tools/run_evidence.py --variants mask_rcnn,sr_rcnn --modes sr,hr --budget 2 --seeds 0 \
      --train-dataset srrcnn_shapes_tiny_train --test-dataset srrcnn_shapes_tiny_val \
      SOLVER.IMS_PER_BATCH 2            # trailing KEY VALUE pairs: applied to every run, last

The harness sets SEED, OUTPUT_DIR, DATASETS.*, MODEL.DEVICE, DATALOADER.NUM_WORKERS,
MODEL.WEIGHTS and the schedule (SOLVER.MAX_ITER, STEPS, WARMUP_ITERS, CHECKPOINT_PERIOD, from
--budget or --pretrain-budget) itself.
"""
import argparse
import concurrent.futures
import datetime
import json
import logging
import math
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

# The variants compared. The first is the baseline (--baseline to change). Per variant:
#   label:  name in tables ("<label> <mode name>" for a variant with several test modes)
#   config: config file, relative to the repository root (or absolute)
#   opts:   KEY VALUE overrides for this variant (before the command line's opts)
#   modes:  test modes evaluated (MODEL.SRRCNN.TEST_MODE values); ["hr"] for Mask R-CNN
#   input_scale (optional, 1 if absent): with --input-size S, its images are S * input_scale
_QUICK = "configs/quick_schedules/"
_SR = _QUICK + "sr_rcnn_R_18_FPN_shapes_cpu.yaml"
_MODES = ["sr", "hr", "size_aware"]
# full_to_double also: the oracle for G (the real 2x feature in G's place)
_DOUBLE_MODES = _MODES + ["size_aware_x2"]
_EV = "configs/evidence/"
# G on 32 of the 128 sampled RoIs per image, foreground first (the default's 64 of 512 at COCO
# scale would leave G too few RoIs on these small images)
_G_SUBSET = ["MODEL.SRRCNN.G_ROIS_PER_IMAGE", "32", "MODEL.SRRCNN.G_POSITIVE_FRACTION", "0.75"]
VARIANTS = OrderedDict([
    ("mask_rcnn", dict(label="Mask R-CNN", config=_QUICK + "mask_rcnn_R_18_FPN_shapes_cpu.yaml",
                       opts=[], modes=["hr"])),
    ("mask_rcnn_x2_input", dict(label="Mask R-CNN, images at 2x (ceiling)",
                                config=_EV + "mask_rcnn_x2_input.yaml", opts=[],
                                modes=["hr"], input_scale=2)),
    ("sr_rcnn_double_addon", dict(label="SR-RCNN (G: 1x -> 2x crops, add-on)",
                                  config=_EV + "sr_rcnn_full_to_double_addon.yaml", opts=[],
                                  modes=_DOUBLE_MODES)),
    ("sr_rcnn_double_addon_no_adv", dict(label="SR-RCNN (G: 1x -> 2x crops, add-on, no adv.)",
                                         config=_EV + "sr_rcnn_full_to_double_addon_no_adv.yaml",
                                         opts=[], modes=_DOUBLE_MODES)),
    ("sr_rcnn_double_addon_x2head", dict(label="SR-RCNN (G: 1x -> 2x crops, add-on, head on real 2x)",
                                         config=_EV + "sr_rcnn_full_to_double_addon_x2head.yaml",
                                         opts=[], modes=_DOUBLE_MODES)),
    ("sr_rcnn_double_head", dict(label="SR-RCNN (G: 1x -> 2x crops, head only)",
                                 config=_EV + "sr_rcnn_full_to_double_head.yaml", opts=[],
                                 modes=_DOUBLE_MODES)),
    ("sr_rcnn_double", dict(label="SR-RCNN (G: 1x -> 2x crops)",
                            config=_EV + "sr_rcnn_full_to_double.yaml", opts=[],
                            modes=_DOUBLE_MODES)),
    ("sr_rcnn_double_imitate", dict(label="SR-RCNN (G: 1x -> 2x crops, imitation)",
                                    config=_EV + "sr_rcnn_full_to_double_imitate.yaml", opts=[],
                                    modes=_DOUBLE_MODES)),
    # issue 12's causes: the thesis pair (G on all RoIs) and one key changed per variant
    ("sr_rcnn_thesis_cfg", dict(label="SR-RCNN thesis pair", config=_EV + "sr_rcnn_thesis.yaml",
                                opts=[], modes=_MODES + ["sr_lr"])),
    ("sr_rcnn", dict(label="SR-RCNN (G on 32 RoIs/img)", config=_SR, opts=_G_SUBSET, modes=_MODES)),
    ("sr_rcnn_thesis", dict(label="SR-RCNN (thesis: G on all RoIs)", config=_SR,
                            opts=["MODEL.SRRCNN.G_ROIS_PER_IMAGE", "0"], modes=_MODES)),
    ("sr_rcnn_skip", dict(label="SR-RCNN (G on 32 RoIs/img, input skip)", config=_SR,
                          opts=_G_SUBSET + ["MODEL.SRRCNN.GENERATOR.INPUT_SKIP", "True"], modes=_MODES)),
    ("sr_rcnn_d1", dict(label="SR-RCNN (G on 32 RoIs/img, D task weight 1)", config=_SR,
                        opts=_G_SUBSET + ["MODEL.SRRCNN.D_TASK_WEIGHT", "1.0"], modes=_MODES)),
    ("sr_rcnn_sizew", dict(label="SR-RCNN (G on 32 RoIs/img, size-weighted)", config=_SR,
                           opts=_G_SUBSET + ["MODEL.SRRCNN.G_SIZE_WEIGHT_REF", "32.0"], modes=_MODES)),
    ("sr_rcnn_pos25", dict(label="SR-RCNN (G on 32 RoIs/img, 25 % foreground)", config=_SR,
                           opts=["MODEL.SRRCNN.G_ROIS_PER_IMAGE", "32", "MODEL.SRRCNN.G_POSITIVE_FRACTION", "0.25"],
                           modes=_MODES)),
    ("sr_rcnn_thesis_detach", dict(label="SR-RCNN (thesis, SR path not into the backbone)", config=_SR,
                                   opts=["MODEL.SRRCNN.G_ROIS_PER_IMAGE", "0", "MODEL.SRRCNN.D_THROUGH_G", "False"],
                                   modes=_MODES)),
    ("sr_rcnn_thesis_d1", dict(label="SR-RCNN (thesis, D task weight 1)", config=_SR,
                               opts=["MODEL.SRRCNN.G_ROIS_PER_IMAGE", "0", "MODEL.SRRCNN.D_TASK_WEIGHT", "1.0"],
                               modes=_MODES)),
    ("sr_rcnn_combo", dict(label="SR-RCNN (32 RoIs/img, skip, D weight 1, size-weighted)", config=_SR,
                           opts=_G_SUBSET + ["MODEL.SRRCNN.GENERATOR.INPUT_SKIP", "True",
                                             "MODEL.SRRCNN.D_TASK_WEIGHT", "1.0",
                                             "MODEL.SRRCNN.G_SIZE_WEIGHT_REF", "32.0"], modes=_MODES)),
])
# issue 12's causes: one key of the thesis pair changed (configs/evidence/sr_rcnn_thesis_<k>.yaml)
for _key, _what in (("g_gn", "G with GN"), ("g_no_norm", "G without norm"),
                    ("full_box_level", "RoI_LR at the full box's level"),
                    ("sum_per_roi", "content loss sum per RoI"),
                    ("d_sr_0", "D not trained on G's output"),
                    ("d_sr_half", "D weights HR 1, SR 0.5")):
    VARIANTS[f"sr_rcnn_thesis_{_key}"] = dict(
        label=f"SR-RCNN thesis pair, {_what}", config=f"{_EV}sr_rcnn_thesis_{_key}.yaml",
        opts=[], modes=_MODES)

# what --pretrain-budget trains, by default: the baseline's config
PRETRAIN_CONFIG = VARIANTS["mask_rcnn"]["config"]
PRETRAIN = "pretrain"  # its runs go to OUT/pretrain/seed<k>/

logger = logging.getLogger("run_evidence")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_NET = os.path.join(REPO_ROOT, "train_net.py")
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # srrcnn.evaluation's (it imports torch)
MODE_NAMES = {"sr": "with G (sr)", "hr": "without G (hr)",
              "size_aware": "size-aware G (size_aware)", "sr_lr": "with G on 0.5x RoIs (sr_lr)",
              "size_aware_x2": "real 2x features on RoIs predicted small (size_aware_x2)"}
SIZE_KEYS = ("AP", "APs", "APm", "APl")
TASKS = ("bbox", "segm")
# set by the harness for every run; a variant's or the command line's opts may not set them
HARNESS_KEYS = ("OUTPUT_DIR", "SEED", "SOLVER.MAX_ITER", "SOLVER.STEPS", "SOLVER.WARMUP_ITERS",
                "SOLVER.CHECKPOINT_PERIOD", "DATASETS.TRAIN", "DATASETS.TEST", "MODEL.DEVICE",
                "DATALOADER.NUM_WORKERS", "MODEL.WEIGHTS")
COMMAND_KEYS = ("train_command", "eval_command")  # informational: not compared on rerun
TAIL_LINES = 20


def schedule_opts(budget: int) -> List[str]:
    """MAX_ITER, STEPS (75 % and 93.3 %: the quick schedule's 450/560 of 600), warmup, ckpt."""
    steps = sorted({min(max(round(f * budget), 1), budget - 1) for f in (0.75, 0.933)} - {0})
    return ["SOLVER.MAX_ITER", str(budget), "SOLVER.STEPS", repr(tuple(steps)),
            "SOLVER.WARMUP_ITERS", str(min(100, budget // 6)),
            "SOLVER.CHECKPOINT_PERIOD", str(max(1, budget // 4))]


def row_label(variant: Dict, mode: str) -> str:
    """Table name of (variant, mode): the label alone for a single-"hr" (generator-less) variant."""
    if list(variant["modes"]) == ["hr"]:
        return variant["label"]
    return f"{variant['label']} {MODE_NAMES.get(mode, mode)}"


def config_path(config: str) -> str:
    """A config file given relative to the repository root (or absolute) as an absolute path."""
    return config if os.path.isabs(config) else os.path.join(REPO_ROOT, config)


class Job:
    """A training in OUT/<name>/seed<k>/ whose settings (``manifest``) are kept in its run.json."""

    def __init__(self, name: str, seed: int, config: str, opts: List[str], args,
                 weights: Optional[str] = None):
        """``opts``: the config overrides of the run (MODEL.WEIGHTS ``weights`` only to train)."""
        self.name, self.seed = name, seed
        self.key = f"{name}/seed{seed}"
        self.dir = os.path.join(args.out, name, f"seed{seed}")
        self.final = os.path.join(self.dir, "model_final.pth")
        self.coco = [a for r in args.register_coco for a in ("--register-coco", *r)]
        self.head = [sys.executable, TRAIN_NET, "--config-file", config_path(config)]
        start = ["MODEL.WEIGHTS", weights] if weights else []
        self.train_command = self.head + ["--resume", *self.coco, *opts, *start,
                                          "DATASETS.TEST", "()", "OUTPUT_DIR", self.dir]
        self.manifest: Dict = {}

    def check(self) -> None:
        """SystemExit if run.json differs from ``manifest`` or results lack a run.json."""
        path = os.path.join(self.dir, "run.json")
        if os.path.isfile(path):
            old = read_json(path)
            diff = [k for k in sorted(set(old) | set(self.manifest)) if k not in COMMAND_KEYS
                    and old.get(k) != self.manifest.get(k)]
            if diff:
                lines = "".join(f"\n  {k}: was {old.get(k)!r}, now {self.manifest.get(k)!r}"
                                for k in diff)
                raise SystemExit(f"{self.key}: {path} was made with other settings:{lines}\n"
                                 "Use another --out (existing results are never overwritten).")
        elif any(os.path.exists(os.path.join(self.dir, f)) for f in
                 ("last_checkpoint", "model_final.pth", "eval")):
            raise SystemExit(f"{self.key}: {self.dir} holds results without a run.json; "
                             "use another --out")


def input_opts(size: int) -> List[str]:
    """INPUT.* for images resized to ``size`` px (train and test, no multi-scale)."""
    return ["INPUT.MIN_SIZE_TRAIN", f"({size},)", "INPUT.MAX_SIZE_TRAIN", str(size),
            "INPUT.MIN_SIZE_TEST", str(size), "INPUT.MAX_SIZE_TEST", str(size)]


INPUT_KEYS = input_opts(0)[::2]  # set by --input-size


def train_opts(args, seed: int, budget: int, dataset: str, input_scale: int = 1) -> List[str]:
    """What the harness sets for a training: SEED, the schedule, train data, device, workers,
    and with --input-size the image size (times the variant's ``input_scale``)."""
    size = input_opts(args.input_size * input_scale) if args.input_size else []
    return ["SEED", str(seed)] + schedule_opts(budget) + [
        "DATASETS.TRAIN", f'("{dataset}",)', "MODEL.DEVICE", args.device,
        "DATALOADER.NUM_WORKERS", str(args.num_workers)] + size


def pretrain_settings(args) -> Optional[Dict]:
    """The pretraining every run starts from, as its manifest records it; None: from scratch."""
    if not args.pretrain_budget:
        return None
    return dict(budget=args.pretrain_budget, dataset=args.pretrain_dataset,
                config=args.pretrain_config)


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


class Pretrain(Job):
    """One seed's pretraining (train only): its model_final.pth starts that seed's runs."""

    def __init__(self, seed: int, args):
        opts = list(args.opts) + train_opts(args, seed, args.pretrain_budget, args.pretrain_dataset)
        super().__init__(PRETRAIN, seed, args.pretrain_config, opts, args)
        self.manifest = dict(stage=PRETRAIN, seed=seed, config=args.pretrain_config,
                             budget=args.pretrain_budget, train_dataset=args.pretrain_dataset,
                             register_coco=[list(r) for r in args.register_coco], opts=opts,
                             train_command=self.train_command)
        self._lock, self._error = threading.Lock(), None

    def state(self) -> str:
        """"done" (trained) or "train"; SystemExit if made otherwise."""
        self.check()
        return "done" if os.path.isfile(self.final) else "train"

    def ensure(self, env: Dict) -> str:
        """Train unless trained, once: the seed's other runs wait; "" on success, else the error."""
        with self._lock:
            if self._error is None:
                self._error = "" if os.path.isfile(self.final) else (
                    _step(self, "train", self.train_command, env) or "")
                if self._error:
                    logger.error("[FAILED] %s", self._error)
            return self._error


class Run(Job):
    """One (variant, seed): its folder, manifest and the train / eval commands."""

    def __init__(self, name: str, variant: Dict, seed: int, args,
                 pretrain: Optional[Pretrain] = None):
        self.variant, self.pretrain = variant, pretrain
        opts = list(variant["opts"]) + list(args.opts) + train_opts(
            args, seed, args.budget, args.train_dataset, variant.get("input_scale", 1))
        super().__init__(name, seed, variant["config"], opts, args,
                         weights=pretrain.final if pretrain else None)
        eval_dir = os.path.join(self.dir, "eval")
        self.eval_json = os.path.join(eval_dir, "eval_results.json")
        evaluate = self.head + ["--eval-only", "--test-modes", ",".join(variant["modes"]),
                                *self.coco, *opts, "MODEL.WEIGHTS", self.final, "OUTPUT_DIR",
                                eval_dir, "DATASETS.TEST", f'("{args.test_dataset}",)']
        self.manifest = dict(variant=name, seed=seed, config=variant["config"], budget=args.budget,
                             train_dataset=args.train_dataset, test_dataset=args.test_dataset,
                             register_coco=[list(r) for r in args.register_coco],
                             modes=list(variant["modes"]), opts=opts,
                             train_command=self.train_command, eval_command=evaluate)
        if pretrain:  # absent from scratch: the manifests of such runs stay as they were
            self.manifest["pretrain"] = dict(pretrain_settings(args), weights=pretrain.final)

    def state(self) -> str:
        """"done" (evaluated), "eval" (trained) or "train"; SystemExit if made otherwise."""
        self.check()
        if os.path.isfile(self.eval_json):
            return "done"
        return "eval" if os.path.isfile(self.final) else "train"


def write_json(path: str, data) -> None:
    """Write strict json (NaN -> null) atomically: a temporary file, then os.replace."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(_clean(data), f, indent=2, allow_nan=False)
    os.replace(path + ".tmp", path)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def _step(run: Job, step: str, cmd: List[str], env: Dict) -> Optional[str]:
    """Run one train_net.py command, appending to <step>.log; None on success, else the error."""
    log = os.path.join(run.dir, f"{step}.log")
    logger.info("[start] %s: %s (log: %s)", run.key, step, log)
    start = time.time()
    with open(log, "a") as f:
        f.write(f"# {datetime.datetime.now():%Y-%m-%d %H:%M:%S} {shlex.join(cmd)}\n")
        f.flush()
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.time() - start
    times_path = os.path.join(run.dir, "times.json")
    times = read_json(times_path) if os.path.isfile(times_path) else {}
    times[f"{step}_s"] = round(times.get(f"{step}_s", 0.0) + seconds, 1)  # summed over resumes
    write_json(times_path, times)
    expected = run.final if step == "train" else run.eval_json  # a Run's eval
    if code == 0 and os.path.isfile(expected):
        logger.info("[done]  %s: %s in %.0f s", run.key, step, seconds)
        return None
    with open(log, errors="replace") as f:
        tail = "".join(f.readlines()[-TAIL_LINES:])
    why = f"exit code {code}" if code else f"no {expected}"
    return f"{run.key}: {step} failed ({why}) after {seconds:.0f} s; log: {log}\n{tail}"


def execute(run: Run, env: Dict) -> Optional[str]:
    """Pretrain (once per seed) and train (resuming) if needed, then evaluate; None on success,
    else the error message."""
    try:
        if run.state() == "train":
            if run.pretrain and run.pretrain.ensure(env):
                return (f"{run.key}: not trained: its pretraining {run.pretrain.key} failed; "
                        f"log: {os.path.join(run.pretrain.dir, 'train.log')}")
            err = _step(run, "train", run.manifest["train_command"], env)
            if err:
                return err
        return _step(run, "eval", run.manifest["eval_command"], env)
    except Exception as e:  # e.g. a full disk: reported like a failed run, the others go on
        return f"{run.key}: {type(e).__name__}: {e}"


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _mean(values) -> str:
    return f"{statistics.mean(values):.0f}" if values else "-"


def _stats(values: Sequence[Optional[float]]) -> Dict:
    """mean, sample std (None for n < 2), n over the finite values; values as given."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    return dict(mean=statistics.mean(xs) if xs else None,
                std=statistics.stdev(xs) if len(xs) > 1 else None, n=len(xs), values=list(values))


def summarize(rows, results, seeds, ref: str):
    """
    Args:
        rows: {row label: (variant name, mode)}; results: {variant: {"seed<k>": eval results}}.
        ref: the baseline row's label.

    Returns:
        (summary, vs_baseline, vs_hr): summary[row] = {variant, mode, seeds, task: {metric:
        stats}}; vs_baseline[row] = {baseline, seeds, "bbox": {metric: stats of paired
        differences + improved}} for the size metrics; vs_hr: the same for each test mode with
        a generator against the same variant's "hr" row (the same trained models).
    """
    def per_seed(row):
        name, mode = rows[row]
        return {s: results.get(name, {}).get(f"seed{s}", {}).get(mode) for s in seeds}

    summary = OrderedDict()
    for row, (name, mode) in rows.items():
        got = {s: r for s, r in per_seed(row).items() if r is not None}
        entry = summary[row] = dict(variant=name, mode=mode, seeds=list(got))
        for task in TASKS:
            if any(task in r for r in got.values()):
                entry[task] = {k: _stats([r.get(task, {}).get(k) for r in got.values()])
                               for k in AP_KEYS}
    def paired(row, ref):
        base = {s: r for s, r in per_seed(ref).items() if r is not None}
        got = {s: r for s, r in per_seed(row).items() if r is not None and s in base}
        diffs = {}
        for k in SIZE_KEYS:
            pairs = [(r.get("bbox", {}).get(k), base[s].get("bbox", {}).get(k))
                     for s, r in got.items()]
            d = [a - b for a, b in pairs if _finite(a) and _finite(b)]
            diffs[k] = dict(_stats(d), improved=sum(x > 0 for x in d))
        return dict(variant=rows[row][0], mode=rows[row][1], baseline=ref, seeds=list(got),
                    bbox=diffs)

    vs = OrderedDict((row, paired(row, ref)) for row in rows if row != ref)
    # G at test: each generator mode against the same trained model without G
    own_hr = {name: row for row, (name, mode) in rows.items() if mode == "hr"}
    vs_hr = OrderedDict((row, paired(row, own_hr[name])) for row, (name, mode) in rows.items()
                        if mode != "hr" and name in own_hr)
    return summary, vs, vs_hr


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _cell(s: Dict, signed: bool = False) -> str:
    if not s["n"]:
        return "n/a"
    mean = f"{s['mean']:+.1f}" if signed else f"{s['mean']:.1f}"
    return mean if s["std"] is None else f"{mean} ± {s['std']:.1f}"


def _diff_table(title: str, what: str, vs) -> List[str]:
    """A Markdown table of paired per-seed differences (from :func:`summarize`)."""
    out = [f"## {title}", "", f"Mean ± std of the paired per-seed differences ({what}); "
           "(k/n): seeds where the row is higher.", "",
           "| | " + " | ".join(SIZE_KEYS) + " |", "|---|" + "---|" * len(SIZE_KEYS)]
    for row, e in vs.items():
        out.append(f"| {row} | " + " | ".join(
            f"{_cell(e['bbox'][k], True)} ({e['bbox'][k]['improved']}/{e['bbox'][k]['n']})"
            for k in SIZE_KEYS) + " |")
    return out + [""]


def markdown(info: Dict, summary, vs, seeds, chart: Optional[str], notes: Optional[str],
             timings: Dict, vs_hr=None) -> str:
    """RESULTS.md: settings, bbox and segm tables, differences to the baseline, chart, per seed."""
    n_all = len(seeds)
    out = ["# SR-RCNN evidence: results over seeds", "",
           f"Generated by `{shlex.join(info['command'])}` (rerun it to reproduce; finished runs "
           f"are reused). Date: {info['date']}. Device: {info['device']}. Budget: "
           f"{info['budget']} iterations per run. Protocol: {info['protocol']}. Train: "
           f"`{info['train_dataset']}`, test: `{info['test_dataset']}`. Seeds: "
           f"{', '.join(map(str, seeds))}. Cells: mean ± sample std over seeds (COCO AP, %); "
           "n: seeds with a complete run.", ""]
    for task in TASKS:
        out += [f"## {task} AP", "", "| | " + " | ".join(AP_KEYS) + " | n |",
                "|---|" + "---|" * (len(AP_KEYS) + 1)]
        for row, e in summary.items():
            n = len(e["seeds"])
            cells = [_cell(e[task][k]) if task in e else "n/a" for k in AP_KEYS]
            out.append(f"| {row} | " + " | ".join(cells) +
                       f" | {n if n == n_all else f'{n} of {n_all}'} |")
        out.append("")
    short = [r for r, e in summary.items() if len(e["seeds"]) < n_all]
    if short:
        out += ["Fewer seeds than asked (runs missing or failed): " + ", ".join(short) + ".", ""]
    if vs:
        ref = next(iter(vs.values()))["baseline"]
        out += _diff_table(f"Difference to the baseline ({ref}), bbox",
                           "row − baseline, same seed", vs)
    if vs_hr:
        out += _diff_table("Effect of G at test, bbox", "row − the same trained models without "
                           "G (their `hr` row), same seed", vs_hr)
    if chart:
        out += ["## bbox AP by object size", "", f"![bbox AP by size]({chart})", ""]
    out += ["## Per seed (bbox)", "", "| | seed | " + " | ".join(SIZE_KEYS) + " |",
            "|---|---|" + "---|" * len(SIZE_KEYS)]
    for row, e in summary.items():
        for s in seeds:
            if s in e["seeds"] and "bbox" in e:
                i = e["seeds"].index(s)
                cells = [_cell(_stats([e["bbox"][k]["values"][i]])) for k in SIZE_KEYS]
            else:
                cells = ["missing"] + ["-"] * (len(SIZE_KEYS) - 1)
            out.append(f"| {row} | {s} | " + " | ".join(cells) + " |")
    out.append("")
    if timings:
        out += ["Seconds per run (mean; train summed over resumes): " + "; ".join(
            f"{n} train {_mean([t['train_s'] for t in ts.values() if 'train_s' in t])}, eval "
            f"{_mean([t['eval_s'] for t in ts.values() if 'eval_s' in t])}"
            for n, ts in timings.items()) + ".", ""]
    if notes is not None:
        out += ["## Notes", "", notes.rstrip("\n"), ""]
    return "\n".join(out)


def bar_chart(summary, path: str, title: str) -> bool:
    """Grouped bars of bbox AP, APs, APm, APl per row with std error bars; False if no data."""
    rows = {r: e["bbox"] for r, e in summary.items() if e["seeds"] and "bbox" in e}
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n, x = len(rows), np.arange(len(SIZE_KEYS))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * n + 4), 4.8))
    for i, (row, m) in enumerate(rows.items()):
        means = [m[k]["mean"] or 0.0 for k in SIZE_KEYS]
        errs = [m[k]["std"] or 0.0 for k in SIZE_KEYS]
        bars = ax.bar(x + (i - (n - 1) / 2) * width, means, width, yerr=errs, capsize=3,
                      label=row, color=f"C{i % 10}")
        ax.bar_label(bars, labels=["n/a" if m[k]["mean"] is None else f"{m[k]['mean']:.1f}"
                                   for k in SIZE_KEYS], padding=2, fontsize=7,
                     rotation=90 if n > 4 else 0)
    ax.set_xticks(x, ["AP (all)", "APs (small)", "APm (medium)", "APl (large)"])
    ax.set_ylabel("COCO box AP (%), mean ± std over seeds")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(n, 3), frameon=False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp", format="png", dpi=120, bbox_inches="tight",
                metadata={"Software": None})
    plt.close(fig)
    os.replace(path + ".tmp", path)
    return True


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
    p.add_argument("--variants", help=f"comma-separated subset of {', '.join(VARIANTS)} "
                   "(default: all; run and shown in the order given)")
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
                   help="resize every run's images to S px (train and test; a variant's "
                   "input_scale multiplies it); 0: the configs' sizes. Size keys in input "
                   "pixels (e.g. MODEL.SRRCNN.X2.*) are not scaled: pass them as opts")
    p.add_argument("--register-coco", nargs=3, action="append", default=[],
                   metavar=("NAME", "JSON", "IMAGE_DIR"), help="passed on to train_net.py")
    p.add_argument("--out", default="output/evidence", help="runs go to OUT/<variant>/seed<k>/")
    p.add_argument("--docs-dir", default="docs", help="where RESULTS.md, results.json, PNG go")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, OMP_NUM_THREADS = "
                   "cores // JOBS each unless set")
    p.add_argument("--device", default="cpu", help="MODEL.DEVICE of every run (cpu, cuda)")
    p.add_argument("--num-workers", type=int, default=1, help="DATALOADER.NUM_WORKERS")
    p.add_argument("--notes", help="a Markdown file appended to RESULTS.md under 'Notes'")
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
    for name, opts in [("command line", args.opts)] + [(n, VARIANTS[n]["opts"]) for n in names]:
        if len(opts) % 2:
            p.error(f"{name} opts must be KEY VALUE pairs: {opts}")
        fixed = [k for k in opts[::2] if k in HARNESS_KEYS
                 or (args.input_size and k in INPUT_KEYS)]
        if fixed:
            p.error(f"{name} opts set {fixed}: the harness sets these (see --budget, --seeds, ...)")
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
    """RESULTS.md, results.json and the chart in --docs-dir, from the complete runs (``jobs``:
    the runs and the pretrainings, whose times are listed too)."""
    results, timings = OrderedDict(), OrderedDict()
    runs = [r for r in jobs if isinstance(r, Run)]
    for r in jobs:
        if isinstance(r, Run) and os.path.isfile(r.eval_json):
            results.setdefault(r.name, {})[f"seed{r.seed}"] = read_json(r.eval_json)["results"]
        times = os.path.join(r.dir, "times.json")
        if os.path.isfile(times):
            timings.setdefault(r.name, {})[f"seed{r.seed}"] = read_json(times)
    rows = OrderedDict((row_label(v, m), (n, m)) for n, v in variants.items() for m in v["modes"])
    base, mode = args.baseline
    ref = row_label(variants[base], mode or variants[base]["modes"][0])
    summary, vs, vs_hr = summarize(rows, results, args.seeds, ref)
    info = dict(command=["python", "tools/run_evidence.py", *(a for a in argv if a != "--report-only")],
                date=f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
                device=run_device(args, threads), budget=args.budget, protocol=protocol(args),
                pretrain=pretrain_settings(args), train_dataset=args.train_dataset,
                test_dataset=args.test_dataset)
    os.makedirs(args.docs_dir, exist_ok=True)
    png = os.path.join(args.docs_dir, "results_ap_by_size.png")
    title = (f"{args.test_dataset}, bbox AP by size ({len(args.seeds)} seeds, {args.budget} it"
             f"{', fine-tuned' if args.pretrain_budget else ''})")
    chart = os.path.basename(png) if bar_chart(summary, png, title) else None
    notes = open(args.notes).read() if args.notes else None
    text = markdown(info, summary, vs, args.seeds, chart, notes, timings, vs_hr)
    md = os.path.join(args.docs_dir, "RESULTS.md")
    with open(md + ".tmp", "w") as f:
        f.write(text)
    os.replace(md + ".tmp", md)
    write_json(os.path.join(args.docs_dir, "results.json"), dict(
        info, seeds=args.seeds, variants={n: {k: v[k] for k in ("label", "config", "opts", "modes")}
                                          for n, v in variants.items()},
        runs=results, summary=summary, vs_baseline=vs, vs_hr=vs_hr, timings=timings))
    logger.info("Wrote %s, results.json%s (%d of %d runs complete)", md,
                ", " + chart if chart else "", sum(map(len, results.values())), len(runs))


if __name__ == "__main__":
    sys.exit(main())
