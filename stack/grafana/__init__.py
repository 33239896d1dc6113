"""Grafana dashboards as code: generated (dashboards.py, build.py), proven against Prometheus (check.py) and
rendered without Grafana (snapshot.py)."""
