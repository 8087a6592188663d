# -*- coding: utf-8 -*-
"""tools/plot_metrics.py on small metrics.json files: SR-RCNN and Mask R-CNN runs, bad lines."""
import importlib.util
import json
import os

import matplotlib.image
import numpy as np
import pytest

from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "plot_metrics", os.path.join(REPO_ROOT, "tools", "plot_metrics.py"))
plot_metrics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_metrics)

SR_KEYS = ("loss_G_adv", "loss_G_cls", "loss_G_box_reg", "loss_G_content", "loss_D_adv",
           "loss_cls_hr", "loss_cls_sr", "loss_box_reg_hr", "loss_box_reg_sr", "loss_mask",
           "loss_rpn_cls", "loss_rpn_loc", "G_total_loss", "D_total_loss", "total_loss")
MASK_KEYS = ("loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc",
             "total_loss")


def write_metrics(path, keys, lr_keys, n=12, truncate=False, eval_line=True):
    """detectron2-style metrics.json: a line per 20 iterations, an eval line, maybe cut short."""
    lines = []
    for i in range(n):
        record = {"iteration": 20 * i + 19, "time": 0.5, "data_time": 0.01}
        record.update({k: 1.0 / (i + 1) + 0.1 * j for j, k in enumerate(keys)})
        record.update({k: 0.02 * 10 ** -j for j, k in enumerate(lr_keys)})
        if i == 3:
            del record[keys[0]]  # a line lacking a key
        lines.append(json.dumps(record))
        if eval_line and i == n // 2:
            lines.append(json.dumps({"iteration": 20 * i + 19, "bbox/AP": 12.5, "segm/AP": 10.0}))
    text = "\n".join(lines) + "\n"
    if truncate:
        text += lines[-1][: len(lines[-1]) // 2]  # the run was killed mid-write
    path.write_text(text)
    return path


def check_png(path):
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 500 and image.shape[1] > 500
    assert path.stat().st_size > 20_000
    assert image[..., :3].std() > 0.05


def test_load_tolerates_missing_keys_and_truncation(tmp_path, caplog):
    path = write_metrics(tmp_path / "metrics.json", SR_KEYS, ("lr", "lr_G"), truncate=True)
    records = plot_metrics.load_metrics(str(path))
    assert len(records) == 13  # 12 training lines + the eval line; the cut line skipped
    assert "truncated last line" in caplog.text
    its, vals = plot_metrics.series(records, SR_KEYS[0])
    assert len(its) == 11 and 79 not in its  # the line lacking the key
    assert np.all(np.diff(its) > 0)
    its, _ = plot_metrics.series(records, "loss_G_content")
    assert len(its) == 12  # the eval line (same iteration, no losses) adds nothing


def test_moving_median():
    values = np.array([1.0, 9.0, 2.0, 3.0, 100.0, 4.0])
    np.testing.assert_array_equal(plot_metrics.moving_median(values, 1), values)
    np.testing.assert_array_equal(plot_metrics.moving_median(values, 3),
                                  [5.0, 2.0, 3.0, 3.0, 4.0, 52.0])


def test_sr_run(tmp_path):
    path = write_metrics(tmp_path / "metrics.json", SR_KEYS, ("lr", "lr_G"), truncate=True)
    out = tmp_path / "plots" / "sr.png"
    plot_metrics.main(["--metrics", str(path), "--out", str(out), "--smooth", "3"])
    check_png(out)


def test_mask_rcnn_run_and_both(tmp_path):
    mask = write_metrics(tmp_path / "mask.json", MASK_KEYS, ("lr",), eval_line=False)
    sr = write_metrics(tmp_path / "sr.json", SR_KEYS, ("lr", "lr_G"))
    plot_metrics.main(["--metrics", str(mask), "--out", str(tmp_path / "mask.png")])
    check_png(tmp_path / "mask.png")
    out = tmp_path / "both.png"
    plot_metrics.main(["--metrics", str(sr), "--metrics", str(mask),
                       "--labels", "SR-RCNN", "Mask R-CNN", "--out", str(out)])
    check_png(out)


def test_panel_keys_fallback_and_notes(tmp_path):
    mask = plot_metrics.load_metrics(
        str(write_metrics(tmp_path / "m.json", MASK_KEYS, ("lr",))))
    first, content = plot_metrics.PANELS[0], plot_metrics.PANELS[1]
    assert plot_metrics.panel_keys(mask, first[1], True) == ["total_loss"]
    assert plot_metrics.panel_keys(mask, content[1], False) == []

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plot_metrics.draw_panel(ax, {"Mask R-CNN": mask}, content, smooth=1)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "no data: loss_G_content" in texts and "Mask R-CNN" in texts
    plt.close(fig)


@pytest.mark.parametrize("args, needle", [
    (["--metrics", "{tmp}/absent.json"], "absent.json"),
    (["--metrics", "{tmp}/m.json", "--labels", "a", "b"], "2 --labels for 1 --metrics"),
    (["--metrics", "{tmp}/empty.json"], "no metrics lines"),
])
def test_errors(tmp_path, capsys, args, needle):
    write_metrics(tmp_path / "m.json", MASK_KEYS, ("lr",))
    (tmp_path / "empty.json").write_text("\n")
    with pytest.raises(SystemExit):
        argv = [a.format(tmp=tmp_path) for a in args]
        plot_metrics.main(argv + ["--out", str(tmp_path / "x.png")])
    assert needle in capsys.readouterr().err
