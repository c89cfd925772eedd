"""The HTTP shell around the GraphQL schema: the request log and the limits against abuse."""
