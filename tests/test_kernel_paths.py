# -*- coding: utf-8 -*-
"""tools/kernel_paths.py: the first losses of one training command under several kernel settings."""
import importlib.util
import os

import pytest

from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location("kernel_paths", os.path.join(REPO_ROOT, "tools", "kernel_paths.py"))
kernel_paths = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_paths)

TINY = ["--config-file", "configs/quick_schedules/mask_rcnn_R_18_FPN_shapes_cpu.yaml", "SEED", "0",
        "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "DATASETS.TRAIN", '("srrcnn_shapes_tiny_train",)',
        "DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0", "MODEL.FPN.OUT_CHANNELS", "32",
        "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128"]


def test_the_same_setting_twice_gives_the_same_losses(tmp_path, capsys):
    lines = kernel_paths.main(["--iters", "2", "--setting", "", "--setting", "OMP_NUM_THREADS=1",
                               "--log-dir", str(tmp_path), "--", *TINY])
    assert len(lines) == 4 and lines[2].startswith("| (this machine) | 1 | ")
    assert lines[2].split("|")[3:-2] == lines[3].split("|")[3:-2]  # the losses, bit for bit
    assert lines[3].startswith("| OMP_NUM_THREADS=1 | 1 |") and lines[3].endswith("| yes |")
    assert "| yes |" in capsys.readouterr().out


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="'AVX2': expected VAR=VALUE"):
        kernel_paths.parse_setting("AVX2")
    with pytest.raises(SystemExit):
        kernel_paths.main(["--iters", "2"])  # no train_net.py arguments
    bad = [*TINY, "DATASETS.TRAIN", '("nope",)']  # the last value wins
    with pytest.raises(RuntimeError, match="no losses logged .* log: .*kernel_paths_0.log"):
        kernel_paths.main(["--iters", "2", "--setting", "", "--log-dir", str(tmp_path), "--", *bad])
    assert "nope" in (tmp_path / "kernel_paths_0.log").read_text()
