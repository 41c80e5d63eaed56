"""The management server: users, permissions, devices, routing; web UI and REST API."""
