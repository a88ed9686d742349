"""Failure operations: classify, fingerprint, hints, error groups, single and bulk replay, the audit log."""
