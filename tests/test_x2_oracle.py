# -*- coding: utf-8 -*-
"""tools/x2_oracle.py: the oracle's eval command and its paired table (no model runs)."""
import importlib.util
import json
import os
import sys

from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location("x2_oracle", os.path.join(REPO_ROOT, "tools", "x2_oracle.py"))
x2_oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(x2_oracle)


def _run(folder, eval_command, results=None):
    os.makedirs(folder)
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump({"eval_command": eval_command}, f)
    open(os.path.join(folder, "model_final.pth"), "w").close()
    if results is not None:  # as if evaluated: {mode: {key: value}}
        os.makedirs(os.path.join(folder, "eval_x2"))
        with open(os.path.join(folder, "eval_x2", "eval_results.json"), "w") as f:
            json.dump({"results": {m: {"bbox": r} for m, r in results.items()}}, f)


def test_command_is_the_harness_eval_with_the_oracle_modes_as_sr_rcnn(tmp_path):
    run = str(tmp_path / "mask_rcnn" / "seed0")
    cmd = ["python", "train_net.py", "--config-file", "c.yaml", "--eval-only", "--test-modes", "hr",
           "OUTPUT_DIR", "x", "MODEL.WEIGHTS", "w.pth", "OUTPUT_DIR", run + "/eval",
           "DATASETS.TEST", '("v",)']
    _run(run, cmd)
    out = x2_oracle.oracle_command(run, "hr,size_aware_x2")
    assert out[:7] == [sys.executable, x2_oracle.TRAIN_NET] + cmd[2:6] + ["hr,size_aware_x2"]
    assert out[7:13] == cmd[7:11] + ["OUTPUT_DIR", os.path.join(run, "eval_x2")]  # the last one
    assert out[-4:] == x2_oracle.SR_OPTS


def test_table_pairs_each_mode_with_hr_of_the_same_weights(tmp_path, capsys):
    def res(ap, aps):
        return {"AP": ap, "APs": aps, "APm": 1.0, "APl": 2.0}
    for seed, (hr, oracle) in enumerate([(10, 14), (20, 22)]):
        _run(str(tmp_path / "mask_rcnn" / f"seed{seed}"), [],
             {"hr": res(hr, hr), "size_aware_x2": res(oracle, hr - 1)})
    md = tmp_path / "t.md"
    assert x2_oracle.main(["--out", str(tmp_path), "--variants", "mask_rcnn", "--write", str(md)]) == 0
    row = next(l for l in md.read_text().splitlines() if "size_aware_x2" in l)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["mask_rcnn", "size_aware_x2", "2"]
    assert cells[3] == "+3.0 ± 1.4 (2/2)" and cells[4] == "-1.0 ± 0.0 (0/2)"
    assert "| mask_rcnn | (hr itself) | 2 | 15.0 ± 7.1 |" in md.read_text()
