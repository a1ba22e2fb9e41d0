"""An app serving the skills in ``$SKILLS_DIR`` (polled every ``$SKILLS_POLL_S`` seconds),
with a tool that reports what this worker's catalog holds: the fleet tests ask every
worker, not just whichever one a load balancer picks."""

from __future__ import annotations

import os

import msgspec

import scalemcp

app = scalemcp.App("skills-dir", version="1.0.0")
app.add_skills(os.environ["SKILLS_DIR"], poll_interval_s=float(os.environ.get("SKILLS_POLL_S",
                                                                             "2")))


class Seen(msgspec.Struct):
    node: str
    pid: int
    digests: dict[str, str]  # file URI -> digest, as this worker serves them


@app.tool
async def catalog_here() -> Seen:
    """The node and process answering, and the digests its catalog holds."""
    files = app.skills.catalog.files
    return Seen(node=os.environ.get("CLUSTER_NODE", "?"), pid=os.getpid(),
                digests={uri: f.digest for uri, f in files.items()})
