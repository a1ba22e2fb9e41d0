"""Sans-IO protocol core: JSON-RPC envelope, MCP types, versions, SSE framing, schemas.

Nothing in this package imports trio, hypercorn or a Redis client (a test keeps it so).
"""
