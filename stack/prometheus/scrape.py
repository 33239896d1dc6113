"""prometheus.yml: global timing from the profile, one static scrape job per service in topology.yaml, plus one per
lab target (an exporter a lab notebook starts; down whenever no notebook runs)."""

from __future__ import annotations

from stack import topology
from stack.profiles import Profile

# Jobs Prometheus scrapes (docs/contract.md); each job is named after its service in topology.yaml.
SCRAPED_SERVICES = ("gateway", "llmsim", "receiver", "tracestore", "prometheus", "alertmanager")
RULE_FILES = "rules/*.yml"


def lab_jobs() -> tuple[str, ...]:
    """Jobs scraping topology.yaml's lab_targets: not started by `make up`, so alerts and readiness ignore them."""
    return tuple(topology.load().lab_targets)


def _job(name: str, profile: Profile) -> dict:
    service = topology.load()[name]
    job: dict = {"job_name": name, "metrics_path": service.metrics}
    if name == "gateway" or name in lab_jobs():
        # A cardinality explosion then fails one scrape (TargetDown, CardinalityGrowth) instead of Prometheus; a lab
        # notebook experimenting with unbounded labels gets the same protection.
        job["sample_limit"] = profile.gateway_sample_limit
    job["static_configs"] = [{"targets": [service.address]}]
    return job


def prometheus_config(profile: Profile) -> dict:
    return {
        "global": {
            "scrape_interval": str(profile.scrape_interval),
            "scrape_timeout": str(profile.scrape_timeout),
            "evaluation_interval": str(profile.evaluation_interval),
        },
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [topology.load()["alertmanager"].address]}]}]},
        "rule_files": [RULE_FILES],
        "scrape_configs": [_job(name, profile) for name in (*SCRAPED_SERVICES, *lab_jobs())],
    }
