"""The fake's payment resources (a merchant's own account): PaymentIntents, refunds."""
