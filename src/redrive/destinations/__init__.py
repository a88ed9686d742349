"""Destination health: what each action talks to, its circuit breaker, its rate and concurrency limits.

- ``keys``: the destination of a trigger's executions (fixed at ingest).
- ``policy``: which breaker settings and limits apply to a destination (the trigger file, resolved once).
- ``breaker``: the pure decisions: outcomes in, state and transitions out; what a claim may take.
- ``store``: the statements: the claim's plan for restricted destinations, recording outcomes, operator actions.
- ``report``: telling the world about a transition (log, metrics, stream, plugins).
- ``paging``: the list's order (what needs attention first), its cursors and summary, decided without I/O.
- ``views``: the reads of the list, a page at a time, and of one destination with its transitions.
"""
