"""The README's example app: a few tools, a resource, a template and a prompt.

Run it with ``scalemcp serve examples.quickstart:app``.
"""

from typing import Annotated

import msgspec
import trio

import scalemcp

app = scalemcp.App("quickstart", version="1.0.0", instructions="A small demo server.")


class Forecast(msgspec.Struct):
    city: str
    temperature_c: float
    conditions: str


@app.tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool
async def echo(message: str) -> str:
    """Echo a message back."""
    return message


@app.tool
async def forecast(city: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]) -> Forecast:
    """A (fake) weather forecast, returned as structured content."""
    return Forecast(city=city, temperature_c=21.5, conditions="sunny")


@app.tool
async def countdown(n: Annotated[int, msgspec.Meta(ge=1, le=20)], ctx: scalemcp.Context) -> str:
    """Count down from n, reporting progress and logging each step."""
    for i in range(n):
        await ctx.report_progress(i + 1, n, f"{n - i} left")
        await ctx.info(f"tick {n - i}")
        await trio.sleep(0.05)
    return "liftoff"


@app.tool
async def ask_name(ctx: scalemcp.Context) -> str:
    """Ask the user for their name (elicitation)."""
    answer = await ctx.elicit(
        "What is your name?",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    if answer.action != "accept" or not answer.content:
        return "No name given."
    return f"Hello, {answer.content['name']}!"


@app.resource("config://app", mime_type="application/json", description="App settings")
def app_config() -> dict[str, str]:
    return {"theme": "dark", "language": "en"}


@app.resource("greeting://{name}", mime_type="text/plain", description="A greeting")
def greeting(name: str) -> str:
    return f"Hello, {name}!"


@app.prompt
def review_code(code: str) -> str:
    """Ask for a code review."""
    return f"Please review this code:\n\n{code}"
