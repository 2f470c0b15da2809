"""The merchant's store profile: display name, default currency, time zone."""
