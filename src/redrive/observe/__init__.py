"""Seeing what happens: logs, redaction, metrics, tracing, the live stream, stats and windows, the system view."""
