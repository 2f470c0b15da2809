"""Plans and prices, usage metering, rating, Stripe sync and webhooks, trial lifecycle."""
