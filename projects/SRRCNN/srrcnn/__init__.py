"""SR-RCNN package."""
