"""The queue: every statement on executions, the worker that claims and runs them, retry decisions, wake-ups."""
