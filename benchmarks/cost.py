#!/usr/bin/env python
"""
What SR-RCNN costs over Mask R-CNN, measured side by side in one run.

Builds Mask R-CNN and SR-RCNN from their configs with otherwise equal settings (the same
image size, batch, RoIs per image, test-time proposals and detections) and the SAME initial
weights for every part they share, then measures, with the two models interleaved on the
same batches / images:

* train: seconds per training iteration (Mask R-CNN: SimpleTrainer's SGD step; SR-RCNN:
  SRGANTrainer's G and D steps);
* memory: peak memory of a training run, each model in its own process (CUDA: max allocated;
  CPU: peak RSS during the training iterations, sampled, minus the RSS before them);
* inference: seconds per image at test time, SR-RCNN in each test mode ("hr": without G,
  "sr": G on every RoI, "size_aware": G on the RoIs predicted small), G with its batch norms
  folded into its convolutions as at any test; "sr" and "size_aware" again with G unfolded
  (rows `_unfolded`, conv then norm as in training: what folding saves); each row also says
  how many boxes per image enter the box predictor's NMS;
* generator: G alone at test, batch norms folded against not, on as many RoIs as "size_aware"
  (SIZE_AWARE.MAX_ROIS_PER_IMAGE) and "sr" (RPN.POST_NMS_TOPK_TEST) send at most per image;
* profile: torch.profiler tables of the test images, per model and test mode: where the
  time at test goes (operators, and ranges such as `srrcnn.sr_box_pass`);
* breakdown: torch.profiler ranges of one training iteration, where SR-RCNN's extra time goes
  (second backbone pass, generator, extra box-head rows and 0.5x RoI pooling, backward, G step).

Weights are random (no checkpoint is needed), so the learning rates are set to 0: the work
per iteration is that of real training, and FrozenBN cannot diverge. The RPN's box-delta
layer is zeroed, so that its proposals are anchors: the ROI heads then get their full
ROI_HEADS.BATCH_SIZE_PER_IMAGE RoIs per image, as in real training (a random RPN sends most
boxes off the image, and ~30 RoIs per image are left; printed). At test time the score
threshold is 1e-6 (not 0: "size_aware"'s merge floors probabilities at 1e-12), so that the
mask head runs on (nearly) TEST.DETECTIONS_PER_IMAGE boxes (printed). For the inference
measurement G is made the identity (its last layer zeroed, plus its input): all its work is
done, and every test mode hands the box predictor the same features, so that score filtering,
NMS and the mask head do the same work in every mode, which is checked on the first image.
(`--g-output constant`, the setting before 2026-12-04, leaves G's output constant: every RoI
it reads gets the same scores, 1/(K+1) for every class, so NMS gets all R x K boxes in "sr",
80 000 at 1 000 RoIs and COCO's 80 classes, against ~1 000 to 3 000 for Mask R-CNN: NMS's work
grows with the square of its boxes, and above a size torchvision's batched_nms loops over the
classes, with a host synchronisation each. A cost of the random weights, not of G.) SIZE_AWARE.MAX_SIZE is
unbounded, so "size_aware" sends its maximum number of RoIs (MAX_ROIS_PER_IMAGE) through G:
its cost is an upper bound.

    python benchmarks/cost.py [--config-file configs/sr_rcnn_R_50_FPN_3x.yaml]
        [--size 512] [--batch 2] [--iters 5] [--what train,memory,inference,breakdown]
        [--g-output identity|constant]
        [opts ...]      (--what also: generator, upscale, profile)

The last line printed is `name=value` ratios (SR-RCNN / Mask R-CNN).
"""
import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch
from torch.autograd.profiler import record_function

from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import SimpleTrainer
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import fast_rcnn
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from srrcnn import (
    SRGANTrainer,
    add_srrcnn_config,
    build_discriminator_optimizer,
    build_generator,
    build_generator_optimizer,
)
from srrcnn.data import CheckedDatasetMapper
from srrcnn.evaluation import test_mode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_MODES = ("hr", "sr", "size_aware")
UNFOLDED_MODES = ("sr", "size_aware")  # measured again with G's batch norms not folded


def make_cfgs(args):
    """(Mask R-CNN cfg, SR-RCNN cfg): the SR-RCNN config with only what SR-RCNN adds removed."""
    common = [
        "MODEL.WEIGHTS", "", "MODEL.DEVICE", args.device,
        "INPUT.MIN_SIZE_TRAIN", f"({args.size},)", "INPUT.MAX_SIZE_TRAIN", str(args.size),
        "INPUT.MIN_SIZE_TEST", str(args.size), "INPUT.MAX_SIZE_TEST", str(args.size),
        "SOLVER.IMS_PER_BATCH", str(args.batch), "SOLVER.REFERENCE_WORLD_SIZE", "0",
        "SOLVER.BASE_LR", "0.0", "SOLVER.GENERATOR.BASE_LR", "0.0", "SOLVER.AMP.ENABLED", "False",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1e-6", "MODEL.SRRCNN.SIZE_AWARE.MIN_SCORE", "0.0",
        "MODEL.SRRCNN.SIZE_AWARE.MAX_SIZE", "1e9",
        "DATASETS.TRAIN", f"('{args.dataset}',)", "DATASETS.TEST", f"('{args.dataset}',)",
        "DATALOADER.NUM_WORKERS", "0",
    ]
    sr = get_cfg()
    add_srrcnn_config(sr)
    sr.merge_from_file(args.config_file)
    sr.merge_from_list(common + list(args.opts))
    base = sr.clone()
    base.MODEL.META_ARCHITECTURE, base.MODEL.ROI_HEADS.NAME = "GeneralizedRCNN", "StandardROIHeads"
    return base, sr


def build_pair(base_cfg, sr_cfg):
    """Both models, Mask R-CNN holding SR-RCNN's initial weights for every shared part."""
    seed_all_rng(0)
    sr = build_model(sr_cfg)
    # proposals = anchors (see the module docstring): the full RoI batch, as in real training
    deltas = sr.proposal_generator.rpn_head.anchor_deltas
    torch.nn.init.zeros_(deltas.weight), torch.nn.init.zeros_(deltas.bias)
    base = build_model(base_cfg)
    missing, unexpected = base.load_state_dict(
        {k: v for k, v in sr.state_dict().items() if k in base.state_dict()}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return base, sr


def make_trainer(cfg, model, batches):
    opt = build_discriminator_optimizer(cfg, model)
    data = itertools.cycle(batches)
    if cfg.MODEL.META_ARCHITECTURE == "SRRCNN":
        return SRGANTrainer(model, data, opt, build_generator_optimizer(cfg, model))
    return SimpleTrainer(model, data, opt)


def train_batches(cfg, n):
    loader = iter(build_detection_train_loader(cfg, mapper=CheckedDatasetMapper(cfg, True)))
    return [next(loader) for _ in range(n)]


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def summary(name, times):
    return f"{name}: median {statistics.median(times):.4f} s (min {min(times):.4f}, max {max(times):.4f})"


def bench_train(args, base_cfg, sr_cfg):
    batches = train_batches(base_cfg, args.iters + args.warmup)
    base, sr = build_pair(base_cfg, sr_cfg)
    trainers = {"mask_rcnn": make_trainer(base_cfg, base, batches),
                "sr_rcnn": make_trainer(sr_cfg, sr, batches)}
    times = {k: [] for k in trainers}
    g_rois, hr_rois = [], []  # RoIs per iteration that G / the box head (HR rows) see
    sr.roi_heads.generator.register_forward_hook(lambda m, i, o: g_rois.append(len(i[0])))
    base.roi_heads.box_head.register_forward_hook(lambda m, i, o: hr_rois.append(len(i[0])))
    with EventStorage(0) as storage:
        for i in range(args.iters + args.warmup):
            for name, tr in trainers.items():  # interleaved, same batch
                tr.storage, tr.iter = storage, i
                t = timed(tr.run_step, args.device)
                if i >= args.warmup:
                    times[name].append(t)
    print(f"== train: seconds per iteration (RoIs per image: {statistics.mean(hr_rois) / args.batch:.0f} "
          f"sampled, {statistics.mean(g_rois) / args.batch:.0f} through G)")
    for k, v in times.items():
        print(summary(k, v))
    return {"train_iter_ratio": statistics.median(times["sr_rcnn"]) / statistics.median(times["mask_rcnn"])}


def memory_worker(args, base_cfg, sr_cfg, which):
    """In its own process: peak memory of `which` model over a few training iterations."""
    batches = train_batches(base_cfg, args.iters)
    base, sr = build_pair(base_cfg, sr_cfg)
    model, cfg = (sr, sr_cfg) if which == "sr_rcnn" else (base, base_cfg)
    del base, sr
    trainer = make_trainer(cfg, model, batches)
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:  # sample the RSS while training: the process's lifetime peak may come from before
        start, peak, done = rss_now(), [0], threading.Event()

        def sample():
            while not done.wait(0.002):
                peak[0] = max(peak[0], rss_now())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    with EventStorage(0) as storage:
        for i in range(args.iters):
            trainer.storage, trainer.iter = storage, i
            trainer.run_step()
    if args.device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        done.set()
        sampler.join()
        peak = max(peak[0], rss_now())
    print(json.dumps({"start": start, "peak": peak}))


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_memory(args):
    out = {}
    for which in ("mask_rcnn", "sr_rcnn"):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"memory:{which}"] + args.argv
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if res.returncode != 0:
            raise SystemExit(f"memory worker {which} failed:\n{res.stderr[-3000:]}")
        out[which] = json.loads(res.stdout.strip().splitlines()[-1])
    what = "CUDA max allocated" if args.device == "cuda" else \
        "peak RSS while training, sampled every 2 ms, minus the RSS before the first iteration"
    print(f"== memory: {what}")
    growth = {}
    for k, v in out.items():
        growth[k] = v["peak"] - v["start"] if args.device != "cuda" else v["peak"]
        print(f"{k}: {growth[k] / 2**20:.0f} MiB (peak {v['peak'] / 2**20:.0f} MiB)")
    return {"peak_memory_ratio": growth["sr_rcnn"] / growth["mask_rcnn"]}


def inference_setup(args, base_cfg, sr_cfg):
    """
    The two models in eval mode (G the identity, see the module docstring), the test images
    (warm-up first) and the runs: {name: (model, test mode or None, G's batch norms folded)}.
    Checks on the first image that every run predicts what Mask R-CNN does (the same boxes
    and scores), so that post-processing costs the same in every run.
    """
    base, sr = build_pair(base_cfg, sr_cfg)
    generator = sr.roi_heads.generator
    tail = generator.tail
    torch.nn.init.zeros_(tail.weight), torch.nn.init.zeros_(tail.bias)
    # before eval(), which makes the folded copy that G runs at test
    generator.input_skip = args.g_output == "identity"
    base.eval(), sr.eval()
    loader = build_detection_test_loader(base_cfg, args.dataset, mapper=CheckedDatasetMapper(base_cfg, False))
    images = list(itertools.islice(iter(loader), args.images + args.warmup))
    runs = {"mask_rcnn": (base, None, True)}
    runs.update({f"sr_rcnn_{m}": (sr, m, True) for m in TEST_MODES})
    runs.update({f"sr_rcnn_{m}_unfolded": (sr, m, False) for m in UNFOLDED_MODES})
    with torch.no_grad():
        outputs = {}
        for name, (model, mode, fold) in runs.items():
            generator.fold_at_test = fold
            with test_mode(model, mode) if mode else contextlib.nullcontext():
                outputs[name] = model(images[0])[0]["instances"]
    ref = outputs["mask_rcnn"]
    for name, out in outputs.items() if args.g_output == "identity" else ():
        same = len(out) == len(ref) and torch.allclose(out.scores, ref.scores, atol=1e-5) and \
            torch.allclose(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3)
        if not same:
            raise RuntimeError(f"{name} predicts other boxes than mask_rcnn on the first image: "
                               "post-processing would not cost the same")
    return sr, images, runs


def bench_inference(args, base_cfg, sr_cfg):
    sr, images, runs = inference_setup(args, base_cfg, sr_cfg)
    generator = sr.roi_heads.generator
    times = {k: [] for k in runs}
    detections = {k: [] for k in runs}
    nms = {k: [] for k in runs}
    selected = []
    heads = sr.roi_heads
    select_fn = heads.select_size_aware

    def counting_select(*a, **k):  # how many RoIs per image "size_aware" sends through G
        idx = select_fn(*a, **k)
        selected.append(len(idx))
        return idx

    nms_boxes = []  # boxes that enter the box predictor's NMS, per image (the work it does)
    nms_fn = fast_rcnn.batched_nms

    def counting_nms(boxes, *a, **k):
        nms_boxes.append(len(boxes))
        return nms_fn(boxes, *a, **k)

    heads.select_size_aware = counting_select
    fast_rcnn.batched_nms = counting_nms
    try:
        with torch.no_grad():
            for i, batch in enumerate(images):
                for name, (model, mode, fold) in runs.items():
                    out = []
                    nms_boxes.clear()
                    generator.fold_at_test = fold
                    with test_mode(model, mode) if mode else contextlib.nullcontext():
                        t = timed(lambda: out.append(model(batch)), args.device)
                    if i >= args.warmup:
                        times[name].append(t)
                        detections[name].append(len(out[0][0]["instances"]))
                        nms[name].append(sum(nms_boxes))
    finally:
        fast_rcnn.batched_nms = nms_fn
    print(f"== inference: seconds per image (batch 1; size_aware sent {statistics.mean(selected):.0f} "
          f"RoIs per image through G, of MAX_ROIS_PER_IMAGE {heads.size_aware_max_rois}; G's batch "
          f"norms folded, _unfolded: not; TEST_COMPILE.BACKEND {heads.sr_box_pass.backend or 'off'}; "
          f"G's output: {args.g_output})")
    for k, v in times.items():
        print(summary(k, v) + f", {statistics.mean(detections[k]):.0f} detections per image, "
              f"{statistics.mean(nms[k]):.0f} boxes into NMS")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"infer_without_G_ratio": med["sr_rcnn_hr"] / med["mask_rcnn"],
            "infer_with_G_ratio": med["sr_rcnn_sr"] / med["mask_rcnn"],
            "infer_size_aware_ratio": med["sr_rcnn_size_aware"] / med["mask_rcnn"],
            "infer_with_G_unfolded_ratio": med["sr_rcnn_sr_unfolded"] / med["mask_rcnn"],
            "infer_size_aware_unfolded_ratio": med["sr_rcnn_size_aware_unfolded"] / med["mask_rcnn"]}


def bench_profile(args, base_cfg, sr_cfg):
    """
    Where the time at test goes: torch.profiler over the timed images of Mask R-CNN and of
    SR-RCNN in each test mode (G folded), one table each of the operators and ranges with the
    most self time on the device and, on a GPU, on the host too, after the warm-up images.
    """
    from torch.profiler import ProfilerActivity, profile

    sr, images, runs = inference_setup(args, base_cfg, sr_cfg)
    cuda = args.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    # on a GPU at batch 1 the host's launches and synchronisations matter as much as kernels
    sorts = ["self_device_time_total", "self_cpu_time_total"] if cuda else ["self_cpu_time_total"]
    timed_images = images[args.warmup:]
    with torch.no_grad():
        for name in ["mask_rcnn"] + [f"sr_rcnn_{m}" for m in TEST_MODES]:
            model, mode, fold = runs[name]
            sr.roi_heads.generator.fold_at_test = fold
            with test_mode(model, mode) if mode else contextlib.nullcontext():
                for batch in images[:args.warmup]:
                    model(batch)
                sync(args.device)
                with profile(activities=activities) as prof:
                    for batch in timed_images:
                        model(batch)
                    sync(args.device)
            for sort in sorts:
                print(f"== profile: {name}, {len(timed_images)} images, sorted by {sort}")
                print(prof.key_averages().table(sort_by=sort, row_limit=args.profile_rows))
    return {}


def bench_generator(args, sr_cfg):
    """G alone at test (eval, no autograd), folded and unfolded interleaved, --images calls each."""
    res = sr_cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
    seed_all_rng(0)
    generator = build_generator(sr_cfg, ShapeSpec(channels=sr_cfg.MODEL.FPN.OUT_CHANNELS,
                                                  height=res, width=res)).to(args.device).eval()
    print("== generator: seconds per call at test, G alone (batch norms folded / unfolded)")
    ratios = {}
    with torch.no_grad():
        for mode, rois in (("size_aware", sr_cfg.MODEL.SRRCNN.SIZE_AWARE.MAX_ROIS_PER_IMAGE),
                           ("sr", sr_cfg.MODEL.RPN.POST_NMS_TOPK_TEST)):
            # G's input: the RoI features, plus the RoIs' folded pixels where TEXTURE_SCALE > 0
            x = torch.randn(rois, sr_cfg.MODEL.FPN.OUT_CHANNELS + generator.texture_channels, res, res,
                            device=args.device)
            times = {"folded": [], "unfolded": []}
            for i in range(args.images + args.warmup):
                for name in times:
                    generator.fold_at_test = name == "folded"
                    t = timed(lambda: generator(x), args.device)
                    if i >= args.warmup:
                        times[name].append(t)
            for name, v in times.items():
                print(summary(f"{rois} RoIs ({mode}), {name}", v))
            ratios[f"generator_{mode}_folded_ratio"] = \
                statistics.median(times["folded"]) / statistics.median(times["unfolded"])
    return ratios


def bench_upscale(args, base_cfg):
    """
    The cost of the ceiling (issue 12): Mask R-CNN trained and tested on images at 2x
    (2 * --size) against the same Mask R-CNN at 1x, the same initial weights, interleaved.
    """
    big = base_cfg.clone()
    big.merge_from_list(["INPUT.MIN_SIZE_TRAIN", f"({2 * args.size},)", "INPUT.MAX_SIZE_TRAIN",
                         str(2 * args.size), "INPUT.MIN_SIZE_TEST", str(2 * args.size),
                         "INPUT.MAX_SIZE_TEST", str(2 * args.size)])
    cfgs = {"mask_rcnn_1x": base_cfg, "mask_rcnn_2x": big}
    models = {}
    for name, cfg in cfgs.items():
        seed_all_rng(0)  # the same initial weights at both sizes
        models[name] = build_model(cfg)
        deltas = models[name].proposal_generator.rpn_head.anchor_deltas  # as build_pair
        torch.nn.init.zeros_(deltas.weight), torch.nn.init.zeros_(deltas.bias)
    trainers = {k: make_trainer(cfgs[k], m, train_batches(cfgs[k], args.iters + args.warmup))
                for k, m in models.items()}
    images = {k: list(itertools.islice(iter(build_detection_test_loader(
        cfg, args.dataset, mapper=CheckedDatasetMapper(cfg, False))), args.images + args.warmup))
        for k, cfg in cfgs.items()}
    train, infer = {k: [] for k in cfgs}, {k: [] for k in cfgs}
    with EventStorage(0) as storage:
        for i in range(args.iters + args.warmup):
            for name, tr in trainers.items():  # interleaved
                tr.storage, tr.iter = storage, i
                t = timed(tr.run_step, args.device)
                if i >= args.warmup:
                    train[name].append(t)
    for m in models.values():
        m.eval()
    with torch.no_grad():
        for i in range(args.images + args.warmup):
            for name, m in models.items():
                t = timed(lambda: m(images[name][i]), args.device)
                if i >= args.warmup:
                    infer[name].append(t)
    print(f"== upscale: Mask R-CNN at {2 * args.size} px against {args.size} px, same weights")
    for k in cfgs:
        print(summary(f"{k} train iteration", train[k]) + "; " + summary("inference", infer[k]))
    med = {k: (statistics.median(train[k]), statistics.median(infer[k])) for k in cfgs}
    return {"upscale_train_ratio": med["mask_rcnn_2x"][0] / med["mask_rcnn_1x"][0],
            "upscale_infer_ratio": med["mask_rcnn_2x"][1] / med["mask_rcnn_1x"][1]}


def label(obj, method, name):
    """Run `obj.<method>` (e.g. a module's forward) inside a profiler range called `name`."""
    fn = getattr(obj, method)

    def labelled(*a, **k):
        with record_function(name):
            return fn(*a, **k)

    setattr(obj, method, labelled)


def breakdown_worker(args, base_cfg, sr_cfg):
    """In its own process (CUDA_LAUNCH_BLOCKING=1 on a GPU, so that a range's host time
    includes its kernels): profiler ranges per training iteration, in ms."""
    from torch.profiler import ProfilerActivity, profile

    batches = train_batches(base_cfg, args.iters + args.warmup)
    base, sr = build_pair(base_cfg, sr_cfg)
    out = {}
    for name, cfg, model in (("mask_rcnn", base_cfg, base), ("sr_rcnn", sr_cfg, sr)):
        trainer = make_trainer(cfg, model, batches)
        label(model, "forward", "bench.forward")
        label(model.backbone, "forward", "bench.backbone")
        label(model.roi_heads.box_head, "forward", "bench.box_head")
        label(model.roi_heads.box_predictor, "forward", "bench.box_predictor")
        for opt in (trainer.optimizer, getattr(trainer, "g_optimizer", None)):
            if opt is not None:  # no G optimizer: Mask R-CNN, or a G without parameters
                label(opt, "step", "bench.optimizer_step")
        with EventStorage(0) as storage:
            for i in range(args.warmup):
                trainer.storage, trainer.iter = storage, i
                trainer.run_step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for i in range(args.iters):
                    trainer.storage, trainer.iter = storage, args.warmup + i
                    with record_function("bench.step"):
                        trainer.run_step()
        out[name] = {e.key: e.cpu_time_total / args.iters / 1000 for e in prof.key_averages()
                     if e.key.startswith(("bench.", "srrcnn."))}
    print(json.dumps(out))


def bench_breakdown(args):
    env = dict(os.environ, CUDA_LAUNCH_BLOCKING="1") if args.device == "cuda" else None
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "breakdown"] + args.argv
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode != 0:
        raise SystemExit(f"breakdown worker failed:\n{res.stderr[-3000:]}")
    ms = json.loads(res.stdout.strip().splitlines()[-1])
    m, s = ms["mask_rcnn"], ms["sr_rcnn"]

    def g(d, k):
        return d.get(k, 0.0)

    def parts(d):
        heads = g(d, "bench.box_head") + g(d, "bench.box_predictor") + g(d, "srrcnn.roi_pool_lr")
        lr, gen = g(d, "srrcnn.backbone_lr"), g(d, "srrcnn.generator")
        optim = g(d, "bench.optimizer_step")
        return [lr, gen, heads, g(d, "bench.forward") - lr - gen - heads,
                g(d, "bench.step") - g(d, "bench.forward") - optim, optim]

    names = ["second backbone pass (0.5x image, forward)", "generator (forward)",
             "box head + predictor rows and 0.5x RoI pooling (forward)",
             "rest of the forward (backbone, RPN, mask head, losses)",
             "backward (SR-RCNN: G's and D's) and bookkeeping", "optimizer steps (SR-RCNN: G's and D's)"]
    rows = list(zip(names, parts(m), parts(s)))
    total_m, total_s = g(m, "bench.step"), g(s, "bench.step")
    extra = total_s - total_m
    print("== breakdown of one training iteration (torch.profiler ranges, ms; profiling adds overhead)")
    print(f"{'component':<62} {'Mask R-CNN':>11} {'SR-RCNN':>9} {'extra':>8} {'share':>6}")
    for name, a, b in rows:
        share = (b - a) / extra if extra > 0 else float("nan")
        print(f"{name:<62} {a:>11.1f} {b:>9.1f} {b - a:>8.1f} {share:>6.0%}")
    print(f"{'total':<62} {total_m:>11.1f} {total_s:>9.1f} {extra:>8.1f}")
    return {}


def parser():
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--config-file", default=os.path.join(ROOT, "configs/sr_rcnn_R_50_FPN_3x.yaml"),
                   help="SR-RCNN config; Mask R-CNN is the same config without what SR-RCNN adds")
    p.add_argument("--size", type=int, default=512, help="train and test image size (short = long side)")
    p.add_argument("--batch", type=int, default=2, help="images per training iteration")
    p.add_argument("--iters", type=int, default=5, help="timed training iterations")
    p.add_argument("--images", type=int, default=10, help="timed test images")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations / images first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dataset", default="srrcnn_shapes_train", help="registered dataset for the batches")
    p.add_argument("--what", default="train,memory,inference,breakdown",
                   help="comma list of: train, memory, inference, breakdown, upscale (Mask R-CNN "
                   "at 2x the size against 1x: the cost of the ceiling), generator (G alone at "
                   "test, batch norms folded against not), profile (torch.profiler tables of "
                   "each model and test mode at test)")
    p.add_argument("--g-output", choices=("identity", "constant"), default="identity",
                   help="G at the inference measurements: its last layer zeroed, plus its input "
                   "(identity: every mode predicts Mask R-CNN's boxes, post-processing costs the "
                   "same) or not (constant: every RoI G reads gets the same scores, so NMS gets "
                   "R x K boxes; the setting of the measurements before 2026-12-04)")
    p.add_argument("--profile-rows", type=int, default=20, help="rows per table of --what profile")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for SR-RCNN (KEY VALUE ...)")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    args.argv = [a for a in argv if a != "--worker"]
    if args.worker:
        i = args.argv.index(args.worker)
        args.argv = args.argv[:i] + args.argv[i + 1:]
    base_cfg, sr_cfg = make_cfgs(args)
    if args.worker:
        kind, _, which = args.worker.partition(":")
        return memory_worker(args, base_cfg, sr_cfg, which) if kind == "memory" else \
            breakdown_worker(args, base_cfg, sr_cfg)
    from srrcnn.data import ensure_generated

    ensure_generated(args.dataset)
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"config={os.path.relpath(args.config_file, ROOT)} device={device} size={args.size} "
          f"batch={args.batch} RoIs/image={sr_cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE} "
          f"G RoIs/image={sr_cfg.MODEL.SRRCNN.G_ROIS_PER_IMAGE or 'all'} "
          f"G width={sr_cfg.MODEL.SRRCNN.GENERATOR.WIDTH} test proposals={sr_cfg.MODEL.RPN.POST_NMS_TOPK_TEST} "
          f"opts={' '.join(args.opts) or '-'}")
    ratios = {}
    steps = {"train": lambda: bench_train(args, base_cfg, sr_cfg), "memory": lambda: bench_memory(args),
             "inference": lambda: bench_inference(args, base_cfg, sr_cfg),
             "breakdown": lambda: bench_breakdown(args), "upscale": lambda: bench_upscale(args, base_cfg),
             "generator": lambda: bench_generator(args, sr_cfg),
             "profile": lambda: bench_profile(args, base_cfg, sr_cfg)}
    for what in args.what.split(","):
        if what not in steps:
            raise SystemExit(f"--what: unknown {what!r}; choose from {', '.join(steps)}")
        ratios.update(steps[what]())
    print(" ".join(f"{k}={v:.3f}" for k, v in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
