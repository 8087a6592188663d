#!/usr/bin/env python
"""
Does a training run depend on the machine? Run the first iterations of one train_net.py command
under several settings of the CPU's float kernels (the instruction set oneDNN and MKL may use) and
print the losses logged at the last of them, in full precision. Equal rows took the same
arithmetic; a row that differs diverges from there on, so on a machine whose CPU makes that
choice by itself, a from-scratch run of the same command and seed is another draw.

The last setting repeats the first: it checks that the command is deterministic here at all.

  python tools/kernel_paths.py --iters 20 -- \\
      --config-file configs/quick_schedules/mask_rcnn_R_18_FPN_shapes_cpu.yaml SEED 0 \\
      SOLVER.MAX_ITER 600 SOLVER.STEPS '(450, 560)' SOLVER.WARMUP_ITERS 100 \\
      DATASETS.TRAIN '("srrcnn_shapes_train",)' DATASETS.TEST '()' MODEL.DEVICE cpu \\
      DATALOADER.NUM_WORKERS 1

Each run writes to a temporary OUTPUT_DIR and is stopped once iteration ``--iters`` − 1 is
logged (detectron2 logs every 20 iterations and at the end); OMP_NUM_THREADS is 1 unless set.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_NET = os.path.join(REPO_ROOT, "train_net.py")
SETTINGS = ["", "ONEDNN_MAX_CPU_ISA=AVX512_CORE", "ONEDNN_MAX_CPU_ISA=AVX2",
            "MKL_ENABLE_INSTRUCTIONS=AVX2", "ONEDNN_MAX_CPU_ISA=SSE41", ""]
LOSSES = ("total_loss", "loss_cls", "loss_box_reg", "loss_rpn_cls")


def parse_setting(text: str) -> Dict[str, str]:
    """"A=1 B=2" -> {"A": "1", "B": "2"}; "" -> {} (this machine's own choice)."""
    out = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"setting {text!r}: expected VAR=VALUE pairs, e.g. ONEDNN_MAX_CPU_ISA=AVX2")
        out[key] = value
    return out


def _record(metrics: str, iteration: int) -> Optional[dict]:
    """The last record of metrics.json at or before ``iteration`` that has losses, if any."""
    best = None
    if os.path.isfile(metrics):
        with open(metrics) as f:
            for line in f:
                try:
                    d = json.loads(line)
                except ValueError:  # a line being written
                    continue
                if "total_loss" in d and d.get("iteration", -1) <= iteration:
                    best = d
    return best


def first_losses(opts: List[str], setting: Dict[str, str], iters: int, log: str) -> dict:
    """Train with ``opts`` under ``setting`` until iteration ``iters`` − 1 is logged (or the run
    ends); that metrics.json record. RuntimeError naming the log if none was written."""
    env = dict(os.environ, **setting)
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as out, open(log, "w") as f:
        metrics = os.path.join(out, "metrics.json")
        proc = subprocess.Popen([sys.executable, TRAIN_NET, *opts, "OUTPUT_DIR", out],
                                stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        try:
            while proc.poll() is None:
                rec = _record(metrics, iters - 1)
                if rec and rec["iteration"] == iters - 1:
                    break
                time.sleep(1)
        finally:
            proc.kill()
            proc.wait()
        rec = _record(metrics, iters - 1)
    if rec is None:
        raise RuntimeError(f"no losses logged under {setting or 'this machine'}; log: {log}")
    return rec


def main(argv=None) -> List[str]:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                usage="%(prog)s [--iters N] [--setting S ...] -- TRAIN_NET_ARGS")
    p.add_argument("--iters", type=int, default=20, help="iterations per run (default 20)")
    p.add_argument("--setting", action="append", metavar="'VAR=VALUE ...'",
                   help="an environment for one run ('' = this machine's choice); repeatable "
                        f"(default: {SETTINGS})")
    p.add_argument("--log-dir", default=tempfile.gettempdir(), help="where the runs' logs go")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="train_net.py arguments, after --")
    args = p.parse_args(argv)
    opts = args.opts[1:] if args.opts[:1] == ["--"] else args.opts
    if not opts or args.iters < 1:
        p.error("give --iters ≥ 1 and the train_net.py arguments after --")
    settings = args.setting if args.setting is not None else SETTINGS
    envs = [parse_setting(s) for s in settings]
    lines = ["| setting | iteration | " + " | ".join(LOSSES) + " | same as the first |",
             "|---|---|" + "---|" * (len(LOSSES) + 1)]
    first = None
    for i, (text, env) in enumerate(zip(settings, envs)):
        rec = first_losses(opts, env, args.iters, os.path.join(args.log_dir, f"kernel_paths_{i}.log"))
        values = [rec.get(k) for k in LOSSES]
        first = values if first is None else first
        lines.append(f"| {text or '(this machine)'} | {rec['iteration']} | "
                     + " | ".join(repr(v) for v in values) + f" | {'yes' if values == first else 'no'} |")
        print(lines[-1] if i else "\n".join(lines), flush=True)
    return lines


if __name__ == "__main__":
    main()
