"""Agent Skills over MCP: the skills in examples/skills/, one skill made in code, a tool.

Run it with ``scalemcp serve examples.skills_server:app``. Clients that know the skills
extension call ``skills/list`` (every skill with its frontmatter and a manifest of its
files, each with a sha256 digest); any client can ``resources/read`` the files under
``skill://``. Edit a file under examples/skills/ while it runs: within a few seconds
every worker serves the new digest and clients get ``notifications/resources/list_changed``.
"""

from pathlib import Path

import scalemcp

app = scalemcp.App(
    "skills-demo",
    version="1.0.0",
    instructions="Before handling a refund, load the skill skill://acme/billing/refunds/SKILL.md.",
)

# Every directory holding a SKILL.md is a skill: skill://git-workflow/SKILL.md,
# skill://acme/billing/refunds/SKILL.md (acme/billing is an organizational prefix).
app.add_skills(Path(__file__).parent / "skills")

# One skill from code (the same works with package data:
# app.add_skill(importlib.resources.files("mypackage") / "skills" / "release-notes")).
app.add_skill(
    {
        "SKILL.md": (
            "---\n"
            "name: release-notes\n"
            "description: Write release notes from merged pull requests. Use when preparing"
            " a release.\n"
            "---\n\n"
            "# Release notes\n\n"
            "Group the changes as in `template.md`; one line per change, newest first.\n"
        ),
        "template.md": "## Added\n\n## Changed\n\n## Fixed\n",
    },
    prefix="generated",
)


@app.tool
async def refund_status(order_id: str) -> dict[str, str]:
    """The refund state of an order (a stand-in for a billing system)."""
    refunded = order_id.endswith("7")
    return {"order_id": order_id, "status": "refunded" if refunded else "not refunded"}
