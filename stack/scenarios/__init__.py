"""Failure scenarios for the instructor: named, bounded ways to break the stack and watch the alerts catch it.

- registry.yaml: the scenarios, readable by people (what each breaks, its signature queries, the alerts that must
  catch it, how long it runs); registry.py loads and checks it.
- kinds/: one module per kind of breakage (provider faults, cardinality explosion, missing metrics, alert storm).
- engine.py: trigger and heal. A trigger starts a detached, bounded driver process (recorded in the run folder)
  that applies the fault, drives the scenario's own traffic, records the scenario's progress (observe.Progress)
  and heals when the duration ends; `heal` stops it early.
- observe.py / view.py: the signature values, alert states and notifications, and the live rich view of them.
- `python -m stack.scenarios list|show|break|heal|status|watch` (make scenarios / break / heal).
"""
