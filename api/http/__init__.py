"""The HTTP shell around the GraphQL schema: GraphQL over HTTP, the request log, the limits against
abuse, and the GraphiQL page with its assets."""
