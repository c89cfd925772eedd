"""HTTP pages of the service beyond the GraphQL API itself (the GraphiQL page and its assets)."""
