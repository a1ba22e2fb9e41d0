"""JSON-RPC dispatch and the MCP lifecycle; knows nothing of HTTP."""
