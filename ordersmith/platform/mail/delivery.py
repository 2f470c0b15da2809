"""Email delivery: the consumer of `email.requested` (being built)."""
