"""The shared kernel: settings, database, tenancy, events and workers. Imports nothing else of ours."""
