"""The built-in trace store: receives OTLP/HTTP spans, keeps the most recent in memory, answers them as JSON."""
