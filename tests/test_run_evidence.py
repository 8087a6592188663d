# -*- coding: utf-8 -*-
"""tools/run_evidence.py: aggregation numbers, resume / skip / failure logic, one tiny real run.

Most tests replace train_net.py by a stub script that writes given eval results (milliseconds a
run); one test trains and evaluates tiny models for real (8 train_net.py starts).
"""
import argparse
import glob
import importlib.util
import json
import os
import shutil
import statistics

import pytest
import torch

from srrcnn import evaluation
from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "run_evidence", os.path.join(REPO_ROOT, "tools", "run_evidence.py"))
run_evidence = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_evidence)
import evidence_report  # noqa: E402  (tools/, on sys.path once run_evidence is loaded)
import evidence_runs  # noqa: E402

# Stands in for train_net.py: "trains" (writes model_final.pth) or, with --eval-only, writes the
# eval results given in $FAKE_RESULTS for "<variant>/seed<k>"; fails for the runs in $FAKE_FAIL.
FAKE_TRAIN_NET = r'''
import json, os, sys
argv = sys.argv[1:]
out = argv[max(i for i, a in enumerate(argv) if a == "OUTPUT_DIR") + 1]
run = os.path.dirname(out) if "--eval-only" in argv else out
key = os.path.basename(os.path.dirname(run)) + "/" + os.path.basename(run)
print("fake train_net.py", key)
if key in os.environ.get("FAKE_FAIL", "").split(","):
    print("KeyError: \"Dataset 'nope' is not registered!\"")
    sys.exit(1)
os.makedirs(out, exist_ok=True)
if "--eval-only" in argv:
    results = json.loads(os.environ["FAKE_RESULTS"])[key]
    with open(os.path.join(out, "eval_results.json"), "w") as f:
        json.dump({"info": {}, "results": results}, f)
else:
    with open(os.path.join(out, "model_final.pth"), "w") as f:
        f.write("weights")
'''
NAN = float("nan")
# bbox (AP, APs, APm, APl) per seed; segm is bbox - 1
MASK = {"hr": [(10, 5, 20, 30), (12, 6, 20, NAN), (14, 7, 20, 36)]}
SR = {"sr": [(13, 9, 21, 31), (12, 6, 22, 40), (18, 10, 23, 35)],
      "hr": [(11, 5, 19, 30), (13, 7, 18, 33), (15, 6, 20, 37)]}
SR_LABEL = run_evidence.VARIANTS["sr_rcnn"]["label"]  # e.g. "SR-RCNN (G on 32 RoIs/img)"
WITH_G, WITHOUT_G = f"{SR_LABEL} with G (sr)", f"{SR_LABEL} without G (hr)"
ROWS = {"Mask R-CNN": ("mask_rcnn", "hr"), WITH_G: ("sr_rcnn", "sr"), WITHOUT_G: ("sr_rcnn", "hr")}


def metrics(ap, aps, apm, apl, shift=0.0):
    return {"AP": ap + shift, "AP50": ap + 20 + shift, "AP75": ap + 5 + shift, "APs": aps + shift,
            "APm": apm + shift, "APl": apl + shift, "AP-cross": 1.0}


def fake_results(seeds=(0, 1, 2)):
    out = {}
    for name, by_mode in (("mask_rcnn", MASK), ("sr_rcnn", SR)):
        for s in seeds:
            out[f"{name}/seed{s}"] = {m: {"bbox": metrics(*v[s]), "segm": metrics(*v[s], shift=-1)}
                                      for m, v in by_mode.items()}
    return out


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """train_net.py replaced by the stub; returns a main(extra args) -> (code, stdout) runner."""
    script = tmp_path / "fake_train_net.py"
    script.write_text(FAKE_TRAIN_NET)
    monkeypatch.setattr(evidence_runs, "TRAIN_NET", str(script))
    monkeypatch.setenv("FAKE_RESULTS", json.dumps(fake_results()))
    base = ["--variants", "mask_rcnn,sr_rcnn", "--modes", "sr,hr", "--budget", "8",
            "--out", str(tmp_path / "out"), "--docs-dir", str(tmp_path / "docs")]

    def main(*args, capsys):
        code = run_evidence.main(base + list(args))
        return code, capsys.readouterr().out
    return main


def table(text, title):
    """{row: [cells]} of the Markdown table under the heading `title`."""
    rows, lines = {}, text.split(title, 1)[1].splitlines()
    for line in lines[2:]:
        if line.startswith("| ") and not line.startswith("| |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
        elif rows and not line.startswith("|"):
            break
    return rows


def test_schedule_from_budget():
    s = evidence_runs.schedule_opts(600)
    assert dict(zip(s[::2], s[1::2])) == {"SOLVER.MAX_ITER": "600", "SOLVER.STEPS": "(450, 560)",
                                          "SOLVER.WARMUP_ITERS": "100",
                                          "SOLVER.CHECKPOINT_PERIOD": "150"}
    for budget, steps in ((1, "()"), (2, "(1,)"), (4, "(3,)"), (8, "(6, 7)")):
        assert evidence_runs.schedule_opts(budget)[3] == steps
    assert evidence_runs.schedule_opts(2400)[-1] == "300"  # long runs: lose <= 300 its when cut


def test_shared_names_come_from_the_package():
    assert evidence_report.AP_KEYS is evaluation.AP_KEYS
    assert evidence_report.TEST_MODE_NAMES is evaluation.TEST_MODE_NAMES


def test_every_evidence_config_is_a_variant_with_its_own_table_rows():
    """configs/evidence/variants.txt lists every configs/evidence/*.yaml; rows are distinct."""
    variants = run_evidence.VARIANTS
    assert list(variants)[0] == "mask_rcnn" and variants["mask_rcnn_x2_input"]["input_scale"] == 2
    configs = {v["config"] for v in variants.values()}
    assert all(os.path.isfile(os.path.join(REPO_ROOT, c)) for c in configs)
    on_disk = {os.path.relpath(p, REPO_ROOT)
               for p in glob.glob(os.path.join(REPO_ROOT, "configs", "evidence", "*.yaml"))}
    assert on_disk <= configs, on_disk - configs
    rows = [evidence_report.row_label(v, m) for v in variants.values() for m in v["modes"]]
    assert len(rows) == len(set(rows))


def test_list_prints_the_variants(capsys):
    assert run_evidence.main(["--list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(run_evidence.VARIANTS)
    assert run_evidence.main(["--list", "--variants",
                              "sr_rcnn_double_addon,mask_rcnn_x2_input"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[:2] for l in lines] == [["sr_rcnn_double_addon", "1x"],
                                             ["mask_rcnn_x2_input", "2x"]]
    assert lines[0].endswith("configs/evidence/sr_rcnn_full_to_double_addon.yaml  "
                             "SR-RCNN (G: 1x -> 2x crops, add-on)")


@pytest.mark.parametrize("line", ["v 3x hr a.yaml Label", "v 1x hr a.yaml", "v 1x nope a.yaml L"])
def test_bad_index_line_is_an_error(tmp_path, line):
    index = tmp_path / "variants.txt"
    index.write_text("# a comment\nv0 1x hr a.yaml Label\n" + line + "\n")
    with pytest.raises(ValueError, match=f"{index}:3: "):
        run_evidence.load_variants(str(index))


STORED_RUNS = sorted(glob.glob(os.path.join(REPO_ROOT, "docs", "**", "run.json"), recursive=True))


def _harness_argv(manifest, variant, out):
    """The harness command line that makes the run of ``manifest`` (a run's or a pretraining's
    run.json), with --out ``out``: (argv, the run's own opts before SEED)."""
    opts = manifest["opts"]
    i = opts.index("SEED")
    harness = dict(zip(opts[i::2], opts[i + 1::2]))
    argv = ["--variants", variant, "--seeds", str(manifest["seed"]), "--device",
            harness["MODEL.DEVICE"], "--num-workers", harness["DATALOADER.NUM_WORKERS"],
            "--out", str(out)]
    if "INPUT.MAX_SIZE_TEST" in harness:
        scale = run_evidence.VARIANTS[variant]["input_scale"]
        argv += ["--input-size", str(int(harness["INPUT.MAX_SIZE_TEST"]) // scale)]
    for r in manifest["register_coco"]:
        argv += ["--register-coco", *r]
    return argv, opts[:i]


@pytest.mark.parametrize("path", STORED_RUNS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_stored_runs_match_what_the_harness_runs(path, tmp_path):
    """Each run.json kept in docs/ is accepted as is by the command that made it: the harness
    would reuse such a run (or pretraining), not refuse it or train it again."""
    manifest = json.loads(open(path).read())
    if manifest.get("stage") == evidence_runs.PRETRAIN:
        argv, own = _harness_argv(manifest, "mask_rcnn", tmp_path)
        argv += ["--pretrain-budget", str(manifest["budget"]), "--pretrain-dataset",
                 manifest["train_dataset"], "--pretrain-config", manifest["config"]]
        _, args = run_evidence.parse_args(argv + own)
        run = evidence_runs.Pretrain(manifest["seed"], args)
    else:
        name, pre = manifest["variant"], manifest.get("pretrain")
        argv, own = _harness_argv(manifest, name, tmp_path)
        argv += ["--modes", ",".join(manifest["modes"]), "--budget", str(manifest["budget"]),
                 "--train-dataset", manifest["train_dataset"], "--test-dataset",
                 manifest["test_dataset"]]
        if pre:
            argv += ["--pretrain-budget", str(pre["budget"]), "--pretrain-dataset",
                     pre["dataset"], "--pretrain-config", pre["config"]]
        p, args = run_evidence.parse_args(argv + own)
        pretrain = None
        if pre:  # the pretraining it started from, in the --out the run was made in
            made_in = argparse.Namespace(**vars(args))
            made_in.out = os.path.dirname(os.path.dirname(os.path.dirname(pre["weights"])))
            pretrain = evidence_runs.Pretrain(manifest["seed"], made_in)
        run = evidence_runs.Run(name, run_evidence.select_variants(p, args)[name],
                                manifest["seed"], args, pretrain)
    os.makedirs(run.dir)
    shutil.copy(path, os.path.join(run.dir, "run.json"))
    assert run.state() == "train"  # SystemExit if the settings differ


def test_aggregation_numbers_tables_json_and_png(fake, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("Some *observation*.\n")
    code, out = fake("--seeds", "0", "1", "2", "--notes", str(notes), capsys=capsys)
    assert code == 0, out
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert "python tools/run_evidence.py --variants mask_rcnn,sr_rcnn" in text
    bbox = table(text, "## bbox AP")
    assert list(bbox) == list(ROWS)
    ap = [v[0] for v in SR["sr"]]
    mean_std = f"{statistics.mean(ap):.1f} ± {statistics.stdev(ap):.1f}"
    assert bbox[WITH_G][0] == mean_std
    assert bbox["Mask R-CNN"][0] == "12.0 ± 2.0" and bbox["Mask R-CNN"][-1] == "3"
    assert bbox["Mask R-CNN"][5] == "33.0 ± 4.2"  # APl: the NaN seed left out
    assert table(text, "## segm AP")["Mask R-CNN"][0] == "11.0 ± 2.0"
    diff = table(text, "## Difference to the baseline (Mask R-CNN)")
    assert list(diff) == [WITH_G, WITHOUT_G]
    # paired: AP 13-10, 12-12, 18-14 = 3, 0, 4; APl only on seeds 0 and 2: 1, -1
    assert diff[WITH_G][0] == "+2.3 ± 2.1 (2/3)"
    assert diff[WITH_G][3] == "+0.0 ± 1.4 (1/2)"
    # G at test: sr - hr of the same runs: AP 13-11, 12-13, 18-15 = 2, -1, 3
    effect = table(text, "## Effect of G at test, bbox")
    assert list(effect) == [WITH_G]
    assert effect[WITH_G][0] == "+1.3 ± 2.1 (2/3)"
    per_seed = text.split("## Per seed (bbox)")[1].splitlines()
    per_seed = [l for l in per_seed if l.startswith(f"| {WITHOUT_G} | ")]
    assert per_seed[1] == f"| {WITHOUT_G} | 1 | 13.0 | 7.0 | 18.0 | 33.0 |"
    assert text.rstrip().endswith("## Notes\n\nSome *observation*.")
    assert "![bbox AP by size](results_ap_by_size.png)" in text

    data = json.loads((tmp_path / "docs" / "results.json").read_text())  # strict json: no NaN
    assert data["seeds"] == [0, 1, 2] and data["budget"] == 8
    assert data["command"][:3] == ["python", "tools/run_evidence.py", "--variants"]
    assert data["variants"]["sr_rcnn"]["modes"] == ["sr", "hr"]
    assert data["runs"]["sr_rcnn"]["seed1"]["sr"]["bbox"]["AP"] == 12
    assert data["runs"]["mask_rcnn"]["seed1"]["hr"]["bbox"]["APl"] is None
    s = data["summary"][WITH_G]
    assert (s["variant"], s["mode"]) == ("sr_rcnn", "sr")
    assert s["bbox"]["AP"]["values"] == ap and s["bbox"]["AP"]["n"] == 3
    assert s["bbox"]["AP"]["mean"] == pytest.approx(statistics.mean(ap))
    assert s["segm"]["AP"]["mean"] == pytest.approx(statistics.mean(ap) - 1)
    assert data["summary"]["Mask R-CNN"]["bbox"]["APl"]["n"] == 2
    v = data["vs_baseline"][WITH_G]["bbox"]["AP"]
    assert v["values"] == [3, 0, 4] and v["improved"] == 2
    assert v["std"] == pytest.approx(statistics.stdev([3, 0, 4]))
    assert "Mask R-CNN" not in data["vs_baseline"]
    assert data["vs_hr"][WITH_G]["baseline"] == WITHOUT_G
    assert data["vs_hr"][WITH_G]["bbox"]["AP"]["values"] == [2, -1, 3]

    import matplotlib.image

    image = matplotlib.image.imread(str(tmp_path / "docs" / "results_ap_by_size.png"))
    assert image.ndim == 3 and image.shape[1] > 300 and image[..., :3].std() > 0.05


def test_failed_run_others_complete_then_resume(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "sr_rcnn/seed1")
    code, out = fake("--seeds", "0", "1", "--jobs", "2", capsys=capsys)
    assert code == 1
    log = tmp_path / "out" / "sr_rcnn" / "seed1" / "train.log"
    assert "sr_rcnn/seed1: train failed (exit code 1)" in out and str(log) in out
    assert "Dataset 'nope' is not registered" in out  # the log's tail
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert table(text, "## bbox AP")[WITH_G][-1] == "1 of 2"
    assert "Fewer seeds than asked" in text
    assert f"| {WITH_G} | 1 | missing |" in text
    assert table(text, "## Difference")[WITH_G][0] == "+3.0 (1/1)"

    host = tmp_path / "out" / "sr_rcnn" / "seed1" / evidence_runs.HOST_RECORD
    first = json.loads(host.read_text())["train"]
    assert len(first) == 1 and first[0]["torch"] == torch.__version__ and first[0]["aten"]

    monkeypatch.delenv("FAKE_FAIL")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # the resume takes other kernels
    (host.parent / "last_checkpoint").write_text("model_0000003.pth")  # as if it got that far
    code, out = fake("--seeds", "0", "1", "--jobs", "2", capsys=capsys)
    assert code == 0, out
    assert out.count("[skip]") == 3 and "[start] sr_rcnn/seed1: train" in out
    times = json.loads((host.parent / "times.json").read_text())
    assert [s["resumed_from"] for s in times["train_segments"]] == [None, "model_0000003.pth"]
    assert times["train_s"] == pytest.approx(sum(s["s"] for s in times["train_segments"]), abs=0.2)
    segments = json.loads(host.read_text())["train"]
    assert segments[0] == first[0] and segments[1]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert table((tmp_path / "docs" / "RESULTS.md").read_text(),
                 "## bbox AP")[WITH_G][-1] == "2"


def test_every_run_failing_still_writes_the_summary(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "mask_rcnn/seed0,sr_rcnn/seed0")
    code, out = fake("--seeds", "0", capsys=capsys)
    assert code == 1 and out.count("[FAILED]") == 2
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert table(text, "## bbox AP")["Mask R-CNN"] == ["n/a"] * 6 + ["0 of 1"]
    assert not (tmp_path / "docs" / "results_ap_by_size.png").exists()
    assert json.loads((tmp_path / "docs" / "results.json").read_text())["runs"] == {}


def test_report_only_runs_nothing(fake, tmp_path, capsys):
    code, _ = fake("--seeds", "0", capsys=capsys)  # one seed complete
    assert code == 0
    os.remove(tmp_path / "docs" / "RESULTS.md")
    code, out = fake("--seeds", "0", "1", "--report-only", capsys=capsys)
    assert code == 0 and "[start]" not in out and "fake train_net" not in out
    assert not (tmp_path / "out" / "mask_rcnn" / "seed1").exists()
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert "1 of 2" in text


@pytest.mark.parametrize("pretrain", [[], ["--pretrain-budget", "0"]])
def test_dry_run_prints_commands_and_writes_nothing(fake, tmp_path, capsys, pretrain):
    code, out = fake("--seeds", "0", "--dry-run", *pretrain, "SOLVER.IMS_PER_BATCH", "2",
                     capsys=capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(evidence_runs.TRAIN_NET in l for l in lines)
    assert "--resume" in lines[0] and "SOLVER.IMS_PER_BATCH 2" in lines[0]
    assert "--eval-only --test-modes sr,hr" in lines[3]
    assert not (tmp_path / "out").exists() and not (tmp_path / "docs").exists()


def test_from_scratch_commands_and_manifest_as_before(fake, tmp_path, capsys):
    """--pretrain-budget 0 (the default): no MODEL.WEIGHTS to train, no new manifest key, so the
    run.json of runs made before the option still match."""
    assert fake("--seeds", "0", "--pretrain-budget", "0", capsys=capsys)[0] == 0
    run = tmp_path / "out" / "sr_rcnn" / "seed0"
    manifest = json.loads((run / "run.json").read_text())
    assert set(manifest) == {"variant", "seed", "config", "budget", "train_dataset",
                             "test_dataset", "register_coco", "modes", "opts", "train_command",
                             "eval_command"}
    config = os.path.join(REPO_ROOT, run_evidence.VARIANTS["sr_rcnn"]["config"])
    assert manifest["train_command"][1:] == [
        evidence_runs.TRAIN_NET, "--config-file", config, "--resume", *manifest["opts"],
        "DATASETS.TEST", "()", "OUTPUT_DIR", str(run)]
    assert not (tmp_path / "out" / "pretrain").exists()
    assert not list((tmp_path / "out").rglob(evidence_runs.PRETRAIN_HASH))
    assert "Protocol: from scratch." in (tmp_path / "docs" / "RESULTS.md").read_text()


def test_input_size_resizes_every_run_and_doubles_the_ceiling(fake, tmp_path, capsys):
    """--input-size S: INPUT.* of every run (train and eval) at S px, a variant's input_scale
    multiplies it; the command line may then not set INPUT.* itself."""
    code, out = fake("--seeds", "0", "--variants", "mask_rcnn,mask_rcnn_x2_input",
                     "--input-size", "160", "--dry-run", capsys=capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 4
    for line, size in zip(lines, (160, 160, 320, 320)):
        assert (f"INPUT.MIN_SIZE_TRAIN '({size},)' INPUT.MAX_SIZE_TRAIN {size} "
                f"INPUT.MIN_SIZE_TEST {size} INPUT.MAX_SIZE_TEST {size}") in line, line
    with pytest.raises(SystemExit):
        fake("--input-size", "160", "INPUT.MIN_SIZE_TEST", "100", capsys=capsys)
    assert "['INPUT.MIN_SIZE_TEST']" in capsys.readouterr().err


def test_pretrain_once_per_seed_reused_and_checked(fake, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--seeds", "0", "1", "--jobs", "2", "--pretrain-budget", "4",
            "--pretrain-dataset", "srrcnn_shapes_tiny_pretrain"]
    code, log = fake(*args, "--dry-run", capsys=capsys)
    lines = log.strip().splitlines()
    assert code == 0 and len(lines) == 2 + 8 and not out.exists()
    assert [l.split()[-1] for l in lines[:2]] == [str(out / "pretrain" / f"seed{s}")
                                                  for s in (0, 1)]

    code, log = fake(*args, capsys=capsys)
    assert code == 0, log
    assert log.count("[start] pretrain/seed") == 2
    weights = {s: str(out / "pretrain" / f"seed{s}" / "model_final.pth") for s in (0, 1)}
    pretrain = json.loads((out / "pretrain" / "seed1" / "run.json").read_text())
    opts = dict(zip(pretrain["opts"][::2], pretrain["opts"][1::2]))
    assert pretrain["config"] == run_evidence.PRETRAIN_CONFIG and pretrain["budget"] == 4
    assert (opts["SEED"], opts["SOLVER.MAX_ITER"]) == ("1", "4")
    assert opts["DATASETS.TRAIN"] == '("srrcnn_shapes_tiny_pretrain",)'
    assert "MODEL.WEIGHTS" not in pretrain["train_command"]
    for name in ("mask_rcnn", "sr_rcnn"):
        for s in (0, 1):
            # a seed's runs start once its pretraining is done, from its weights
            assert log.index(f"[done]  pretrain/seed{s}") < log.index(f"[start] {name}/seed{s}")
            manifest = json.loads((out / name / f"seed{s}" / "run.json").read_text())
            assert manifest["pretrain"] == dict(budget=4, dataset="srrcnn_shapes_tiny_pretrain",
                                                config=run_evidence.PRETRAIN_CONFIG,
                                                weights=weights[s])
            train, evaluate = manifest["train_command"], manifest["eval_command"]
            assert train[train.index("MODEL.WEIGHTS") + 1] == weights[s]
            assert evaluate[evaluate.index("MODEL.WEIGHTS") + 1].endswith(f"{name}/seed{s}/"
                                                                          "model_final.pth")
            # the weights it started from, for tools/paired_seeds.py to check a pair by
            assert (out / name / f"seed{s}" / evidence_runs.PRETRAIN_HASH).read_text() == (
                evidence_runs.file_sha256(weights[s]) + "\n")
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert ("Protocol: fine-tuned from a Mask R-CNN pretrained for 4 iterations on "
            "`srrcnn_shapes_tiny_pretrain` (one per seed).") in text

    mtime = os.stat(weights[1]).st_mtime_ns
    for f in ("model_final.pth", "eval/eval_results.json"):
        os.remove(out / "sr_rcnn" / "seed1" / f)
    code, log = fake(*args, capsys=capsys)  # retrains that run from the same pretraining
    assert code == 0, log
    assert "[skip]  pretrain/seed1: already trained" in log and "[start] pretrain" not in log
    assert "[start] sr_rcnn/seed1: train" in log and os.stat(weights[1]).st_mtime_ns == mtime

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for other, needle in ((["--pretrain-budget", "5"], "budget: was 4, now 5"),
                          (["--pretrain-budget", "0"], "pretrain: was {")):
        with pytest.raises(SystemExit) as e:
            fake(*args, *other, capsys=capsys)
        assert needle in str(e.value) and "another --out" in str(e.value)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_failed_pretraining_fails_only_its_seed(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "pretrain/seed1")
    code, log = fake("--seeds", "0", "1", "--pretrain-budget", "4", capsys=capsys)
    assert code == 1 and log.count("[start] pretrain/seed1") == 1
    assert "pretrain/seed1: train failed (exit code 1)" in log
    assert "mask_rcnn/seed1: not trained: its pretraining pretrain/seed1 failed" in log
    assert not (tmp_path / "out" / "sr_rcnn" / "seed1" / "model_final.pth").exists()
    assert (tmp_path / "out" / "sr_rcnn" / "seed0" / "eval" / "eval_results.json").is_file()


@pytest.mark.parametrize("args, needles", [
    (["--variants", "mask_rcnn,nope"], ["'nope'", "known: " + ", ".join(run_evidence.VARIANTS)]),
    (["--baseline", "nope"], ["'nope'", "known:"]),
    (["SEED", "3"], ["['SEED']", "harness"]),
    (["MODEL.WEIGHTS", "model.pth"], ["['MODEL.WEIGHTS']", "harness"]),
    (["--pretrain-budget", "-1"], ["--pretrain-budget and --input-size >= 0"]),
    (["--input-size", "-1"], ["--pretrain-budget and --input-size >= 0"]),
    (["--pretrain-budget", "2", "--pretrain-config", "configs/no_such.yaml"],
     ["--pretrain-config", "configs/no_such.yaml"]),
    (["MODEL.MASK_ON"], ["KEY VALUE"]),
    (["--modes", "sr"], ["leaves variant mask_rcnn no test mode"]),
    (["--notes", "/no/such/notes.md"], ["/no/such/notes.md"]),
])
def test_bad_arguments_are_clear_errors(tmp_path, capsys, args, needles):
    with pytest.raises(SystemExit) as e:
        run_evidence.main(["--out", str(tmp_path / "out")] + args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "out").exists()


def test_missing_config_is_an_error_before_anything_runs(tmp_path, capsys, monkeypatch):
    variants = dict(run_evidence.VARIANTS)
    variants["mask_rcnn"] = dict(variants["mask_rcnn"], config="configs/no_such.yaml")
    monkeypatch.setattr(run_evidence, "VARIANTS", variants)
    with pytest.raises(SystemExit):
        run_evidence.main(["--out", str(tmp_path / "out")])
    assert "config file not found" in capsys.readouterr().err and not (tmp_path / "out").exists()


TINY = ["MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", "32", "MODEL.ROI_MASK_HEAD.NUM_CONV", "1",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "32", "MODEL.SRRCNN.GENERATOR.WIDTH", "16",
        "MODEL.SRRCNN.GENERATOR.NUM_BLOCKS", "2", "INPUT.MIN_SIZE_TRAIN", "(128,)",
        "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128",
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.BASE_LR", "0.005"]


def test_tiny_real_runs_resume_skip_reevaluate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out, docs = tmp_path / "out", tmp_path / "docs"
    args = ["--budget", "2", "--seeds", "0", "1", "--variants", "mask_rcnn,sr_rcnn",
            "--modes", "sr,hr", "--train-dataset", "srrcnn_shapes_tiny_train",
            "--test-dataset", "srrcnn_shapes_tiny_val", "--out", str(out),
            "--docs-dir", str(docs), "--num-workers", "0", "--jobs", "2", *TINY]
    code = run_evidence.main(args)
    log = capsys.readouterr().out
    assert code == 0, log
    assert log.count("[done]") == 8  # 4 trainings, 4 evaluations
    for name in ("RESULTS.md", "results.json", "results_ap_by_size.png"):
        assert (docs / name).is_file(), name
    data = json.loads((docs / "results.json").read_text())
    assert set(data["runs"]) == {"mask_rcnn", "sr_rcnn"}
    assert set(data["runs"]["mask_rcnn"]) == {"seed0", "seed1"}
    assert set(data["runs"]["mask_rcnn"]["seed0"]) == {"hr"}
    assert set(data["runs"]["sr_rcnn"]["seed1"]) == {"sr", "hr"}
    for row in ("Mask R-CNN", WITH_G, WITHOUT_G):
        assert data["summary"][row]["bbox"]["AP"]["n"] == 2 and "segm" in data["summary"][row]
    manifest = json.loads((out / "sr_rcnn" / "seed0" / "run.json").read_text())
    assert manifest["budget"] == 2 and "SOLVER.MAX_ITER" in manifest["opts"]
    assert "--resume" in manifest["train_command"] and "--eval-only" in manifest["eval_command"]

    files = sorted(out.glob("*/seed*/model_final.pth"))
    files += sorted(out.glob("*/seed*/eval/eval_results.json"))
    assert len(files) == 8
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    assert run_evidence.main(args) == 0  # nothing to do
    log = capsys.readouterr().out
    assert log.count("[skip]") == 4 and "[start]" not in log
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes

    redo = out / "sr_rcnn" / "seed1" / "eval" / "eval_results.json"
    redo.unlink()
    assert run_evidence.main(args) == 0  # only that run, only its evaluation
    log = capsys.readouterr().out
    assert log.count("[skip]") == 3 and log.count("[start]") == 1
    assert "[start] sr_rcnn/seed1: eval" in log and redo.is_file()
    assert {f: f.stat().st_mtime_ns for f in files if f != redo} == {
        f: m for f, m in mtimes.items() if f != redo}

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert args[:2] == ["--budget", "2"]
    with pytest.raises(SystemExit) as e:
        run_evidence.main(["--budget", "3"] + args[2:])
    assert "budget: was 2, now 3" in str(e.value) and "another --out" in str(e.value)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_tiny_real_fine_tuning_starts_at_iteration_0_from_the_pretrained_weights(tmp_path, capsys,
                                                                                   monkeypatch):
    """SR-RCNN fine-tuned from a Mask R-CNN pretrained for more iterations than its own budget:
    the weights load (the generator initialised fresh) and its schedule starts at iteration 0."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    code = run_evidence.main([
        "--budget", "2", "--pretrain-budget", "3", "--seeds", "0", "--variants", "sr_rcnn",
        "--modes", "hr", "--train-dataset", "srrcnn_shapes_tiny_train",
        "--pretrain-dataset", "srrcnn_shapes_tiny_pretrain",
        "--test-dataset", "srrcnn_shapes_tiny_val", "--out", str(out),
        "--docs-dir", str(tmp_path / "docs"), "--num-workers", "0", *TINY])
    log = capsys.readouterr().out
    assert code == 0, log
    assert log.count("[done]") == 3  # pretraining, training, evaluation
    weights = out / "pretrain" / "seed0" / "model_final.pth"
    pretrain_log = (out / "pretrain" / "seed0" / "train.log").read_text()
    assert "Starting training from iteration 0" in pretrain_log
    train_log = (out / "sr_rcnn" / "seed0" / "train.log").read_text()
    assert f"Loading from {weights} ..." in train_log
    assert "roi_heads.generator." in train_log  # reported as not in the checkpoint
    assert "Starting training from iteration 0" in train_log

    import torch

    assert torch.load(weights, weights_only=True)["iteration"] == 2  # 3 iterations
    final = torch.load(out / "sr_rcnn" / "seed0" / "model_final.pth", weights_only=True)
    assert final["iteration"] == 1 and any(k.startswith("roi_heads.generator.")
                                           for k in final["model"])
