# -*- coding: utf-8 -*-
"""A DetectionCheckpointer whose files are never left half-written and whose load errors name
the file and the config keys to check."""
import os
from collections.abc import Mapping
from urllib.parse import urlparse

from detectron2.checkpoint import DetectionCheckpointer


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """
    :class:`DetectionCheckpointer` that writes every checkpoint and the ``last_checkpoint`` tag
    under a temporary name and renames it into place (``os.replace`` is atomic on one file
    system). A process killed during a save leaves the previous checkpoint, and the tag that
    points at it, intact and loadable.

    Loading fails with a clear error where detectron2 fails obscurely or silently: a missing
    local file, a file that is not a checkpoint, a generator that does not match the config.
    """

    _PARTIAL = ".partial"
    _G = "roi_heads.generator."  # the generator's state-dict prefix

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        self._defer_tag = True
        try:
            super().save(name + self._PARTIAL, **kwargs)  # "<name>.partial.pth"
        finally:
            self._defer_tag = False
        final = os.path.join(self.save_dir, f"{name}.pth")
        os.replace(os.path.join(self.save_dir, f"{name}{self._PARTIAL}.pth"), final)
        self.tag_last_checkpoint(os.path.basename(final))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if getattr(self, "_defer_tag", False):
            return  # save() tags the renamed file once it is complete
        tag = os.path.join(self.save_dir, "last_checkpoint")
        with open(tag + self._PARTIAL, "w") as f:
            f.write(last_filename_basename)
        os.replace(tag + self._PARTIAL, tag)

    def load(self, path: str, *args, **kwargs):
        """
        As :meth:`DetectionCheckpointer.load`; a local ``path`` (no URL scheme such as
        ``detectron2://`` or ``https://``) that is not a file raises FileNotFoundError naming
        it, where detectron2 raises a bare AssertionError.
        """
        if path and not urlparse(path).scheme:
            local = path.split("?", 1)[0]  # detectron2 accepts "?matching_heuristics=True"
            if not os.path.isfile(local):
                raise FileNotFoundError(f"MODEL.WEIGHTS: checkpoint file not found: {local}")
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._parsed_url_during_load = None  # detectron2 leaves it set when loading fails

    def resume_or_load(self, path: str, *, resume: bool = True):
        """As :meth:`Checkpointer.resume_or_load`; a ``last_checkpoint`` tag that names a
        missing file raises FileNotFoundError naming both (not an error about MODEL.WEIGHTS)."""
        if resume and self.has_checkpoint():
            last = self.get_checkpoint_file()
            if not urlparse(last).scheme and not os.path.isfile(last):
                tag = os.path.join(self.save_dir, "last_checkpoint")
                raise FileNotFoundError(f"--resume: {tag} names a checkpoint that does not "
                                        f"exist: {last}")
        return super().resume_or_load(path, resume=resume)

    def _load_file(self, filename: str):
        """
        As :meth:`DetectionCheckpointer._load_file`; a file that is not a checkpoint (text,
        truncated, a bare tensor) raises RuntimeError "cannot load checkpoint <path>: <reason>".
        """
        try:
            data = super()._load_file(filename)
        except Exception as e:  # pickle, zip, torch or assertion errors: all mean a bad file
            raise RuntimeError(f"cannot load checkpoint {filename}: {type(e).__name__}: {e}") from e
        found = data.get("model") if isinstance(data, dict) else data
        if not isinstance(found, Mapping):
            raise RuntimeError(f"cannot load checkpoint {filename}: it holds no state dict "
                               f"(found {type(found).__name__})")
        return data

    def _load_model(self, checkpoint):
        """
        As :meth:`DetectionCheckpointer._load_model`, but a checkpoint with generator weights
        whose generator does not match the model's raises ValueError (detectron2 only logs the
        mismatch and keeps a random generator). Checkpoints without generator weights (Mask
        R-CNN, ImageNet) load as before, the generator reported as new; so does any checkpoint
        into a model without a generator.
        """
        has_g = any(k.startswith(self._G) or k.startswith("module." + self._G)
                    for k in checkpoint["model"])
        incompatible = super()._load_model(checkpoint)
        if not has_g or not any(k.startswith(self._G) for k in self.model.state_dict()):
            return incompatible
        hint = ("check MODEL.SRRCNN.GENERATOR.WIDTH / NUM_BLOCKS / NORM against the config "
                "the checkpoint was trained with")
        for key, shape_ckpt, shape_model in incompatible.incorrect_shapes:
            if key.startswith(self._G):
                raise ValueError(f"Checkpoint generator does not match the model: {key} has shape "
                                 f"{shape_ckpt} in the checkpoint but {shape_model} in the model; "
                                 f"{hint}")
        for what, keys in (
            ("missing from the checkpoint", incompatible.missing_keys),
            ("in the checkpoint but not in the model", incompatible.unexpected_keys),
        ):
            bad = [k for k in keys if k.startswith(self._G)]
            if bad:
                raise ValueError(f"Checkpoint generator does not match the model: {bad[0]} is "
                                 f"{what} ({len(bad)} generator keys in all); {hint}")
        return incompatible
