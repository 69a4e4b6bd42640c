"""grok2api: an OpenAI-compatible gateway over Grok web accounts, on Ray Serve."""

__version__ = "0.1.0"
