"""The HTTP layer: ASGI app, era detection, Streamable HTTP, legacy HTTP+SSE, SSE framing."""
