"""prometheus.yml: global timing from the profile, one static scrape job per service in topology.yaml."""

from __future__ import annotations

from stack import topology
from stack.profiles import Profile

# Jobs Prometheus scrapes (docs/contract.md); each job is named after its service in topology.yaml.
SCRAPED_SERVICES = ("gateway", "llmsim", "receiver", "prometheus", "alertmanager")
RULE_FILES = "rules/*.yml"


def _job(name: str, profile: Profile) -> dict:
    service = topology.load()[name]
    job: dict = {"job_name": name, "metrics_path": service.metrics}
    if name == "gateway":
        # A cardinality explosion then fails one scrape (TargetDown, CardinalityGrowth) instead of Prometheus.
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
        "scrape_configs": [_job(name, profile) for name in SCRAPED_SERVICES],
    }
