"""Lab V3's checks (cost attribution, alert rules, Alertmanager routing, alert quality): one module per concern,
each check a function the notebook's locked check cell calls with the student's objects."""
