"""Lab V4's checks (tracing, exemplars, cost optimization): one module per concern, each check a function the
notebook's locked check cell calls with the student's objects."""
