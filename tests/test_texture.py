# -*- coding: utf-8 -*-
"""Tests of srrcnn/texture.py: G's texture input, the RoIs' pixels folded into channels."""
import torch
import torch.nn.functional as F

from detectron2.layers import roi_align
from detectron2.structures import Boxes, Instances

from srrcnn.texture import pool_texture, texture_channels, texture_rois


def test_shape_and_channels():
    images = torch.randn(2, 3, 40, 48)
    rois = torch.tensor([[0.0, 1, 2, 30, 20], [1.0, 5, 5, 9, 9], [1.0, 0, 0, 48, 40]])
    for k in (1, 2, 4):
        out = pool_texture(images, rois, k, 7)
        assert out.shape == (3, texture_channels(k), 7, 7) == (3, 3 * k * k, 7, 7)
    assert pool_texture(images, rois[:0], 2, 7).shape == (0, 12, 7, 7)  # no RoI
    assert texture_channels(0) == 0


def test_pixel_unshuffle_of_the_roi_aligned_pixels():
    images = torch.randn(2, 3, 40, 48)
    rois = torch.tensor([[1.0, 3.5, 2, 30, 21], [0.0, 10, 10, 17, 17]])
    pooled = roi_align(images, rois, (14, 14), 1.0, 0, True)  # ROIAlignV2 at 2P
    torch.testing.assert_close(pool_texture(images, rois, 2, 7), F.pixel_unshuffle(pooled, 2))


def test_a_constant_image_gives_a_constant_texture():
    images = torch.ones(1, 3, 32, 32) * torch.tensor([1.0, -2.0, 0.5])[:, None, None]
    rois = torch.tensor([[0.0, 2, 3, 20, 29], [0.0, 8, 8, 10, 10]])
    out = pool_texture(images, rois, 2, 7)  # channel c k^2 + i k + j: image channel c
    expected = torch.tensor([1.0, -2.0, 0.5]).repeat_interleave(4)[None, :, None, None]
    torch.testing.assert_close(out, expected.expand(2, 12, 7, 7))


def test_a_pixel_lands_where_pixel_unshuffle_puts_it():
    """A box of 2P x 2P whole pixels: ROIAlignV2 samples each pixel centre exactly, so the
    texture is the pixels themselves, pixel (2y + i, 2x + j) of channel c at channel
    4c + 2i + j of cell (y, x)."""
    k, p = 2, 3
    images = torch.zeros(1, 3, 16, 16)
    x0, y0 = 4, 5
    images[0, 1, y0 + 3, x0 + 4] = 7.0  # channel 1, pooled pixel (3, 4) = (2*1 + 1, 2*2 + 0)
    rois = torch.tensor([[0.0, x0, y0, x0 + k * p, y0 + k * p]])
    out = pool_texture(images, rois, k, p)
    assert out[0, 1 * 4 + 1 * 2 + 0, 1, 2] == 7.0
    assert out.abs().sum() == 7.0  # nowhere else
    # and in general, the image's window itself, unshuffled
    images = torch.randn(1, 3, 16, 16)
    window = images[:, :, y0:y0 + k * p, x0:x0 + k * p]
    torch.testing.assert_close(pool_texture(images, rois, k, p), F.pixel_unshuffle(window, k))


def test_texture_rois():
    a = Boxes(torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]]))
    b = Boxes(torch.tensor([[2.0, 2, 6, 6]]))
    rois = texture_rois([a, b])
    torch.testing.assert_close(rois, torch.tensor([[0.0, 0, 0, 4, 4], [0, 1, 1, 5, 5], [1, 2, 2, 6, 6]]))
    rows = torch.tensor([2, 0])
    torch.testing.assert_close(texture_rois([a, b], rows), rois[rows])
    instances = [Instances((8, 8), proposal_boxes=a), Instances((8, 8), proposal_boxes=b)]
    torch.testing.assert_close(texture_rois(instances, rows), rois[rows])
    assert texture_rois([a, b], rows[:0]).shape == (0, 5)
