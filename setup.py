#!/usr/bin/env python
"""SR-RCNN: Super-resolved RoI features for small-object detection, as a Detectron2 project.

Install with ``pip install -e .`` next to an installed detectron2 (README, "Setup").
"""
from setuptools import find_packages, setup

setup(
    name="srrcnn",
    version="0.1.0",
    description="SR-RCNN: super-resolved RoI features for small objects, on Detectron2",
    python_requires=">=3.9",
    package_dir={"": "projects/SRRCNN"},
    packages=find_packages(where="projects/SRRCNN"),
    # detectron2 itself is not on PyPI under its own name: tools/setup_env.sh installs it
    # (or use your own build); these are what srrcnn imports directly.
    install_requires=["torch", "torchvision", "numpy", "opencv-python-headless",
                      "pycocotools", "matplotlib", "tqdm"],
)
