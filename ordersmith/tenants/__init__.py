"""The OMS domain, stored inside one tenant's schema: one subpackage per bounded context."""
