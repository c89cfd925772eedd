"""The GraphQL API: one folder per area (types, queries, mutations); schema.py only composes."""
