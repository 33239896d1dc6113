"""The load generator: seeded, weighted synthetic traffic to the gateway with locust (`make load`).

workload.py builds the requests (pure, testable), locustfile.py sends them, run.py runs locust headless or with
its web UI for a bounded time, report.py reads the CSV report back, and `python -m stack.loadgen` is the CLI.
Nothing here imports locust except locustfile.py, which only ever runs in locust's own process.
"""
