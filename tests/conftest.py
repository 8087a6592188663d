# -*- coding: utf-8 -*-
"""Shared test setup."""
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_intra_op_thread():
    # the test machine's few cores are shared: one intra-op thread avoids oversubscription
    # stalls (seconds per step) and keeps the suite's time predictable
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
