"""Supervision: what supervisors and their tools watch (metrics now; the wallboard, reports and
staffing next)."""
