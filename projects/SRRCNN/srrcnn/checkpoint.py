# -*- coding: utf-8 -*-
"""A DetectionCheckpointer whose files are never left half-written."""
import os

from detectron2.checkpoint import DetectionCheckpointer


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """
    :class:`DetectionCheckpointer` that writes every checkpoint and the ``last_checkpoint`` tag
    under a temporary name and renames it into place (``os.replace`` is atomic on one file
    system). A process killed during a save leaves the previous checkpoint, and the tag that
    points at it, intact and loadable.
    """

    _PARTIAL = ".partial"

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
