# -*- coding: utf-8 -*-
"""AtomicDetectionCheckpointer: a save killed half-way leaves the last good checkpoint usable."""
import os

import pytest
import torch
from torch import nn

from srrcnn import AtomicDetectionCheckpointer


def make(tmp_path):
    model = nn.Linear(3, 2)
    return model, AtomicDetectionCheckpointer(model, str(tmp_path))


def test_save_renames_and_tags(tmp_path):
    model, ckpt = make(tmp_path)
    ckpt.save("model_0001", iteration=1)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0001.pth"]
    assert ckpt.get_checkpoint_file() == str(tmp_path / "model_0001.pth")
    assert ckpt.load(ckpt.get_checkpoint_file())["iteration"] == 1


def test_kill_during_save_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    model, ckpt = make(tmp_path)
    ckpt.save("model_0001", iteration=1)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")  # bytes reach the disk, then the process "dies"
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0002", iteration=2)
    monkeypatch.setattr(torch, "save", real_save)

    assert not (tmp_path / "model_0002.pth").exists()
    assert open(tmp_path / "last_checkpoint").read() == "model_0001.pth"
    model2, ckpt2 = make(tmp_path)
    assert ckpt2.resume_or_load("", resume=True)["iteration"] == 1
    for k, v in model2.state_dict().items():
        assert torch.equal(v, good[k])
