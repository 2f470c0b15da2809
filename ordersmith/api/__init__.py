"""The HTTP layer for merchants and integrations: routes, guards, wire schemas, error mapping."""
