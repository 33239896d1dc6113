"""The instrumented LLM gateway: the service students monitor."""
