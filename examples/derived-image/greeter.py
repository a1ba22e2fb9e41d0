"""A derived image's app: scalemcp plus a dependency the base image does not have."""

import humanize

import scalemcp

app = scalemcp.App("greeter", version="1.0.0")


@app.tool
async def describe_size(size_bytes: int) -> str:
    """A byte count, as a person would say it (uses the humanize package)."""
    return humanize.naturalsize(size_bytes, binary=True)
