"""Grafana dashboards as code: generated (dashboards.py, build.py), read (panels.py), proven against Prometheus
(check.py: structure.py offline, live.py against Prometheus, seed.py for traffic first) and rendered without
Grafana (snapshot.py: panel_data.py, drawing.py, units.py). docs/dashboards.md lists what each module does."""
