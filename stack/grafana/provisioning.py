"""What Grafana is provisioned with (stack/grafana/provisioning/): the Prometheus datasource and the dashboards
folder. Dashboards must refer to the datasource by its fixed uid."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from stack.paths import STACK_DIR

GRAFANA_DIR = STACK_DIR / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
# Grafana's own assumption when a Prometheus datasource sets no jsonData.timeInterval.
DEFAULT_TIME_INTERVAL = "15s"


class ProvisioningError(ValueError):
    pass


@cache
def prometheus_datasource(path: Path = DATASOURCE_FILE) -> dict:
    """The provisioned Prometheus datasource entry (exactly one is expected)."""
    found = [d for d in (yaml.safe_load(path.read_text()) or {}).get("datasources") or []
             if d.get("type") == "prometheus"]
    if len(found) != 1:
        raise ProvisioningError(f"{path} should provision exactly one Prometheus datasource, found {len(found)}")
    if not found[0].get("uid"):
        raise ProvisioningError(f"the Prometheus datasource in {path} has no fixed uid; dashboards cannot refer to it")
    return found[0]


def datasource_uid() -> str:
    return str(prometheus_datasource()["uid"])


def scrape_interval() -> str:
    """The scrape interval Grafana assumes for $__rate_interval (jsonData.timeInterval, else 15s)."""
    return str((prometheus_datasource().get("jsonData") or {}).get("timeInterval") or DEFAULT_TIME_INTERVAL)


def dashboard_files(root: Path = DASHBOARDS_DIR) -> list[Path]:
    """Every dashboard JSON Grafana loads (sub-folders become Grafana folders)."""
    return sorted(root.rglob("*.json"))
