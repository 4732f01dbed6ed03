"""promptopt: optimize LLM prompts without labels."""

__version__ = "0.1.0"
