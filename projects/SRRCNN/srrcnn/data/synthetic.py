"""srrcnn_shapes: a deterministic, synthetic small-object proxy of COCO (images + COCO json).

Annotated objects of all classes share one family of outer silhouettes (ellipse, rounded rectangle,
hexagon) and one colour distribution; classes differ ONLY in a fine inner pattern (cross, ring,
stripes, dot grid) drawn as 2-cell wide strokes filled with a zero-mean checker of 1-pixel cells on
small objects. The checker averages out over every 2x2 block, so a 0.5x INTER_AREA downsample wipes
the class evidence of small instances while it stays visible at full resolution. Instance sizes
follow a fixed schedule over the three COCO area bins (BIN_SCHEDULE); background clutter and
unannotated distractors (same silhouettes, no pattern or a solid mark) make detection non-trivial.
See docs/DATASET.md. Pure numpy/OpenCV: srrcnn.data.datasets registers the result in detectron2.
"""

import json
import logging
import math
import os
import time

import cv2
import numpy as np

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump whenever the output changes: the cache folder name carries it
DATASET_DIRNAME = f"srrcnn_shapes_v{GENERATOR_VERSION}"  # of the default detail kind
# How class patterns are rendered (see render_object): "checker" (the default, erased by 0.5x on
# small objects) or "soft" (degraded but partly kept by 0.5x). Only the pattern pixels differ.
DETAIL_KINDS = ("checker", "soft")
CLASS_NAMES = ("cross", "ring", "stripes", "dots")  # category ids 1..4 in this order
SILHOUETTES = ("ellipse", "rounded_rect", "hexagon")  # shared by all classes and distractors

# COCO area bins (pixels): small < 32^2 <= medium < 96^2 <= large.
BIN_NAMES = ("small", "medium", "large")
BIN_AREA_EDGES = (32**2, 96**2)
# Size bin of successive annotated instances, cycled over the whole dataset: 5 small, 3 medium,
# 2 large per 10 instances, i.e. the documented shares 50 % / 30 % / 20 %.
BIN_SCHEDULE = (0, 1, 0, 2, 0, 1, 0, 2, 1, 0)
# Range of sqrt(full silhouette area) per bin. Margins keep the VISIBLE area in its bin under up
# to MAX_OCCLUSION: 40 * sqrt(0.7) = 33.5 > 32, 116 * sqrt(0.7) = 97.1 > 96; 28 < 32, 84 < 96.
BIN_SIDE_RANGES = ((14.0, 28.0), (40.0, 84.0), (116.0, 144.0))
# A bin enters the schedule only for images at least this large (large objects span up to ~230
# px); below 256 px the shares become 5/8 small, 3/8 medium.
BIN_MIN_IMAGE_SIZE = (0, 128, 256)
MIN_IMAGE_SIZE = 128  # the largest medium object spans up to ~125 px
MAX_OCCLUSION = 0.3  # a placement may hide at most 30 % of an earlier annotated object
MAX_ASPECT = 1.6  # silhouette major/minor axis ratio drawn from [1, MAX_ASPECT]

REFERENCE_IMAGE_SIZE = 320  # counts below are per 320x320 image, scaled with image area
OBJECTS_PER_IMAGE = (7, 12)  # annotated objects, inclusive range
DISTRACTORS_PER_IMAGE = (2, 5)  # unannotated look-alikes, inclusive range
DISTRACTOR_SMALL_PROB = 0.7  # distractors are small (else medium) with this probability
CLUTTER_LINES = (4, 12)  # thin random lines, inclusive range
CLUTTER_BLOBS = (3, 8)  # soft random ellipses, inclusive range
CLUTTER_TEXTURE_PATCHES = (1, 3)  # low-contrast checker rectangles, so texture alone is no cue
PLACEMENT_TRIES = (3, 10)  # re-renders per object x random positions per render

FILL_RANGE = (70.0, 185.0)  # per-channel fill colour; leaves room for +-DETAIL_CONTRAST
DETAIL_CONTRAST = (50.0, 70.0)  # amplitude of the checker modulation, grey levels
SHADING_AMPLITUDE = 12.0  # linear brightness gradient across an object, grey levels
BACKGROUND_RANGE = (40.0, 215.0)  # per-channel background base colour
TEXTURE_AMPLITUDE = 20.0  # low-frequency background texture, grey levels
NOISE_SIGMA = (2.0, 6.0)  # per-image Gaussian pixel noise, grey levels
INNER_SCALE = 0.75  # patterns are clipped to the silhouette shrunk by this factor
RING_SCALE = 0.55  # ring radius relative to the silhouette semi-axes
SOFT_STROKE = 1.25  # "soft" stroke width in checker cells: 1.25 px on small objects
SOFT_SUPERSAMPLE = 4  # "soft" patterns are drawn at 4x and area-averaged (anti-aliased)
POLYGON_SHIFT = 4  # cv2.fillPoly fractional bits: sub-pixel vertex accuracy (1/16 px)
PNG_COMPRESSION = 3  # fixed, so image bytes do not depend on OpenCV's default


def expected_bin_shares(image_size):
    """Return the scheduled (small, medium, large) instance shares at ``image_size``."""
    schedule = [b for b in BIN_SCHEDULE if image_size >= BIN_MIN_IMAGE_SIZE[b]]
    return tuple(schedule.count(b) / len(schedule) for b in range(len(BIN_NAMES)))


def area_bin(area):
    """Return the COCO size bin index (0 small, 1 medium, 2 large) of a pixel area."""
    return int(np.searchsorted(BIN_AREA_EDGES, area, side="right"))


def detail_cell(side):
    """Return the checker cell size (px) for an object of equivalent side ``side`` (= sqrt(area)).

    1 px below 48 (so 0.5x erases it), 2 px up to 112, 3 px above: strokes are two cells wide.
    """
    return 1 + int(side >= 48) + int(side >= 112)


def _check_detail(detail):
    """Raise ValueError unless ``detail`` is one of DETAIL_KINDS."""
    if detail not in DETAIL_KINDS:
        raise ValueError(f"detail must be one of {DETAIL_KINDS}, got {detail!r}")


def dataset_dirname(detail="checker"):
    """Return the cache folder name of a detail kind: DATASET_DIRNAME for the default "checker",
    srrcnn_shapes_<detail>_vV for the others (so the default variant's folder never changes)."""
    _check_detail(detail)
    if detail == "checker":
        return DATASET_DIRNAME
    return f"srrcnn_shapes_{detail}_v{GENERATOR_VERSION}"


def _unit_silhouette(shape):
    """Return the outline (K, 2) of ``shape`` with unit semi-axes, centred at the origin."""
    if shape == "hexagon":
        t = np.arange(6) * (np.pi / 3)
    else:
        t = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)  # 64 vertices: smooth at 150 px
    x, y = np.cos(t), np.sin(t)
    if shape == "rounded_rect":  # superellipse |x|^4 + |y|^4 = 1
        x, y = np.sign(x) * np.abs(x) ** 0.5, np.sign(y) * np.abs(y) ** 0.5
    return np.stack([x, y], axis=1)


def _fill(canvas, points, value=1):
    """Fill the polygon ``points`` (K, 2) float pixel coordinates into uint8 ``canvas`` (H, W)."""
    pts = np.round(points * (1 << POLYGON_SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], value, lineType=cv2.LINE_8, shift=POLYGON_SHIFT)


def _band(center, direction, half_length, half_width):
    """Return the corners (4, 2) of a rectangle around ``center`` along unit ``direction``."""
    d = np.asarray(direction) * half_length
    n = np.array([-direction[1], direction[0]]) * half_width
    return np.array([center + d + n, center - d + n, center - d - n, center + d - n])


def _pattern_mask(kind, shape_hw, center, axes, rot, cell, width=None):
    """Rasterise a class pattern (uint8 (H, W), 1 inside) in the object frame.

    ``axes`` = (a, b) semi-axes; ``rot`` (2, 2) maps object-frame vectors to image (x, y).
    The layout (stripe and dot periods) follows ``cell``; ``width`` (default two cells) is the
    width of the strokes, the side of the dots and the ring's thickness (rounded to whole px).
    """
    mask = np.zeros(shape_hw, np.uint8)
    a, b = axes
    stroke = 2 * cell  # one full checker period across the stroke
    width = stroke if width is None else width
    u, v = rot[:, 0], rot[:, 1]  # major / minor axis directions in the image
    if kind == "cross":
        _fill(mask, _band(center, u, INNER_SCALE * a, width / 2))
        _fill(mask, _band(center, v, INNER_SCALE * b, width / 2))
    elif kind == "ring":
        outline = _unit_silhouette("ellipse") * [RING_SCALE * a, RING_SCALE * b] @ rot.T + center
        pts = np.round(outline * (1 << POLYGON_SHIFT)).astype(np.int32)
        cv2.polylines(mask, [pts], True, 1, thickness=int(round(width)), shift=POLYGON_SHIFT)
    elif kind == "stripes":  # bands parallel to the major axis, period 3 strokes, centred
        for k in range(-int(b // (3 * stroke)) - 1, int(b // (3 * stroke)) + 2):
            _fill(mask, _band(center + v * (3 * stroke * k), u, a, width / 2))
    elif kind == "dots":  # width-sized squares on a grid of period 2 strokes, centred
        nu, nv = int(a // (2 * stroke)) + 1, int(b // (2 * stroke)) + 1
        for i in range(-nu, nu + 1):
            for j in range(-nv, nv + 1):
                _fill(mask, _band(center + 2 * stroke * (i * u + j * v), u, width / 2, width / 2))
    inner = np.zeros(shape_hw, np.uint8)
    _fill(inner, _unit_silhouette("ellipse") * [INNER_SCALE * a, INNER_SCALE * b] @ rot.T + center)
    return mask & inner


def _soft_pattern(kind, shape_hw, center, axes, rot, cell):
    """Return the anti-aliased coverage (float32 (H, W) in [0, 1]) of a "soft" class pattern:
    SOFT_STROKE-cell strokes on the default layout, drawn SOFT_SUPERSAMPLE times finer and then
    area-averaged, so stroke positions and widths keep their sub-pixel values.
    """
    s = SOFT_SUPERSAMPLE
    h, w = shape_hw
    fine_center = (np.asarray(center) + 0.5) * s - 0.5  # pixel i covers [i - 0.5, i + 0.5)
    fine_axes = (axes[0] * s, axes[1] * s)
    fine = _pattern_mask(
        kind, (h * s, w * s), fine_center, fine_axes, rot, cell * s, width=SOFT_STROKE * cell * s
    )
    return cv2.resize(fine.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


def _snap_to_blocks(region, mask, block):
    """Keep only the ``block`` x ``block`` cells (from the patch origin) of ``region`` (h, w) that
    are at least half covered and lie wholly inside ``mask`` (h, w); returns uint8 (h, w).

    With ``block`` = 2 and even paste offsets, every checker block is complete, so a 0.5x area
    (or bilinear) downsample of a small instance averages its pattern away exactly.
    """
    h, w = region.shape
    hb, wb = -(-h // block), -(-w // block)  # ceil division
    pad = ((0, hb * block - h), (0, wb * block - w))
    cells = np.pad(region, pad).reshape(hb, block, wb, block).sum(axis=(1, 3))
    inside = np.pad(mask, pad).reshape(hb, block, wb, block).all(axis=(1, 3))
    keep = (2 * cells >= block * block) & inside
    return np.kron(keep, np.ones((block, block), np.uint8))[:h, :w]


def render_object(rng, side, class_id=None, angle=None, distractor_mark=None, detail="checker"):
    """Render one object (class pattern, or an unannotated distractor when ``class_id`` is None).

    ``detail`` selects how the class pattern is rendered; nothing else depends on it, not even
    the random draws, so both kinds give the same objects (and datasets the same layouts) for
    the same seed. "checker": 2-cell strokes filled with a zero-mean checker and snapped to whole
    2-cell blocks, which a 0.5x downsample of a small (1 px cell) object averages away exactly.
    "soft": the same pattern layout drawn as plain strokes of one signed contrast (brighter on
    dark fills, darker on light ones, like the distractor marks), SOFT_STROKE cells wide and
    anti-aliased at their unsnapped sub-pixel positions. Their mean is not zero, so 0.5x keeps
    them as blurred, lower-contrast lines: on small objects the cross and ring layouts stay
    recognisable, while stripes (6 px period) and dots (4 px period, the 0.5x Nyquist limit)
    merge into smears that are easily confused. Nearest-class-mean accuracy of small instances
    drops from about 0.9 at 1x to about 0.65 at 0.5x (chance 0.25; docs/DATASET.md).

    Args:
        rng (np.random.Generator): the only source of randomness.
        side (float): sqrt of the target silhouette area in pixels.
        class_id (int or None): index into CLASS_NAMES; None draws a distractor.
        angle (float or None): rotation in radians; None draws it uniformly.
        distractor_mark (str or None): "plain", "dot" or "bar"; None draws one (distractors only).
        detail (str): one of DETAIL_KINDS, how the class pattern is rendered.
    Returns:
        patch (np.ndarray): float32 (h, w, 3) colours, meaningful where ``mask`` is set.
        mask (np.ndarray): bool (h, w) silhouette.
    """
    shape = SILHOUETTES[rng.integers(len(SILHOUETTES))]
    outline = _unit_silhouette(shape)
    x, y = outline[:, 0], outline[:, 1]
    unit_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # shoelace
    aspect = rng.uniform(1.0, MAX_ASPECT)
    b = side / math.sqrt(unit_area * aspect)
    a = b * aspect
    angle = rng.uniform(0.0, np.pi) if angle is None else angle
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = outline * [a, b] @ rot.T
    half = np.abs(points).max(axis=0)
    w, h = (int(math.ceil(2 * half[0])) + 2, int(math.ceil(2 * half[1])) + 2)  # +2: 1 px margin
    center = np.array([w / 2, h / 2]) + rng.uniform(-0.5, 0.5, 2)  # sub-pixel phase varies
    mask = np.zeros((h, w), np.uint8)
    _fill(mask, points + center)

    fill = rng.uniform(*FILL_RANGE, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = rng.uniform(-1.0, 1.0, 2) * SHADING_AMPLITUDE / max(w, h)
    shading = (xx - center[0]) * grad[0] + (yy - center[1]) * grad[1]
    patch = fill[None, None, :].astype(np.float32) + shading[..., None]
    contrast = rng.uniform(*DETAIL_CONTRAST)
    cell = detail_cell(side)
    _check_detail(detail)
    if class_id is not None and detail == "soft":
        coverage = _soft_pattern(CLASS_NAMES[class_id], (h, w), center, (a, b), rot, cell)
        sign = 1.0 if fill.mean() < np.mean(FILL_RANGE) else -1.0
        patch += (coverage * mask * sign * contrast)[..., None]
    elif class_id is not None:
        region = _pattern_mask(CLASS_NAMES[class_id], (h, w), center, (a, b), rot, cell)
        region = _snap_to_blocks(region, mask.astype(bool), 2 * cell)
        checker = ((xx // cell + yy // cell) % 2) * 2 - 1  # zero mean on every 2x2-cell block
        patch += (region * checker * contrast)[..., None]
    else:
        mark = distractor_mark or ("plain", "dot", "bar")[rng.integers(3)]
        region = np.zeros((h, w), np.uint8)
        if mark == "dot":  # a solid off-centre spot: survives 0.5x, unlike the class patterns
            spot = center + rot @ rng.uniform(-0.4, 0.4, 2) * [a, b]  # within 40 % of the axes
            radius = max(1, int(round(0.25 * b)))  # a quarter of the minor semi-axis
            cv2.circle(region, (int(spot[0]), int(spot[1])), radius, 1, thickness=-1)
        elif mark == "bar":  # a solid slanted bar through the centre
            direction = rot @ np.array([math.cos(0.7), math.sin(0.7)])  # 0.7 rad: off both axes
            _fill(region, _band(center, direction, INNER_SCALE * b, cell))
        sign = 1.0 if fill.mean() < np.mean(FILL_RANGE) else -1.0
        patch += (region * mask * sign * contrast)[..., None]
    return patch, mask.astype(bool)


def _render_background(rng, size, scale):
    """Return a float32 (size, size, 3) background with texture, soft blobs, lines and checkers."""
    base = rng.uniform(*BACKGROUND_RANGE, size=3).astype(np.float32)
    grid = int(rng.integers(4, 13))  # 4..12 texture knots across the image
    texture = cv2.resize(
        rng.normal(0.0, 1.0, (grid, grid, 3)).astype(np.float32),
        (size, size),
        interpolation=cv2.INTER_CUBIC,
    )
    image = base + TEXTURE_AMPLITUDE * texture
    for _ in range(_count(rng, CLUTTER_BLOBS, scale)):
        center = tuple(int(c) for c in rng.integers(0, size, 2))
        axes = tuple(int(c) for c in rng.integers(4, max(5, size // 6), 2))  # up to 1/6 image
        colour = tuple(float(c) for c in rng.uniform(*BACKGROUND_RANGE, 3))
        cv2.ellipse(image, center, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.5)  # sigma 1.5 px: blobs are soft, unlike objects
    for _ in range(_count(rng, CLUTTER_TEXTURE_PATCHES, scale)):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(8, max(9, size // 5), 2)  # 8 px .. 1/5 image
        yy, xx = np.mgrid[y0 : min(size, y0 + h), x0 : min(size, x0 + w)]
        contrast = rng.uniform(*DETAIL_CONTRAST) / 3  # a third of the objects' pattern contrast
        image[yy, xx] += (((xx + yy) % 2) * 2 - 1)[..., None] * contrast
    for _ in range(_count(rng, CLUTTER_LINES, scale)):
        p0, p1 = (tuple(int(c) for c in rng.integers(0, size, 2)) for _ in range(2))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        thickness = int(rng.integers(1, 3))  # 1 or 2 px
        cv2.line(image, p0, p1, colour, thickness=thickness, lineType=cv2.LINE_AA)
    return image


def _count(rng, bounds, scale):
    """Draw an inclusive count from ``bounds`` (per 320x320 image) scaled by area ``scale``."""
    lo = max(1, int(round(bounds[0] * scale)))
    return int(rng.integers(lo, max(lo, int(round(bounds[1] * scale))) + 1))


def _placement_ok(id_map, items, x0, y0, mask):
    """Return whether pasting ``mask`` (h, w) at (x0, y0) keeps every annotated item valid.

    Valid: at most MAX_OCCLUSION hidden, visible area still in its scheduled bin, and no hole
    (a polygon cannot encode one).
    """
    h, w = mask.shape
    covered = id_map[y0 : y0 + h, x0 : x0 + w][mask]
    ids, counts = np.unique(covered[covered >= 0], return_counts=True)
    for k, c in zip(ids, counts):
        item = items[k]
        if item["class_id"] is None:
            continue
        visible = item["visible"] - c
        if visible < (1 - MAX_OCCLUSION) * item["full_area"] or area_bin(visible) != item["bin"]:
            return False
        kx0, ky0, kx1, ky1 = item["box"]
        own = (id_map[ky0:ky1, kx0:kx1] == k).astype(np.uint8)
        ox0, oy0, ox1, oy1 = max(x0, kx0), max(y0, ky0), min(x0 + w, kx1), min(y0 + h, ky1)
        own[oy0 - ky0 : oy1 - ky0, ox0 - kx0 : ox1 - kx0] &= ~mask[
            oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0
        ]
        _, hierarchy = cv2.findContours(own, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hierarchy is not None and (hierarchy[0, :, 3] >= 0).any():
            return False
    return True


def _place(rng, image, id_map, items, item, detail):
    """Render ``item`` (dict with side, class_id, bin) and paste it at a valid random position.

    Returns True on success; ``image`` (H, W, 3), ``id_map`` (H, W) and ``items`` are updated.
    """
    size = id_map.shape[0]
    for _ in range(PLACEMENT_TRIES[0]):
        patch, mask = render_object(rng, item["side"], item["class_id"], detail=detail)
        h, w = mask.shape
        full_area = int(mask.sum())
        wrong_bin = item["class_id"] is not None and area_bin(full_area) != item["bin"]
        if h > size or w > size or wrong_bin:
            continue
        for _ in range(PLACEMENT_TRIES[1]):
            # Even offsets align the patterns' 2x2 blocks with the image's (see _snap_to_blocks).
            x0, y0 = (2 * int(rng.integers(0, (size - d) // 2 + 1)) for d in (w, h))
            if not _placement_ok(id_map, items, x0, y0, mask):
                continue
            region = id_map[y0 : y0 + h, x0 : x0 + w]
            for k, c in zip(*np.unique(region[mask], return_counts=True)):
                if k >= 0:
                    items[k]["visible"] -= int(c)
            region[mask] = len(items)
            image[y0 : y0 + h, x0 : x0 + w][mask] = patch[mask]
            items.append(
                dict(item, full_area=full_area, visible=full_area, box=(x0, y0, x0 + w, y0 + h))
            )
            return True
    return False


def _annotation(id_map, k, item):
    """Return the COCO annotation fields (bbox, area, segmentation) of item ``k``'s visible mask."""
    x0, y0, x1, y1 = item["box"]
    visible = (id_map[y0:y1, x0:x1] == k).astype(np.uint8)
    ys, xs = np.nonzero(visible)
    contours, _ = cv2.findContours(visible, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # +0.5: contour points are pixel indices; pixel i covers [i, i + 1) in COCO coordinates.
    polygons = [
        (c.reshape(-1, 2) + [x0 + 0.5, y0 + 0.5]).ravel().tolist() for c in contours if len(c) >= 3
    ]
    bx, by = int(xs.min()) + x0, int(ys.min()) + y0
    bbox = [bx, by, int(xs.max()) + x0 + 1 - bx, int(ys.max()) + y0 + 1 - by]
    return {"bbox": bbox, "area": int(len(xs)), "segmentation": polygons, "iscrowd": 0}


def generate_dataset(out_dir, num_images, image_size, seed, detail="checker"):
    """Write ``out_dir``/images/NNNNNN.png and ``out_dir``/annotations.json (COCO instances).

    Deterministic in (num_images, image_size, seed, detail). Images are (image_size, image_size,
    3) uint8. ``detail`` (one of DETAIL_KINDS, see render_object) changes only the class patterns'
    pixels: the layout and the annotations are the same for every kind.
    """
    _check_detail(detail)
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    schedule = [b for b in BIN_SCHEDULE if image_size >= BIN_MIN_IMAGE_SIZE[b]]
    scale = (image_size / REFERENCE_IMAGE_SIZE) ** 2
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    images, annotations, pending, slot = [], [], [], 0
    for image_id in range(1, num_images + 1):
        wanted = []
        for _ in range(_count(rng, OBJECTS_PER_IMAGE, scale)):
            if pending:  # objects that did not fit an earlier image keep their scheduled bin
                wanted.append(pending.pop(0))
                continue
            # Classes cycle against the bin schedule so every (bin, class) pair is equally common.
            cycle, pos = divmod(slot, len(schedule))
            wanted.append({"bin": schedule[pos], "class_id": (cycle + pos) % len(CLASS_NAMES)})
            slot += 1
        for _ in range(_count(rng, DISTRACTORS_PER_IMAGE, scale)):
            wanted.append({"bin": int(rng.random() >= DISTRACTOR_SMALL_PROB), "class_id": None})
        image = _render_background(rng, image_size, scale)
        id_map = np.full((image_size, image_size), -1, np.int16)
        items = []
        for i in rng.permutation(len(wanted)):
            item = dict(wanted[i], side=rng.uniform(*BIN_SIDE_RANGES[wanted[i]["bin"]]))
            if not _place(rng, image, id_map, items, item, detail) and item["class_id"] is not None:
                pending.append(wanted[i])
        image += rng.normal(0.0, rng.uniform(*NOISE_SIGMA), image.shape)
        file_name = f"{image_id:06d}.png"
        cv2.imwrite(
            os.path.join(out_dir, "images", file_name),
            np.clip(np.round(image), 0, 255).astype(np.uint8),
            [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION],
        )
        images.append(
            {"id": image_id, "file_name": file_name, "height": image_size, "width": image_size}
        )
        for k, item in enumerate(items):
            if item["class_id"] is not None:
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=image_id,
                        category_id=item["class_id"] + 1,
                        **_annotation(id_map, k, item),
                    )
                )
    info = {
        "description": "srrcnn_shapes: synthetic small-object proxy of COCO",
        "version": GENERATOR_VERSION,
        "num_images": num_images,
        "image_size": image_size,
        "seed": seed,
    }
    if detail != "checker":  # the default kind's json stays as it always was
        info["detail"] = detail
    coco = {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)
        ],
    }
    with open(os.path.join(out_dir, "annotations.json"), "w") as f:
        f.write(json.dumps(coco, separators=(",", ":")))  # dumps: the C encoder, unlike dump
    elapsed = time.perf_counter() - start
    args = (out_dir, num_images, len(annotations), len(pending), elapsed)
    logger.info("Generated %s: %d images, %d instances (%d unplaced) in %.1f s", *args)
