"""Every fixture the official MCP conformance suite expects (docs/conformance.md).

Run it with ``scalemcp serve examples.conformance:app`` and point the suite at /mcp.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import trio

import scalemcp
from scalemcp import (
    Context,
    EmbeddedResource,
    ImageContent,
    PromptMessage,
    TextContent,
    TextResourceContents,
)
from scalemcp.errors import InternalError

app = scalemcp.App("scalemcp-conformance", version="1.0.0")
# The skills extension (sep-2640-* scenarios): the example skills, nested prefix included.
app.add_skills(Path(__file__).parent / "skills")

# A 1x1 PNG and a tiny WAV file.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
WAV = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00D\xac\x00\x00\x88X\x01\x00"
    b"\x02\x00\x10\x00data\x00\x00\x00\x00"
)


@app.tool
async def test_simple_text() -> str:
    """Returns a simple text response."""
    return "This is a simple text response for testing."


@app.tool
async def test_image_content() -> scalemcp.Image:
    """Returns an image."""
    return scalemcp.Image(PNG, "image/png")


@app.tool
async def test_audio_content() -> scalemcp.Audio:
    """Returns audio."""
    return scalemcp.Audio(WAV, "audio/wav")


@app.tool
async def test_embedded_resource() -> EmbeddedResource:
    """Returns an embedded resource."""
    return EmbeddedResource(resource=TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain",
        text="This is an embedded resource content."))


@app.tool
async def test_multiple_content_types() -> list[Any]:
    """Returns text, an image and an embedded resource."""
    return [
        "Multiple content types test:",
        ImageContent(data=PNG_B64, mime_type="image/png"),
        EmbeddedResource(resource=TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json",
            text='{"test":"data","value":123}')),
    ]


@app.tool
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three log messages while it runs."""
    await ctx.info("Tool execution started")
    await trio.sleep(0.05)
    await ctx.info("Tool processing data")
    await trio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@app.tool
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50 and 100 of 100."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"step {step}")
        if step < 100:
            await trio.sleep(0.05)
    return "Tool with progress executed successfully"


@app.tool
async def test_error_handling() -> str:
    """Always fails, as a tool execution error."""
    raise scalemcp.ToolError("This tool intentionally returns an error for testing")


@app.tool
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's model to answer ``prompt``."""
    result = await ctx.sample(prompt, max_tokens=100)
    content = result.get("content", {})
    text = content.get("text", "") if isinstance(content, dict) else str(content)
    return f"LLM response: {text}"


@app.tool
async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the user for a username and an email."""
    answer = await ctx.elicit(message, {
        "type": "object",
        "properties": {"username": {"type": "string"}, "email": {"type": "string"}},
        "required": ["username", "email"],
    })
    return f"User response: action={answer.action}, content={answer.content}"


@app.tool
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicitation whose schema has a default on every primitive."""
    answer = await ctx.elicit("Please confirm your details", {
        "type": "object",
        "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "score": {"type": "number", "default": 95.5},
            "status": {"type": "string", "enum": ["active", "inactive", "pending"],
                       "default": "active"},
            "verified": {"type": "boolean", "default": True},
        },
    })
    return f"Elicitation completed: action={answer.action}, content={answer.content}"


@app.tool
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicitation with the five enum shapes."""
    answer = await ctx.elicit("Choose options", {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {"type": "string", "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ]},
            "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                           "enumNames": ["Option One", "Option Two", "Option Three"]},
            "untitledMulti": {"type": "array", "items": {
                "type": "string", "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {"type": "array", "items": {"anyOf": [
                {"const": "value1", "title": "First Choice"},
                {"const": "value2", "title": "Second Choice"},
                {"const": "value3", "title": "Third Choice"},
            ]}},
        },
    })
    return f"Elicitation completed: action={answer.action}, content={answer.content}"


@app.tool
async def test_reconnection(ctx: Context) -> str:
    """Drops the SSE connection mid-call; the result arrives on the resumed stream."""
    await ctx.close_sse_stream()
    await trio.sleep(0.2)
    return "Reconnection test completed successfully"


@app.tool(input_schema={
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"$anchor": "addressDef", "type": "object", "properties": {
        "street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
})
async def json_schema_2020_12_tool(
    name: str | None = None, address: dict[str, str] | None = None
) -> str:
    """A tool whose input schema uses JSON Schema 2020-12 keywords."""
    return f"name={name}, address={address}"


# -- 2026-07-28 (stateless) fixtures ----------------------------------------------------------


@app.tool(requires=("sampling",))
async def test_missing_capability(ctx: Context) -> str:
    """Needs the client's sampling capability; refused before it runs without it."""
    await ctx.sample("Say hello", max_tokens=10)
    return "sampled"


@app.tool
async def test_streaming_elicitation(ctx: Context) -> str:
    """Asks the user a question (input_required in the modern era)."""
    answer = await ctx.elicit("What is your name?", {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
    return f"Hello, {(answer.content or {}).get('name', 'stranger')}!"


@app.tool
async def test_logging_tool(ctx: Context) -> str:
    """Logs at info; sends nothing unless the client asked for a log level."""
    await ctx.info("logging tool ran")
    return "Logging tool executed"


@app.tool
async def test_trigger_tool_change(ctx: Context) -> str:
    """Announces that the tool list changed."""
    await ctx.notify_tools_changed()
    return "tools/list_changed sent"


@app.tool
async def test_trigger_prompt_change(ctx: Context) -> str:
    """Announces that the prompt list changed."""
    await ctx.notify_prompts_changed()
    return "prompts/list_changed sent"


@app.tool(headers={"region": "Region"})
async def test_custom_header(region: str) -> str:
    """Echoes a parameter that clients also send as the Mcp-Param-Region header."""
    return f"region={region}"


NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


@app.tool
async def test_input_required_result_elicitation(ctx: Context) -> str:
    """Asks for the user's name; the answer must carry a string name."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    name = (answer.content or {}).get("name")
    if answer.action != "accept" or not isinstance(name, str):
        raise scalemcp.ToolError("expected an accepted answer with a string name")
    return f"Hello, {name}!"


@app.tool
async def test_input_required_result_sampling(ctx: Context) -> str:
    """Asks the client's model a question."""
    reply = await ctx.sample("What is the capital of France?", max_tokens=100,
                             key="capital_question")
    content = reply.get("content", {})
    return f"The model said: {content.get('text', '') if isinstance(content, dict) else content}"


@app.tool
async def test_input_required_result_list_roots(ctx: Context) -> str:
    """Asks the client for its roots."""
    found = await ctx.list_roots(key="client_roots")
    return "Roots: " + ", ".join(str(r.get("uri")) for r in found)


CONFIRM_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@app.tool
async def test_input_required_result_request_state(ctx: Context) -> str:
    """Asks for confirmation; the answer comes back with the signed requestState."""
    answer = await ctx.elicit("Please confirm", CONFIRM_SCHEMA, key="confirm")
    return f"state-ok: confirmed={(answer.content or {}).get('ok')}"


@app.tool
async def test_input_required_result_multiple_inputs(ctx: Context) -> str:
    """Asks three things at once: a name, a model greeting and the roots."""
    answers = await ctx.ask({
        "user_name": scalemcp.elicitation("What is your name?", NAME_SCHEMA),
        "greeting": scalemcp.sampling("Generate a greeting", max_tokens=50),
        "client_roots": scalemcp.roots(),
    })
    return f"Got {sorted(answers)}"


@app.tool
async def test_input_required_result_multi_round(ctx: Context) -> str:
    """Asks in two rounds: a name, then a favourite colour."""
    first = await ctx.elicit("Step 1: What is your name?", NAME_SCHEMA, key="step1")
    second = await ctx.elicit("Step 2: What is your favorite color?", {
        "type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"],
    }, key="step2")
    return f"{(first.content or {}).get('name')} likes {(second.content or {}).get('color')}"


@app.tool
async def test_input_required_result_tampered_state(ctx: Context) -> str:
    """Asks for confirmation; a forged requestState is refused."""
    answer = await ctx.elicit("Please confirm", CONFIRM_SCHEMA, key="confirm")
    return f"confirmed={(answer.content or {}).get('ok')}"


@app.tool
async def test_input_required_result_capabilities(ctx: Context) -> str:
    """Asks only what the client can answer."""
    caps = ctx.client_capabilities
    if "elicitation" in caps:
        answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
        return f"elicited {answer.action}"
    if "sampling" in caps:
        reply = await ctx.sample("Say hello", max_tokens=20, key="hello")
        return f"sampled {reply.get('model', '')}"
    return "the client can answer nothing"


@app.resource("test://static-text", mime_type="text/plain",
              description="A static text resource")
def static_text() -> str:
    return "This is the content of the static text resource."


@app.resource("test://static-binary", mime_type="image/png",
              description="A static binary resource")
def static_binary() -> bytes:
    return PNG


@app.resource("test://watched-resource", mime_type="text/plain",
              description="A resource to subscribe to")
def watched_resource() -> str:
    return "Watched resource content"


@app.resource("test://template/{id}/data", mime_type="application/json",
              name="template_data", description="A resource template")
def template_data(id: str) -> str:
    data = {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}
    return msgspec.json.encode(data).decode()


@app.prompt
def test_simple_prompt() -> str:
    """A simple prompt without arguments."""
    return "This is a simple prompt for testing."


@app.prompt
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with two required arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@app.prompt
def test_prompt_with_embedded_resource(resourceUri: str) -> list[Any]:
    """A prompt with an embedded resource."""
    return [
        PromptMessage(role="user", content=EmbeddedResource(resource=TextResourceContents(
            uri=resourceUri, mime_type="text/plain",
            text="Embedded resource content for testing."))),
        PromptMessage(role="user",
                      content=TextContent(text="Please process the embedded resource above.")),
    ]


@app.prompt
def test_prompt_with_image() -> list[Any]:
    """A prompt with an image."""
    return [
        PromptMessage(role="user", content=ImageContent(data=PNG_B64, mime_type="image/png")),
        PromptMessage(role="user", content=TextContent(text="Please analyze the image above.")),
    ]


@app.prompt
async def test_input_required_result_prompt(ctx: Context) -> str:
    """A prompt that asks the user for context first."""
    answer = await ctx.elicit("What context should the prompt use?", {
        "type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"],
    }, key="user_context")
    return f"Use this context: {(answer.content or {}).get('context')}"


@app.completion
def complete(ref: Any, argument: Any, context: dict[str, str]) -> list[str]:
    options = ["test", "testing", "tested", "paris", "park"]
    return [o for o in options if o.startswith(argument.value)]


# -- durable tasks (the io.modelcontextprotocol/tasks extension's tasks-* scenarios) -----


@app.tool
async def greet(name: str) -> str:
    """Greets by name (never a task)."""
    return f"Hello, {name}!"


@app.tool(task=True)
async def slow_compute(ctx: Context, seconds: float = 1.0, label: str = "") -> str:
    """Sleeps ``seconds``, then answers; a task when the client declares tasks."""
    await ctx.report_progress(0, 1, f"computing {label}".strip())
    await trio.sleep(seconds)
    return f"computed {label} in {seconds:g} s".replace("  ", " ")


@app.tool(task="required")
async def failing_job() -> str:
    """Runs only as a task; ends with a tool error after about a second."""
    await trio.sleep(1.0)
    raise scalemcp.ToolError("the job failed (as this fixture always does)")


@app.tool(task=True)
async def protocol_error_job() -> str:
    """A task whose run ends in a JSON-RPC error (status failed)."""
    raise InternalError("the job hit an internal failure (as this fixture does)")


_CONFIRM = {"type": "object", "properties": {"confirm": {"type": "boolean"}},
            "required": ["confirm"]}
_PART = {"type": "object", "properties": {"name": {"type": "string"},
                                           "confirm": {"type": "boolean"}}}


@app.tool(task=True)
async def confirm_delete(ctx: Context, filename: str) -> str:
    """Asks the user to confirm, then 'deletes' ``filename``."""
    answer = await ctx.elicit(f"Delete {filename}?", _CONFIRM, key="confirm")
    confirmed = answer.action == "accept" and bool((answer.content or {}).get("confirm"))
    return f"deleted {filename}" if confirmed else f"kept {filename}"


@app.tool(task=True)
async def multi_input(ctx: Context) -> str:
    """Asks two questions at once; answers may come one at a time."""
    answers = await ctx.ask({
        "first": scalemcp.elicitation("First input?", _PART),
        "second": scalemcp.elicitation("Second input?", _PART),
    })
    names = [str((a.get("content") or {}).get("name")) for a in answers.values()]
    return "got " + " and ".join(names)


@app.tool(task=scalemcp.TaskPolicy(support="required", inline_first=True))
async def test_tool_with_task(ctx: Context) -> str:
    """Asks for a name inline (multi round-trip), then goes on as a task."""
    answer = await ctx.elicit("What is your name?", {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
    }, key="user_name")
    await ctx.continue_as_task()
    await trio.sleep(0.2)
    return f"Hello, {(answer.content or {}).get('name')}!"
