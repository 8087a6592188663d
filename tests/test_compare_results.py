# -*- coding: utf-8 -*-
"""tools/compare_results.py on small eval_results.json files: table numbers, order, PNG, errors."""
import importlib.util
import json
import os
import re

import pytest

from srrcnn.evaluation import AP_KEYS, TEST_MODE_NAMES
from srrcnn.testing import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "compare_results", os.path.join(REPO_ROOT, "tools", "compare_results.py"))
compare_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_results)

CLASSES = ("cross", "dots")


def metrics(base):
    """COCO-like metrics with values that round differently at 1 decimal."""
    m = {"AP": base + 0.04, "AP50": base + 20.96, "AP75": base + 5.55, "APs": base - 10.25,
         "APm": base + 1.449, "APl": float("nan")}
    m.update({f"AP-{c}": base + 3.33 * (i + 1) for i, c in enumerate(CLASSES)})
    return m


def write_eval(path, modes):
    """An eval_results.json as train_net.py --eval-only writes it: {mode: base AP}."""
    data = {"info": {"weights": "w.pth", "datasets": ["val"]},
            "results": {m: {"bbox": metrics(b), "segm": metrics(b - 2)} for m, b in modes.items()}}
    with open(path, "w") as f:
        json.dump(data, f)  # NaN as json writes it (COCO gives NaN for an empty size bin)
    return data["results"]


@pytest.fixture
def files(tmp_path):
    mask = write_eval(tmp_path / "mask.json", {"hr": 30.0})
    sr = write_eval(tmp_path / "sr.json", {"sr": 35.0, "hr": 32.0})
    return tmp_path, mask, sr


def table_rows(text):
    """{row name: [cells]} of the first Markdown table in `text`, in order."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        elif rows and not line.startswith("|"):
            break
    return rows


def expected_cells(m, keys):
    return [f"{m[k]:.1f}" for k in keys]


def test_table_numbers_order_and_png(files):
    tmp, mask, sr = files
    md, png = tmp / "out" / "ap.md", tmp / "out" / "ap.png"
    text = compare_results.main([
        f"SR-RCNN (with G)={tmp}/sr.json:sr", f"Mask R-CNN={tmp}/mask.json",
        f"SR-RCNN (without G)={tmp}/sr.json:hr", "--out-md", str(md), "--out-png", str(png),
    ])
    assert md.read_text() == text
    header = next(line for line in text.splitlines() if line.startswith("| |"))
    keys = [c.strip() for c in header.strip("|").split("|")][1:]
    assert keys == ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    rows = table_rows(text)
    assert list(rows) == ["SR-RCNN (with G)", "Mask R-CNN", "SR-RCNN (without G)"]
    for name, m in zip(rows, (sr["sr"]["bbox"], mask["hr"]["bbox"], sr["hr"]["bbox"])):
        assert rows[name] == expected_cells(m, keys), name
    assert "AP-" not in text  # no per-class table unless asked

    import matplotlib.image

    image = matplotlib.image.imread(str(png))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert png.stat().st_size > 10_000
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_all_modes_segm_and_per_class(files, capsys):
    tmp, _, sr = files
    text = compare_results.main([f"SR-RCNN={tmp}/sr.json", "--task", "segm", "--per-class"])
    assert text in capsys.readouterr().out  # printed too
    names = [f"SR-RCNN, {TEST_MODE_NAMES[m]}" for m in ("sr", "hr")]
    rows = table_rows(text)
    assert list(rows) == names
    assert rows[names[0]] == expected_cells(sr["sr"]["segm"], AP_KEYS)
    # the per-class table: class columns, same rows
    per_class = text[text.index("per class"):]
    assert re.search(r"\| \| AP-cross \| AP-dots \|", per_class)
    rows = table_rows(per_class.split("\n", 1)[1])
    assert rows[names[1]] == expected_cells(sr["hr"]["segm"], ["AP-cross", "AP-dots"])


def test_png_deterministic(files):
    tmp, _, _ = files
    pngs = [tmp / "a.png", tmp / "b.png"]
    for png in pngs:
        compare_results.main([f"A={tmp}/sr.json:sr", f"B={tmp}/mask.json", "--per-class",
                              "--out-png", str(png), "--title", "test"])
    assert pngs[0].read_bytes() == pngs[1].read_bytes()


@pytest.mark.parametrize("entry_fmt, needles", [
    ("X={tmp}/absent.json", ["absent.json", "no such file"]),
    ("X={tmp}/sr.json:lr", ["'lr'", "'sr'", "'hr'"]),  # the mode and the available ones
    ("X={tmp}/mask.json:sr", ["'sr'", "available modes: ['hr']"]),
    ("X", ["NAME=PATH"]),
])
def test_errors_name_the_problem(files, capsys, entry_fmt, needles):
    tmp, _, _ = files
    with pytest.raises(SystemExit) as e:
        compare_results.main([entry_fmt.format(tmp=tmp)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def test_missing_task(tmp_path):
    path = tmp_path / "bbox_only.json"
    path.write_text(json.dumps({"results": {"hr": {"bbox": metrics(10.0)}}}))
    with pytest.raises(ValueError, match=r"task 'segm'.*available tasks: \['bbox'\]"):
        compare_results.collect_rows([f"M={path}"], "segm")
    with pytest.raises(ValueError, match="duplicate row name 'M'"):
        compare_results.collect_rows([f"M={path}", f"M={path}"], "bbox")
