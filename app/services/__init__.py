"""Orchestration: the connections and their fan-out, the counterparty directory and
creates, idempotency."""
