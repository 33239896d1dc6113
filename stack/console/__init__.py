"""The instructor console: trigger and heal the failure scenarios (stack/scenarios) from a web page.

- routes.py: the /console page and its JSON API, which drive stack.scenarios.engine as `make break` / `make heal`.
- page.html: the page (plain JavaScript).
- app.py: what the runner serves on the receiver's port: the receiver's app (stack/receiver, which only receives)
  with the console's routes added, so http://127.0.0.1:18702/console sits beside the notifications it shows.
- `python -m stack.console` serves that.
"""
