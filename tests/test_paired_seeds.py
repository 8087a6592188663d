# -*- coding: utf-8 -*-
"""tools/paired_seeds.py: paired differences over seeds kept in different run folders."""
import importlib.util
import json
import os

import pytest

from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location("paired_seeds", os.path.join(REPO_ROOT, "tools", "paired_seeds.py"))
paired_seeds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_seeds)


def _write_run(root, variant, seed, modes):
    """modes: {mode: AP}; APs = AP + 1, APm = AP + 2, APl = AP + 3."""
    folder = root / variant / f"seed{seed}" / "eval"
    folder.mkdir(parents=True)
    results = {m: {"bbox": {"AP": ap, "APs": ap + 1, "APm": ap + 2, "APl": ap + 3}} for m, ap in modes.items()}
    (folder / "eval_results.json").write_text(json.dumps({"info": {}, "results": results}))


def test_pairs_each_seed_in_its_own_folder_with_a_fallback(tmp_path):
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    _write_run(cpu, "cause", 0, {"hr": 12.0, "sr": 1.0})          # reference of seed 0: fallback
    _write_run(gpu, "base", 1, {"hr": 20.0})
    _write_run(gpu, "cause", 1, {"hr": 24.0, "sr": 4.0})
    _write_run(gpu, "base", 2, {"hr": 30.0})
    _write_run(gpu, "cause", 2, {"hr": 35.0, "sr": 5.0})
    fallback = tmp_path / "results.json"
    fallback.write_text(json.dumps({"runs": {"base": {"seed0": {"hr": {"bbox": {
        "AP": 10.0, "APs": 11.0, "APm": 12.0, "APl": 13.0}}}}}}))
    out_md = tmp_path / "t.md"
    lines = paired_seeds.main([
        "--runs", f"0={cpu}", "--runs", f"1={gpu}", "--runs", f"2={gpu}", "--fallback", str(fallback),
        "--diff", "cause hr − base hr=cause:hr,base:hr", "--diff", "G at test=cause:sr,cause:hr",
        "--out-md", str(out_md)])
    # differences 2, 4, 5: mean 3.67, sample std 1.53, 3 of 3 higher; per seed listed for APs
    assert lines[2] == ("| cause hr − base hr | +3.7 ± 1.5 (3/3) | +3.7 ± 1.5 (3/3) | +3.7 ± 1.5 (3/3) "
                        "| +3.7 ± 1.5 (3/3) | +2.0, +4.0, +5.0 |")
    assert lines[3].startswith("| G at test | -20.3 ± 9.5 (0/3) |")  # -11, -20, -30
    text = out_md.read_text()
    assert "python tools/paired_seeds.py --runs" in text and lines[2] in text


def test_another_eval_folder_of_the_same_run(tmp_path):
    _write_run(tmp_path, "a", 0, {"sr": 10.0})
    other = tmp_path / "a" / "seed0" / "eval_norm_batch"
    other.mkdir()
    (other / "eval_results.json").write_text(json.dumps({"results": {"sr": {"bbox": {
        "AP": 4.0, "APs": 5.0, "APm": 6.0, "APl": 7.0}}}}))
    lines = paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "batch − running=a@eval_norm_batch:sr,a:sr"])
    assert lines[2] == "| batch − running | -6.0 (0/1) | -6.0 (0/1) | -6.0 (0/1) | -6.0 (0/1) | -6.0 |"


def test_missing_run_and_mode_name_what_is_missing(tmp_path):
    _write_run(tmp_path, "a", 0, {"hr": 1.0})
    with pytest.raises(FileNotFoundError, match=r"b seed 0: .*b/seed0/eval/eval_results.json"):
        paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "x=a:hr,b:hr"])
    with pytest.raises(KeyError, match=r"test mode 'sr'.*it has \['hr'\]"):
        paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "x=a:sr,a:hr"])
    with pytest.raises(ValueError, match="--diff 'x=a:hr'"):
        paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "x=a:hr"])
    with pytest.raises(ValueError, match="--runs 'zero="):
        paired_seeds.main(["--runs", f"zero={tmp_path}", "--diff", "x=a:hr,a:hr"])


def test_confidence_interval_of_the_per_seed_metric(tmp_path):
    for seed, (a, b) in enumerate([(12.0, 10.0), (24.0, 20.0), (35.0, 30.0)]):
        _write_run(tmp_path, "base", seed, {"hr": a - (a - b)})
        _write_run(tmp_path, "cause", seed, {"hr": a})
    runs = [x for s in range(3) for x in ("--runs", f"{s}={tmp_path}")]
    lines = paired_seeds.main(runs + ["--diff", "c=cause:hr,base:hr", "--ci"])
    # differences 2, 4, 5: mean 3.667, sd 1.528, t(2) 4.303: half width 3.795
    assert lines[0].endswith("| APs 95 % CI |") and lines[1].count("---") == 7
    assert lines[2].endswith("| +2.0, +4.0, +5.0 | [-0.1, +7.5] |")
    assert paired_seeds.confidence_interval(paired_seeds._stats([1.0])) == "-"


def test_runs_from_different_pretrained_weights_are_not_paired(tmp_path):
    _write_run(tmp_path, "a", 0, {"hr": 2.0})
    _write_run(tmp_path, "b", 0, {"hr": 1.0})
    (tmp_path / "a" / "seed0" / "pretrain.sha256").write_text("ab" * 32 + "\n")
    argv = ["--runs", f"0={tmp_path}", "--diff", "x=a:hr,b:hr"]
    assert paired_seeds.main(argv)[2].startswith("| x | +1.0")  # one record: nothing to compare
    (tmp_path / "b" / "seed0" / "pretrain.sha256").write_text("ab" * 32 + "\n")
    assert paired_seeds.main(argv)[2].startswith("| x | +1.0")
    (tmp_path / "b" / "seed0" / "pretrain.sha256").write_text("cd" * 32 + "\n")
    with pytest.raises(ValueError, match=r"different pretrained weights \(seed 0\): .*a/seed0/"
                       r"pretrain.sha256 = abababababab, .*b/seed0/pretrain.sha256 = cdcdcdcdcdcd"):
        paired_seeds.main(argv)


def test_a_side_may_be_the_mean_of_several_runs(tmp_path):
    _write_run(tmp_path, "a", 0, {"hr": 5.0})
    for variant, ap in (("b", 1.0), ("c", 2.0), ("d", 6.0)):
        _write_run(tmp_path, variant, 0, {"hr": ap})
    lines = paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "a − mean=a:hr,b:hr+c:hr+d:hr"])
    assert lines[2] == "| a − mean | +2.0 (1/1) | +2.0 (1/1) | +2.0 (1/1) | +2.0 (1/1) | +2.0 |"  # 5 − 3
    (tmp_path / "a" / "seed0" / "pretrain.sha256").write_text("ab" * 32 + "\n")
    (tmp_path / "d" / "seed0" / "pretrain.sha256").write_text("cd" * 32 + "\n")
    with pytest.raises(ValueError, match="different pretrained weights"):  # every run of the row
        paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "x=a:hr,b:hr+d:hr"])
    with pytest.raises(ValueError, match="a side may join runs"):
        paired_seeds.main(["--runs", f"0={tmp_path}", "--diff", "x=a:hr,b:hr+"])



def test_runs_on_other_float_kernels_are_marked(tmp_path):
    _write_run(tmp_path, "a", 0, {"hr": 2.0})
    _write_run(tmp_path, "b", 0, {"hr": 1.0})
    _write_run(tmp_path, "a", 1, {"hr": 2.0})
    _write_run(tmp_path, "b", 1, {"hr": 1.0})
    cpu = {"torch": "2.14.1", "aten": "AVX512", "cpu": "Xeon", "isa": "avx2 avx512f"}
    (tmp_path / "a" / "seed0" / "host.json").write_text(json.dumps({"train": [cpu]}))
    argv = ["--runs", f"0={tmp_path}", "--runs", f"1={tmp_path}", "--diff", "x=a:hr,b:hr"]
    lines = paired_seeds.main(argv)
    assert lines[2].startswith("| x | +1.0") and len(lines) == 3  # one record, nothing to compare
    (tmp_path / "b" / "seed0" / "host.json").write_text(json.dumps({"train": [cpu]}))
    assert len(paired_seeds.main(argv)) == 3
    other = dict(cpu, aten="AVX2", isa="avx2")
    (tmp_path / "b" / "seed0" / "host.json").write_text(json.dumps({"train": [other]}))
    lines = paired_seeds.main(argv)
    assert lines[2].startswith("| x ‡ | +1.0") and lines[-1].endswith("x (seed 0).")
    (tmp_path / "b" / "seed0" / "host.json").write_text(json.dumps({"train": [cpu]}))
    (tmp_path / "a" / "seed1" / "host.json").write_text(json.dumps({"train": [cpu, other]}))
    lines = paired_seeds.main(argv)  # resumed elsewhere
    assert lines[2].startswith("| x ‡ |") and lines[-1].endswith("x (seed 1).")
