# -*- coding: utf-8 -*-
"""tools/paired_weights.py: which shared weights of two checkpoints are bit-identical."""
import importlib.util
import os

import torch

from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location("paired_weights", os.path.join(REPO_ROOT, "tools", "paired_weights.py"))
paired_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_weights)


def test_identical_shared_weights_pass_and_a_difference_fails(tmp_path, capsys):
    base = {"backbone.w": torch.arange(6.0), "head.b": torch.ones(2)}
    sr = {**{k: v.clone() for k, v in base.items()}, "generator.w": torch.zeros(3)}
    torch.save({"model": base}, tmp_path / "a.pth")
    torch.save({"model": sr, "iteration": 5}, tmp_path / "b.pth")
    assert paired_weights.main([str(tmp_path / "a.pth"), str(tmp_path / "b.pth")]) == 0
    out = capsys.readouterr().out
    assert "shared weights: 2; bit-identical: 2; differing: 0" in out
    assert "only in the second: 1 (e.g. generator.w)" in out

    sr["head.b"] = torch.tensor([1.0, 1.5])
    torch.save({"model": sr}, tmp_path / "b.pth")
    assert paired_weights.main([str(tmp_path / "a.pth"), str(tmp_path / "b.pth")]) == 1
    assert "differs: head.b  max |difference| 0.5" in capsys.readouterr().out
