"""A simulated, OpenAI-compatible LLM provider: offline, seeded, with fault knobs for teaching."""
