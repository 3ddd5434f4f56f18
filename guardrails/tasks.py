"""Guardrails run inline (a check is a few milliseconds, in the caller's request or run): no
background work of their own."""
