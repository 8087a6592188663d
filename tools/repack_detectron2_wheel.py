#!/usr/bin/env python3
"""Repack PyPI's ``sal-detectron2`` wheel (a cp310 wheel that holds detectron2's Python
package) into a pure-Python ``py3-none-any`` wheel installable on any CPython 3.

What changes, and why (docs/INSTALL.md):
  * ``detectron2/_C*.so`` is dropped: it is built for one Python/torch pair; SR-RCNN never
    needs it (ROIAlignV2 comes from torchvision).
  * the stray top-level ``tools/`` package is dropped: it would shadow this repo's tools.
  * ``numpy<2`` is relaxed to ``numpy``; ``fvcore`` and ``iopath`` are added to
    Requires-Dist (detectron2 imports both; the upstream setup.py lists them).
  * the wheel tag becomes ``py3-none-any`` and RECORD is rewritten with fresh hashes.

Stdlib only, so it runs before anything is installed.

Usage: python tools/repack_detectron2_wheel.py IN.whl OUT_DIR  -> prints the new wheel path
"""
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path


def _keep(name: str) -> bool:
    if name.startswith("tools/"):
        return False
    return not re.match(r"detectron2/_C.*\.(so|pyd)$", name)


def _patch_metadata(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist: numpy"):
            line = "Requires-Dist: numpy"
        lines.append(line)
    # insert the extra requirements right after the first Requires-Dist line
    idx = next(i for i, l in enumerate(lines) if l.startswith("Requires-Dist:"))
    lines[idx:idx] = ["Requires-Dist: fvcore", "Requires-Dist: iopath"]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(src: Path, out_dir: Path) -> Path:
    m = re.match(r"(?P<dist>[^-]+)-(?P<ver>[^-]+)-", src.name)
    if not m:
        raise SystemExit(f"not a wheel file name: {src.name}")
    dist, ver = m.group("dist"), m.group("ver")
    dist_info = f"{dist}-{ver}.dist-info"
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{dist}-{ver}-py3-none-any.whl"
    tmp = dst.with_suffix(".tmp")
    records = []
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            name = info.filename
            if not _keep(name) or name == f"{dist_info}/RECORD" or name.endswith("/"):
                continue
            data = zin.read(name)
            if name == f"{dist_info}/METADATA":
                data = _patch_metadata(data.decode()).encode()
            elif name == f"{dist_info}/WHEEL":
                text = re.sub(r"(?m)^Tag: .*$", "Tag: py3-none-any", data.decode())
                text = re.sub(r"(?m)^Root-Is-Purelib: .*$", "Root-Is-Purelib: true", text)
                data = text.encode()
            elif name == f"{dist_info}/top_level.txt":
                data = b"detectron2\n"
            zout.writestr(name, data)
            records.append(_record_line(name, data))
        records.append(f"{dist_info}/RECORD,,")
        zout.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    tmp.replace(dst)
    return dst


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    print(repack(Path(sys.argv[1]), Path(sys.argv[2])))
