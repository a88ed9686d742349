"""redrive: accept events durably, drop duplicates, run actions, retry, dead-letter, replay."""

__version__ = "0.1.0"
__all__ = ["__version__"]
