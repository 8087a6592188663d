#!/usr/bin/env python
"""
Paired differences over seeds whose runs live in different harness folders (e.g. seed 0 run on
the CPU, seeds 1 and 2 on a GPU): a Markdown table of mean ± std of (row − reference, same
seed), box AP, with the per-seed values of one metric (and, with ``--ci``, the 95 % t-interval
of its mean difference: what the seeds can and cannot tell apart).

Each ``--runs K=DIR`` says where seed K's runs are: ``DIR/<variant>/seed<K>/eval/eval_results.json``
(tools/run_evidence.py's layout). ``--fallback`` names a harness ``results.json`` read for a
(variant, seed) whose run folder is gone. Each ``--diff "LABEL=VARIANT:MODE,REF_VARIANT:MODE"``
is one row; ``VARIANT@DIR:MODE`` reads ``<variant>/seed<K>/DIR/eval_results.json`` instead of
``eval/`` (e.g. an eval-only pass with other test settings, ``eval_norm_batch``). Either side
may be several runs joined by ``+`` (``A:hr+B:hr+C:hr``): per seed, the mean of their metrics,
e.g. a reference averaged over Mask R-CNN runs that differ only by a negligible change. All runs
of a row come from the same folder, so each difference is measured on one machine even when the
seeds' machines differ. Fine-tuned runs that record the weights they started from
(``pretrain.sha256``, written by the harness) are paired only if those agree: a pretraining of
one seed made again elsewhere need not be the same one. Runs that record the machine's float
kernels (``host.json``, written by the harness) and differ there, or changed machine on a
resume, are marked ‡: paired by data and initial weights, but not trajectory for trajectory.

  python tools/paired_seeds.py --runs 0=docs/results/small_objects_cpu/runs \\
      --runs 1=docs/results/small_objects_gpu/runs --runs 2=docs/results/small_objects_gpu/runs \\
      --fallback docs/results/small_objects_cpu/causes/results.json \\
      --diff "GN hr − thesis hr=sr_rcnn_thesis_g_gn:hr,sr_rcnn_thesis_cfg:hr" --out-md table.md
"""
import argparse
import json
import os
import shlex
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evidence_report import SIZE_KEYS, _cell, _finite, _stats  # noqa: E402
from evidence_runs import HOST_RECORD, PRETRAIN_HASH  # noqa: E402


def parse_runs(items: List[str]) -> Dict[int, str]:
    """["K=DIR", ...] -> {K: DIR}."""
    out = {}
    for item in items:
        seed, sep, folder = item.partition("=")
        if not sep or not seed.strip().isdigit() or not folder:
            raise ValueError(f"--runs {item!r}: expected SEED=DIR, e.g. 0=docs/results/.../runs")
        out[int(seed)] = folder
    return out


Side = List[Tuple[str, str]]  # the (variant, mode) runs whose per-seed mean is one side of a row


def parse_diff(item: str) -> Tuple[str, Side, Side]:
    """"LABEL=VARIANT:MODE,REF:MODE" -> (label, [(variant, mode)], [(ref variant, mode)]); a side
    "A:MODE+B:MODE" gives several runs, averaged per seed."""
    label, sep, rest = item.rpartition("=")
    parts = [p.split("+") for p in rest.split(",")]
    if (not sep or not label or len(parts) != 2
            or not all(run.count(":") == 1 and run.split(":")[0] for side in parts for run in side)):
        raise ValueError(f"--diff {item!r}: expected LABEL=VARIANT:MODE,REF_VARIANT:MODE "
                         "(a side may join runs with +: A:hr+B:hr)")
    a, b = ([tuple(run.split(":")) for run in side] for side in parts)
    return label, a, b


def side_ap(runs: Dict[int, str], fallback: Optional[dict], side: Side, seed: int) -> Dict[str, float]:
    """The bbox metrics of one side of a row for one seed: one run's, or the mean of several."""
    results = [box_ap(runs, fallback, variant, mode, seed) for variant, mode in side]
    keys = [k for k in results[0] if all(_finite(r.get(k)) for r in results)]
    return {k: sum(r[k] for r in results) / len(results) for k in keys}


def check_same_start(runs: Dict[int, str], variants: List[str], seed: int) -> None:
    """ValueError if the runs of a row record different pretrained weights (a run without the
    record, e.g. one trained from scratch or before the harness wrote it, is not checked)."""
    digests = {}
    for variant in variants:
        path = os.path.join(runs[seed], variant.partition("@")[0], f"seed{seed}", PRETRAIN_HASH)
        if os.path.isfile(path):
            with open(path) as f:
                digests[path] = f.read().strip()
    if len(set(digests.values())) > 1:
        raise ValueError("not a pair: these runs started from different pretrained weights "
                         f"(seed {seed}): " + ", ".join(f"{p} = {d[:12]}" for p, d in digests.items()))


def same_kernels(runs: Dict[int, str], variants: List[str], seed: int) -> bool:
    """False if the runs of a row that record their machine's float kernels (HOST_RECORD) were
    trained on different ones, or one of them on several (a resume elsewhere); runs without the
    record (made before the harness wrote it) are not checked."""
    seen = set()
    for variant in variants:
        path = os.path.join(runs[seed], variant.partition("@")[0], f"seed{seed}", HOST_RECORD)
        if os.path.isfile(path):
            with open(path) as f:
                segments = json.load(f).get("train", [])
            seen.update(json.dumps(s, sort_keys=True) for s in segments)
    return len(seen) <= 1


def box_ap(runs: Dict[int, str], fallback: Optional[dict], variant: str, mode: str,
           seed: int) -> Dict[str, float]:
    """The bbox metrics of one run's test mode (``variant`` may end in ``@EVAL_DIR``); a clear
    error naming what is missing."""
    variant, _, eval_dir = variant.partition("@")
    path = os.path.join(runs[seed], variant, f"seed{seed}", eval_dir or "eval", "eval_results.json")
    if os.path.isfile(path):
        with open(path) as f:
            results = json.load(f)["results"]
        where = path
    else:
        results = None if eval_dir else (fallback or {}).get("runs", {}).get(variant, {}).get(f"seed{seed}")
        where = f"{path} (missing) or the --fallback results.json"
        if results is None:
            raise FileNotFoundError(f"no results for {variant} seed {seed}: {where}")
    if mode not in results or "bbox" not in results[mode]:
        raise KeyError(f"test mode {mode!r} (bbox) not in {where}; it has {sorted(results)}")
    return results[mode]["bbox"]


# two-sided 95 % quantiles of Student's t, by degrees of freedom (1.96 beyond 30)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def confidence_interval(st: Dict) -> str:
    """The 95 % t-interval of a mean from ``_stats`` (mean, std, n) of paired differences, e.g.
    "[-5.9, +9.1]"; "-" for fewer than 2 values."""
    n = st["n"]
    if n < 2:
        return "-"
    half = (T_975[n - 2] if n - 1 <= len(T_975) else 1.96) * st["std"] / n ** 0.5
    return f"[{st['mean'] - half:+.1f}, {st['mean'] + half:+.1f}]"


def table(runs, fallback, diffs, per_seed_metric: str = "APs", ci: bool = False) -> List[str]:
    seeds = sorted(runs)
    out = ["| | " + " | ".join(SIZE_KEYS) + f" | {per_seed_metric} per seed ({', '.join(map(str, seeds))}) |"
           + (f" {per_seed_metric} 95 % CI |" if ci else ""),
           "|---|" + "---|" * (len(SIZE_KEYS) + 1 + ci)]
    marked = []
    for label, a, b in diffs:
        variants = [variant for variant, _ in a + b]
        for s in seeds:
            check_same_start(runs, variants, s)
        mixed = [s for s in seeds if not same_kernels(runs, variants, s)]
        rows = [(side_ap(runs, fallback, a, s), side_ap(runs, fallback, b, s)) for s in seeds]
        cells, per_seed, interval = [], "", ""
        for k in SIZE_KEYS:
            d = [x[k] - y[k] for x, y in rows if _finite(x.get(k)) and _finite(y.get(k))]
            st = _stats(d)
            cells.append(f"{_cell(st, True)} ({sum(v > 0 for v in d)}/{st['n']})")
            if k == per_seed_metric:
                per_seed = ", ".join(f"{v:+.1f}" for v in d)
                interval = f" {confidence_interval(st)} |" if ci else ""
        out.append(f"| {label}{' ‡' * bool(mixed)} | " + " | ".join(cells) + f" | {per_seed} |" + interval)
        marked.extend(f"{label} (seed {s})" for s in mixed)
    if marked:
        out += ["", "‡ trained on machines whose float kernels differ (host.json), not trajectory "
                "for trajectory: " + ", ".join(marked) + "."]
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--runs", action="append", required=True, metavar="SEED=DIR")
    p.add_argument("--fallback", help="a harness results.json for runs whose folder is gone")
    p.add_argument("--diff", action="append", required=True, metavar="LABEL=VARIANT:MODE,REF:MODE")
    p.add_argument("--per-seed", default="APs", choices=SIZE_KEYS, help="metric listed per seed")
    p.add_argument("--ci", action="store_true",
                   help="add the 95 %% t-interval of the mean difference of the --per-seed metric")
    p.add_argument("--out-md", help="also write the table (with this command above it) here")
    args = p.parse_args(argv)
    runs = parse_runs(args.runs)
    diffs = [parse_diff(d) for d in args.diff]
    fallback = None
    if args.fallback:
        with open(args.fallback) as f:
            fallback = json.load(f)
    lines = table(runs, fallback, diffs, args.per_seed, args.ci)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out_md:
        os.makedirs(os.path.dirname(os.path.abspath(args.out_md)), exist_ok=True)
        command = shlex.join(["python", "tools/paired_seeds.py", *argv])
        with open(args.out_md, "w") as f:
            f.write(f"Box AP, mean ± sample std of paired per-seed differences (row − reference, "
                    f"same seed, same machine); (k/n): seeds where the row is higher"
                    + ("; CI: 95 % t-interval of the mean difference" if args.ci else "") + ". "
                    f"Generated by `{command}`.\n\n" + text)
    return lines


if __name__ == "__main__":
    main()
