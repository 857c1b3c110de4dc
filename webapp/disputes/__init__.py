"""Disputes: raise with evidence, the review queue, review and resolution, evidence downloads."""
