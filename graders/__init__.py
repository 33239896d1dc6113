"""`make grade`: nbgrader for the notebooks plus pytest checks against the live stack, merged into one score."""
