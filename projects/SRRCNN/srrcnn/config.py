# -*- coding: utf-8 -*-
"""Config keys of SR-RCNN. Every key that SR-RCNN adds to detectron2's config lives here.

Section numbers refer to the thesis digest, ``shared/SPEC.md`` (docs/CONFIG.md).
"""
from detectron2.config import CfgNode as CN


def add_srrcnn_config(cfg):
    """
    Add config for SR-RCNN: ``cfg.MODEL.SRRCNN``, ``cfg.SOLVER.GENERATOR`` and, for sliced
    inference on large images, ``cfg.TEST.SLICE``.
    """
    _C = cfg
    _C.MODEL.SRRCNN = CN()
    # Scale of the low-resolution copy I_0.5 of every training image (§2.1). The RoIs are
    # pooled from its pyramid with the proposal boxes multiplied by the same factor (§2.4).
    _C.MODEL.SRRCNN.LR_SCALE = 0.5
    # How I_0.5 is made from the (normalised, padded) batch: "antialias" (bilinear with an
    # anti-aliasing filter, what an image library's resize does; default), "bilinear"
    # (no anti-aliasing) or "area" (box average). Thesis silent.
    _C.MODEL.SRRCNN.LR_RESIZE = "antialias"

    # Which pair of RoI features G learns to map (beyond the thesis: issue 12,
    # docs/results/evidence/RESULTS.md).
    # "half_to_full" (thesis, §2.4): G(RoI of I_0.5) -> RoI of I; at test G is applied to RoIs
    # of I, a resolution it never saw in training. "full_to_double": G(RoI of I) -> the same
    # box's RoI in a 2x pass, which is computed (without gradient) only on crops around small
    # ground-truth objects (X2 below); G's input at test is what it trained on. No 0.5x pass.
    _C.MODEL.SRRCNN.PAIR = "half_to_full"
    _C.MODEL.SRRCNN.X2 = CN()
    # Side of a crop window in input pixels (its 2x pass is twice that); sampled proposals
    # wholly inside a window are G's training RoIs. CROP_SIZE * 2 must be a multiple of the
    # backbone's size divisibility (32 with FPN).
    _C.MODEL.SRRCNN.X2.CROP_SIZE = 64
    # Windows per image, centred on ground-truth boxes with sqrt(area) < MAX_GT_SIZE (COCO's
    # "small": 32), chosen at random; the 2x pass costs MAX_CROPS_PER_IMAGE * (2 CROP_SIZE)^2
    # pixels of forward pass (no backward) per image.
    _C.MODEL.SRRCNN.X2.MAX_CROPS_PER_IMAGE = 4
    _C.MODEL.SRRCNN.X2.MAX_GT_SIZE = 32.0

    # FPN level RoI_LR is pooled from (a diagnostic of the thesis pair): "scaled_box" (§2.4:
    # the level the pooler picks for the 0.5x box, usually one lower than the full box's) or
    # "full_box" (the level of the full-resolution box, in the 0.5x pyramid).
    _C.MODEL.SRRCNN.LR_POOL_LEVEL = "scaled_box"

    # Generator G_w (§2.5): turns RoI_LR (C x P x P) into super-resolved features of the same
    # shape. Built from the SRRCNN_GENERATOR registry: "SRResNetGenerator" (thesis) or
    # "IdentityGenerator" (no G, a control: G(x) = x, without parameters, so G's objective trains
    # nothing and D's SR-path terms see G's input itself).
    _C.MODEL.SRRCNN.GENERATOR = CN()
    _C.MODEL.SRRCNN.GENERATOR.NAME = "SRResNetGenerator"
    # Residual blocks conv3x3-norm-act-conv3x3-norm + skip; the thesis uses 7.
    _C.MODEL.SRRCNN.GENERATOR.NUM_BLOCKS = 7
    # Channels inside the blocks. Thesis silent; SRGAN uses 64. With WIDTH equal to the RoI
    # channels (256 with FPN) the input 3x3 conv is dropped.
    _C.MODEL.SRRCNN.GENERATOR.WIDTH = 64
    # Activation inside the blocks: "prelu" (SRGAN, default), "relu" or "leaky_relu".
    # Thesis silent. The last layer never has an activation (§2.5).
    _C.MODEL.SRRCNN.GENERATOR.ACTIVATION = "prelu"
    # Normalisation inside the blocks (detectron2 get_norm names: "BN", "GN", "SyncBN", "").
    # The last layer never has one (§2.5).
    _C.MODEL.SRRCNN.GENERATOR.NORM = "BN"
    # Add the input to the output (global residual learning): G then learns a correction of
    # RoI_LR, and G(RoI_HR) at test stays near RoI_HR. Thesis: no (its last layer is a plain
    # conv, which this keeps); off by default.
    _C.MODEL.SRRCNN.GENERATOR.INPUT_SKIP = False
    # Which statistics G's batch norms use at test: "running" (those of training, i.e. of the
    # RoIs G trained on) or "batch" (those of the RoIs G is applied to, recomputed on every
    # test batch; a diagnostic of the thesis pair, whose G trains on 0.5x RoIs only).
    _C.MODEL.SRRCNN.GENERATOR.TEST_NORM_STATS = "running"
    # k > 0: G also reads the RoI's pixels (EFPN's feature texture transfer, beyond the thesis;
    # issue 12): the normalised input image pooled over the same box at (k P) x (k P) and
    # folded into 3 k^2 channels (pixel_unshuffle) that are stacked on the RoI feature, so G
    # maps C + 3 k^2 channels to C (srrcnn/texture.py). PAIR "full_to_double" only. 0: off.
    _C.MODEL.SRRCNN.GENERATOR.TEXTURE_SCALE = 0

    # Loss weights (§3). Adversarial terms of G and D: 0.001, from SRGAN.
    _C.MODEL.SRRCNN.ADV_WEIGHT = 0.001
    # Content loss MSE(G(RoI_LR), RoI_HR) in G's objective.
    _C.MODEL.SRRCNN.CONTENT_WEIGHT = 1.0
    # > 0: the content loss is also a term of D's objective with this weight, so that its
    # gradient reaches the backbone through G's input: the features G reads learn to carry what
    # G needs to reproduce its target (feature imitation, as in Noh et al. 2019). 0: thesis
    # (the content loss trains G only).
    _C.MODEL.SRRCNN.D_CONTENT_WEIGHT = 0.0
    # How the content loss is reduced: "mean" (per-element MSE, as SRGAN; default) or
    # "sum_per_roi" ((1/N) sum_i ||G(LR_i) - HR_i||^2 literally: "mean" x C*P*P).
    _C.MODEL.SRRCNN.CONTENT_REDUCTION = "mean"
    # Weight of the classification and box-regression losses on G(RoI_LR) in G's objective.
    _C.MODEL.SRRCNN.G_TASK_WEIGHT = 1.0
    # Weight of D's classification and regression losses, each applied to both the SR and
    # the HR terms (§3: 0.5, so that D, seeing two feature sets, does not dominate).
    _C.MODEL.SRRCNN.D_TASK_WEIGHT = 0.5
    # Weight of D's task terms on G's output alone (loss_cls_sr, loss_box_reg_sr), so that the
    # SR path's share of the shared head can be set apart from the HR path's. < 0: D_TASK_WEIGHT
    # (thesis).
    _C.MODEL.SRRCNN.D_SR_TASK_WEIGHT = -1.0
    # "full_to_double" only: weight of D's task terms on the real 2x features of G's RoIs
    # (loss_cls_x2, loss_box_reg_x2), so that the shared head also learns to read small objects
    # at 2x, as a detector trained on 2x images does; G learns to produce such features. The
    # 2x pass has no gradient: these terms train the box head and predictor only. 0: off.
    _C.MODEL.SRRCNN.D_X2_TASK_WEIGHT = 0.0
    # D's loss on G(RoI_LR) reaches the backbone through G's input (thesis §3: "the
    # discriminator also trains the generator's input"). False: G's input is detached for
    # it, so the SR path trains only G and D's heads (a diagnostic switch, not the thesis).
    _C.MODEL.SRRCNN.D_THROUGH_G = True
    # Adversarial loss of G: "saturating" (thesis: minimise log(1 - D(G(LR)))) or
    # "non_saturating" (minimise -log D(G(LR))).
    _C.MODEL.SRRCNN.ADV_LOSS = "saturating"
    # Which of the sampled RoIs (ROI_HEADS.BATCH_SIZE_PER_IMAGE per image) G trains on: the
    # content, adversarial and SR-path terms use G_ROIS_PER_IMAGE of them per image, sampled
    # foreground first (at most G_POSITIVE_FRACTION foreground, background fills the rest, as
    # detectron2's RoI sampler). <= 0: all sampled RoIs (thesis: 512 per image; the thesis
    # names "train G only on useful RoIs" as future work). D's HR-path terms always use all
    # sampled RoIs. G's price grows linearly with it (docs/COST.md): 64 of 512 keeps an
    # R50-FPN training iteration within 1.35x Mask R-CNN's.
    _C.MODEL.SRRCNN.G_ROIS_PER_IMAGE = 64
    _C.MODEL.SRRCNN.G_POSITIVE_FRACTION = 0.75
    # > 0: weight each RoI's content and adversarial G terms by min(1, REF / sqrt(area)), area
    # of its ground-truth box (of the proposal for background RoIs) in input pixels, so that
    # G learns small-object detail first. 0: uniform weights (thesis).
    _C.MODEL.SRRCNN.G_SIZE_WEIGHT_REF = 0.0
    # > 0: G's RoIs (and so every SR-path term, D's included) are only sampled RoIs whose
    # object, the ground-truth box (the proposal for background RoIs), is at most this many
    # input pixels on a side (sqrt of its area), as feature-SR detectors apply SR to small
    # proposals only (Noh et al., ICCV 2019). 0: any size (thesis).
    _C.MODEL.SRRCNN.G_MAX_ROI_SIZE = 0.0
    # Test-time box path (§5, thesis Table 4). "sr" sends the full-resolution RoI features
    # through G before D's box head and predictor (thesis); "hr" skips G (plain Mask R-CNN
    # head); "size_aware" runs the plain head, then G only on the RoIs that SIZE_AWARE below
    # selects, and merges both passes' predictions for them (default: G's test-time cost is
    # bounded by SIZE_AWARE.MAX_ROIS_PER_IMAGE; "sr" runs G on every proposal, ~1.3x Mask
    # R-CNN's inference time with R50-FPN). Training always uses both paths. The mask head
    # never uses G. Two diagnostics run a second backbone pass at test: "sr_lr" (thesis pair)
    # G on RoI_LR, its training input, from a 0.5x pass; "size_aware_x2" (an oracle for G)
    # "size_aware" with G's output replaced by the real RoI feature of a 2x pass.
    _C.MODEL.SRRCNN.TEST_MODE = "size_aware"
    # G's pass at test (TEST_MODE "sr", "sr_lr", "size_aware": G, then the box head and
    # predictor on its output) under torch.compile (beyond the thesis; docs/COST.md: on a GPU at
    # batch 1 that pass is ~45 small kernels). G's batch norms are folded into its convolutions
    # at test in any case (GENERATOR.TEST_NORM_STATS "running"). Training never compiles.
    _C.MODEL.SRRCNN.TEST_COMPILE = CN()
    # A torch.compile backend: "" (off, eager; default), "inductor" (generates fused kernels;
    # meant for a CUDA GPU, where the first images compile for tens of seconds), or "eager" /
    # "aot_eager" (dynamo capture without code generation: tests, debugging).
    _C.MODEL.SRRCNN.TEST_COMPILE.BACKEND = ""
    # torch.compile's mode: "default", "reduce-overhead" (CUDA graphs: one launch per pass;
    # one graph per RoI count), "max-autotune". Modes other than "default": inductor only.
    _C.MODEL.SRRCNN.TEST_COMPILE.MODE = "default"
    # The "size_aware" test mode: a RoI goes through G when the plain pass predicts it small
    # and likely an object.
    _C.MODEL.SRRCNN.SIZE_AWARE = CN()
    # "Small": sqrt of the area of the plain pass's refined box for its top class, in input
    # pixels (after the INPUT.MIN_SIZE_TEST resize), below this.
    _C.MODEL.SRRCNN.SIZE_AWARE.MAX_SIZE = 64.0
    # "Likely an object": the top class's probability in the plain pass is at least this.
    _C.MODEL.SRRCNN.SIZE_AWARE.MIN_SCORE = 0.05
    # At most this many RoIs per image go through G, the most likely first (<= 0: no limit).
    _C.MODEL.SRRCNN.SIZE_AWARE.MAX_ROIS_PER_IMAGE = 100
    # How the selected RoIs' two predictions are merged: "mean" (average of the class
    # probabilities and of the box deltas) or "replace" (G's pass only).
    _C.MODEL.SRRCNN.SIZE_AWARE.MERGE = "mean"

    # Optimiser of the generator (§4): AdamW with its own learning rate. The discriminator
    # (backbone, RPN, heads) uses SOLVER.* (SGD) as in Mask R-CNN.
    _C.SOLVER.GENERATOR = CN()
    # AdamW learning rate of G: 1e-4 (thesis; Adam's 1e-3 lets D run away from G).
    _C.SOLVER.GENERATOR.BASE_LR = 1e-4
    # AdamW weight decay and betas. Thesis silent: PyTorch's AdamW defaults.
    _C.SOLVER.GENERATOR.WEIGHT_DECAY = 0.01
    _C.SOLVER.GENERATOR.BETAS = (0.9, 0.999)
    # Gradient clipping of G, as detectron2's SOLVER.CLIP_GRADIENTS (which clips D's SGD).
    _C.SOLVER.GENERATOR.CLIP_GRADIENTS = cfg.SOLVER.CLIP_GRADIENTS.clone()
    # G's learning-rate schedule has the shape of D's (SOLVER.LR_SCHEDULER_NAME, WARMUP_*,
    # STEPS, GAMMA, MAX_ITER) applied to its own BASE_LR, in its own scheduler.

    # Sliced inference on large images (srrcnn.sliced.SlicedPredictor, tools/sliced_eval.py;
    # beyond the thesis: SAHI, Akyon et al. 2022). Read only by the sliced predictor; any model.
    _C.TEST.SLICE = CN()
    # Side of a square slice in image pixels. Each slice then gets the model's own test resize
    # (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), so a slice the size of the training images keeps
    # objects at training scale. A side shorter than this is one slice of the whole side.
    _C.TEST.SLICE.SIZE = 320
    # Overlap of neighbouring slices, as a fraction of SIZE, in [0, 1) (SAHI's default 0.2).
    # The last row and column of slices end at the image border.
    _C.TEST.SLICE.OVERLAP = 0.2
    # Also run the whole image (resized as usual) and merge its detections in: large objects,
    # cut by slice borders, are seen whole there.
    _C.TEST.SLICE.FULL_IMAGE_PASS = False
    # How detections of overlapping slices are merged, class-wise: "nms" (detectron2's
    # batched_nms: the best box of a match survives) or "nmm" (greedy non-maximum merging: a
    # match becomes one detection with the union box and masks and the best score).
    _C.TEST.SLICE.MERGE = "nms"
    # What counts as a match: "iou" (intersection over union; the only one for "nms") or "ios"
    # (intersection over the smaller box, SAHI's default for "nmm": a box cut by a slice border
    # matches the whole one it lies in) of at least MERGE_THRESH.
    _C.TEST.SLICE.MERGE_METRIC = "iou"
    _C.TEST.SLICE.MERGE_THRESH = 0.5
    # Slices per forward call.
    _C.TEST.SLICE.BATCH_SIZE = 4
