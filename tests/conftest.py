# -*- coding: utf-8 -*-
"""Shared test setup."""
import os
import tempfile

import pytest
import torch

# Generated datasets go to a fresh folder, never into the checkout or a user's cache. Set
# before any test module imports srrcnn (which registers the default names under this root).
os.environ["SRRCNN_DATASETS"] = tempfile.mkdtemp(prefix="srrcnn_test_datasets_")


@pytest.fixture(scope="session", autouse=True)
def one_intra_op_thread():
    # the test machine's few cores are shared: one intra-op thread avoids oversubscription
    # stalls (seconds per step) and keeps the suite's time predictable
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def catalog_names():
    """Names registered by a test; removed from both catalogs afterwards (they are global)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = []
    yield names
    for name in names:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
