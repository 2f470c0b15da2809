"""Identity and access: users, memberships, roles, tokens, API keys, staff, audit trail."""
