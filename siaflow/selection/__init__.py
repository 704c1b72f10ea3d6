"""Scoring and choosing responses: EDIS, Best-of-N over any per-response score, and every selector on one pool."""
