# -*- coding: utf-8 -*-
"""The runs of tools/run_evidence.py: each (variant, seed) training and evaluation, or a seed's
pretraining, in its folder OUT/<name>/seed<k>/ with its settings in run.json, its train_net.py
commands and their execution (logs, times, resume)."""
import datetime
import hashlib
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from evidence_report import read_json, write_json

logger = logging.getLogger("run_evidence")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_NET = os.path.join(REPO_ROOT, "train_net.py")
PRETRAIN = "pretrain"  # its runs go to OUT/pretrain/seed<k>/
COMMAND_KEYS = ("train_command", "eval_command")  # informational: not compared on rerun
TAIL_LINES = 20
# a fine-tuned run's record of the weights it started from: pretrainings of one seed need not
# agree bit for bit across machines, and only runs started from the same weights are paired
PRETRAIN_HASH = "pretrain.sha256"
# what a run's float kernels were, per step and segment (a resume may run elsewhere): the same
# command, seed and data give another trajectory from the first iterations on a CPU whose
# instruction set makes oneDNN or MKL take another path (docs/SMALL_OBJECTS.md §2j point 9)
HOST_RECORD = "host.json"
KERNEL_ENV = ("OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
              "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "CUBLAS_WORKSPACE_CONFIG")
ISA_FLAGS = ("sse4_1", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16")


def file_sha256(path: str) -> str:
    """The SHA-256 of a file, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cpu_info() -> Dict[str, str]:
    """The CPU's model name and which of ISA_FLAGS it has (Linux /proc/cpuinfo; else platform)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        import platform

        model = platform.processor() or platform.machine()
    return dict(cpu=model, isa=" ".join(f for f in ISA_FLAGS if f in flags))


def kernel_fingerprint(env: Dict, device: str) -> Dict[str, str]:
    """What decides a run's float arithmetic besides its command: torch's version and CPU kernel
    level, the CPU (model, ISA flags), the environment variables of KERNEL_ENV that are set, and
    on a GPU its name and the CUDA/cuDNN versions."""
    import torch

    out = dict(torch=torch.__version__, aten=torch.backends.cpu.get_cpu_capability(), **_cpu_info())
    out.update({k: env[k] for k in KERNEL_ENV if env.get(k)})
    if device.startswith("cuda") and torch.cuda.is_available():
        out.update(gpu=torch.cuda.get_device_name(0), cuda=str(torch.version.cuda),
                   cudnn=str(torch.backends.cudnn.version()))
    return out


def record_host(run: "Job", step: str, cmd: List[str], env: Dict) -> None:
    """Append this machine's kernel_fingerprint to the run's HOST_RECORD under ``step``, unless
    the step's last segment recorded the same."""
    device = cmd[cmd.index("MODEL.DEVICE") + 1] if "MODEL.DEVICE" in cmd[:-1] else "cpu"
    path = os.path.join(run.dir, HOST_RECORD)
    record = read_json(path) if os.path.isfile(path) else {}
    fingerprint = kernel_fingerprint(env, device)
    if record.get(step, [None])[-1] != fingerprint:
        record.setdefault(step, []).append(fingerprint)
        write_json(path, record)


def config_path(config: str) -> str:
    """A config file given relative to the repository root (or absolute) as an absolute path."""
    return config if os.path.isabs(config) else os.path.join(REPO_ROOT, config)


def schedule_opts(budget: int) -> List[str]:
    """MAX_ITER, STEPS (75 % and 93.3 %: the quick schedule's 450/560 of 600), warmup, and a
    checkpoint every quarter of the budget but at least every 300 iterations (a run cut at a
    session's end resumes losing at most that much: a 2 400-iteration run takes hours on a CPU)."""
    steps = sorted({min(max(round(f * budget), 1), budget - 1) for f in (0.75, 0.933)} - {0})
    return ["SOLVER.MAX_ITER", str(budget), "SOLVER.STEPS", repr(tuple(steps)),
            "SOLVER.WARMUP_ITERS", str(min(100, budget // 6)),
            "SOLVER.CHECKPOINT_PERIOD", str(max(1, min(budget // 4, 300)))]


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


class Job:
    """A training in OUT/<name>/seed<k>/ whose settings (``manifest``) are kept in its run.json."""

    def __init__(self, name: str, seed: int, config: str, opts: List[str], args,
                 weights: Optional[str] = None):
        """``opts``: the config overrides of the run (MODEL.WEIGHTS ``weights`` only to train)."""
        self.name, self.seed = name, seed
        self.key = f"{name}/seed{seed}"
        self.dir = os.path.join(args.out, name, f"seed{seed}")
        self.final = os.path.join(self.dir, "model_final.pth")
        self.done = self.final  # a Run: its eval results
        self.coco = [a for r in args.register_coco for a in ("--register-coco", *r)]
        self.head = [sys.executable, TRAIN_NET, "--config-file", config_path(config)]
        start = ["MODEL.WEIGHTS", weights] if weights else []
        self.train_command = self.head + ["--resume", *self.coco, *opts, *start,
                                          "DATASETS.TEST", "()", "OUTPUT_DIR", self.dir]
        self.manifest: Dict = {}

    def state(self) -> str:
        """"done", "eval" (a Run trained, not evaluated) or "train"; SystemExit if run.json
        differs from ``manifest`` or results lack a run.json."""
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
        if os.path.isfile(self.done):
            return "done"
        return "eval" if os.path.isfile(self.final) else "train"


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
        opts = list(args.opts) + train_opts(args, seed, args.budget, args.train_dataset,
                                             variant["input_scale"])
        super().__init__(name, seed, variant["config"], opts, args,
                         weights=pretrain.final if pretrain else None)
        eval_dir = os.path.join(self.dir, "eval")
        self.eval_json = self.done = os.path.join(eval_dir, "eval_results.json")
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


def record_pretrain(run: Run) -> None:
    """Write the SHA-256 of the weights a fine-tuned run starts from into its PRETRAIN_HASH,
    unless it was written before or the run already has a checkpoint (a resume: what it started
    from is in there, whatever the pretraining's file holds now)."""
    path = os.path.join(run.dir, PRETRAIN_HASH)
    if run.pretrain is None or os.path.exists(path) or os.path.exists(
            os.path.join(run.dir, "last_checkpoint")):
        return
    os.makedirs(run.dir, exist_ok=True)
    with open(path, "w") as f:
        f.write(file_sha256(run.pretrain.final) + "\n")


def _last_checkpoint(run: Job) -> Optional[str]:
    """The checkpoint file a ``--resume`` training of ``run`` starts from; None from scratch."""
    path = os.path.join(run.dir, "last_checkpoint")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


def _step(run: Job, step: str, cmd: List[str], env: Dict) -> Optional[str]:
    """Run one train_net.py command, appending to <step>.log; None on success, else the error."""
    log = os.path.join(run.dir, f"{step}.log")
    logger.info("[start] %s: %s (log: %s)", run.key, step, log)
    record_host(run, step, cmd, env)
    resumed_from = _last_checkpoint(run) if step == "train" else None
    start = time.time()
    with open(log, "a") as f:
        f.write(f"# {datetime.datetime.now():%Y-%m-%d %H:%M:%S} {shlex.join(cmd)}\n")
        f.flush()
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.time() - start
    times_path = os.path.join(run.dir, "times.json")
    times = read_json(times_path) if os.path.isfile(times_path) else {}
    times[f"{step}_s"] = round(times.get(f"{step}_s", 0.0) + seconds, 1)  # summed over resumes
    if step == "train":  # where each segment started: a resumed run is not bit-identical to a
        # straight one (the loaders' random flips are not checkpointed), so reproducing it
        # needs its resume points
        times.setdefault("train_segments", []).append(
            {"resumed_from": resumed_from, "s": round(seconds, 1)})
    write_json(times_path, times)
    expected = run.final if step == "train" else run.done  # a Run's eval results
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
            record_pretrain(run)
            err = _step(run, "train", run.manifest["train_command"], env)
            if err:
                return err
        return _step(run, "eval", run.manifest["eval_command"], env)
    except Exception as e:  # e.g. a full disk: reported like a failed run, the others go on
        return f"{run.key}: {type(e).__name__}: {e}"
