"""Lab V2's checks (prometheus-client metrics, a scrape job, PromQL against a seeded batch, bounded labels, a
dashboard): one module per concern, each check a function the notebook's locked check cell calls with the student's
objects. The dashboard's live queries are a stack check (graders/checks/test_v2.py)."""
