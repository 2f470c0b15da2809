"""Payment providers as plug-ins: one small interface, one module per provider."""
