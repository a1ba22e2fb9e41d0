// Interop driver: the official TypeScript SDK client (Client + StreamableHTTPClientTransport)
// against a real scalemcp server, session-era Streamable HTTP.
//
// Usage: node ts_client.mjs <quickstart|conformance> <url>
// Needs MCP_TS_SDK_DIR (set by .cache/node-tools/env.sh). Prints one JSON summary on stdout;
// tests/interop/test_typescript_sdk.py asserts on it. Any failure prints {"error": ...}, exit 1.

import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [scenario, url] = process.argv.slice(2);
const sdkDir = process.env.MCP_TS_SDK_DIR;
if (!sdkDir || !scenario || !url) {
    console.error('usage: MCP_TS_SDK_DIR=... node ts_client.mjs <quickstart|conformance> <url>');
    process.exit(2);
}
const load = rel => import(pathToFileURL(path.join(sdkDir, 'dist', 'esm', rel)).href);
const { Client } = await load('client/index.js');
const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
const types = await load('types.js');

const REQUEST_TIMEOUT_MS = 10_000;
const opts = extra => ({ timeout: REQUEST_TIMEOUT_MS, ...extra });

// Every HTTP exchange the transport makes.
const http = [];
const recordingFetch = async (input, init = {}) => {
    const headers = new Headers(init.headers);
    const response = await fetch(input, init);
    http.push({
        method: init.method ?? 'GET',
        status: response.status,
        contentType: (response.headers.get('content-type') ?? '').split(';')[0],
        sessionId: headers.get('mcp-session-id'),
        protocolVersion: headers.get('mcp-protocol-version'),
        lastEventId: headers.get('last-event-id'),
    });
    return response;
};

async function connect(capabilities = {}) {
    const client = new Client({ name: 'scalemcp-interop-ts', version: '1.0.0' }, { capabilities });
    const logs = [];
    client.setNotificationHandler(types.LoggingMessageNotificationSchema, n => {
        logs.push({ level: n.params.level, data: n.params.data });
    });
    const transport = new StreamableHTTPClientTransport(new URL(url), {
        fetch: recordingFetch,
        // Only used when the server sends no `retry:`; scalemcp does, so it is ignored.
        reconnectionOptions: {
            initialReconnectionDelay: 5000, maxReconnectionDelay: 5000,
            reconnectionDelayGrowFactor: 1, maxRetries: 2,
        },
    });
    const errors = [];
    transport.onerror = e => errors.push(String(e?.message ?? e));
    await client.connect(transport, opts());
    return { client, transport, logs, errors };
}

const textsOf = content => content.filter(c => c.type === 'text').map(c => c.text);

async function callWithProgress(client, name, args) {
    const progress = [];
    const result = await client.callTool({ name, arguments: args }, undefined, opts({
        onprogress: p => progress.push([p.progress, p.total ?? null, p.message ?? null]),
    }));
    return { progress, result };
}

async function quickstart() {
    const out = {};
    const elicitations = [];
    const answers = [
        { action: 'accept', content: { name: 'Ada' } },
        { action: 'decline' },
    ];
    const { client, transport, logs } = await connect({ elicitation: { form: {} } });
    client.setRequestHandler(types.ElicitRequestSchema, req => {
        elicitations.push(req.params);
        return answers[elicitations.length - 1];
    });
    out.protocolVersion = transport.protocolVersion;
    out.sessionId = transport.sessionId ?? null;
    out.serverVersion = client.getServerVersion();
    out.instructions = client.getInstructions() ?? null;
    out.capabilities = client.getServerCapabilities();

    const tools = await client.listTools(undefined, opts());
    out.tools = Object.fromEntries(tools.tools.map(t => [t.name, {
        description: t.description ?? null,
        inputSchema: t.inputSchema,
        outputSchema: t.outputSchema ?? null,
    }]));

    const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }, undefined, opts());
    out.add = { texts: textsOf(add.content), structured: add.structuredContent ?? null, isError: !!add.isError };
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'héllo wörld ✓' } }, undefined, opts());
    out.echo = { texts: textsOf(echo.content), structured: echo.structuredContent ?? null };
    const forecast = await client.callTool({ name: 'forecast', arguments: { city: 'Paris' } }, undefined, opts());
    out.forecast = { structured: forecast.structuredContent ?? null, isError: !!forecast.isError };
    const bad = await client.callTool({ name: 'forecast', arguments: { city: '' } }, undefined, opts());
    out.forecastInvalid = { texts: textsOf(bad.content), isError: !!bad.isError };
    try {
        await client.callTool({ name: 'no_such_tool', arguments: {} }, undefined, opts());
        out.unknownTool = { code: null };
    } catch (e) {
        out.unknownTool = { code: e.code ?? null, message: String(e.message) };
    }

    await client.setLoggingLevel('info', opts());
    const countdown = await callWithProgress(client, 'countdown', { n: 3 });
    out.countdown = { texts: textsOf(countdown.result.content), progress: countdown.progress };
    out.countdownLogs = logs.splice(0);
    await client.setLoggingLevel('warning', opts());
    const quiet = await callWithProgress(client, 'countdown', { n: 2 });
    out.quietCountdown = { texts: textsOf(quiet.result.content), progress: quiet.progress };
    await client.setLoggingLevel('info', opts());
    await client.callTool({ name: 'countdown', arguments: { n: 1 } }, undefined, opts());
    out.logsAfterWarning = logs.splice(0);

    out.resources = (await client.listResources(undefined, opts())).resources;
    out.config = (await client.readResource({ uri: 'config://app' }, opts())).contents;
    out.templates = (await client.listResourceTemplates(undefined, opts())).resourceTemplates;
    out.greeting = (await client.readResource({ uri: 'greeting://Ada' }, opts())).contents;
    try {
        await client.readResource({ uri: 'nope://missing' }, opts());
        out.missingResource = { code: null };
    } catch (e) {
        out.missingResource = { code: e.code ?? null };
    }

    out.prompts = (await client.listPrompts(undefined, opts())).prompts;
    out.reviewPrompt = await client.getPrompt({ name: 'review_code', arguments: { code: 'x = 1' } }, opts());

    const accepted = await client.callTool({ name: 'ask_name', arguments: {} }, undefined, opts());
    const declined = await client.callTool({ name: 'ask_name', arguments: {} }, undefined, opts());
    out.askName = [textsOf(accepted.content), textsOf(declined.content)];
    out.elicitations = elicitations;

    await transport.terminateSession();
    await client.close();
    return out;
}

async function conformance() {
    const out = {};
    const sampling = [];
    const elicitations = [];
    const { client, transport, logs, errors } = await connect({ sampling: {}, elicitation: { form: {} } });
    client.setRequestHandler(types.CreateMessageRequestSchema, req => {
        sampling.push(req.params);
        return {
            role: 'assistant',
            content: { type: 'text', text: 'Paris is the capital.' },
            model: 'interop-test-model',
            stopReason: 'endTurn',
        };
    });
    client.setRequestHandler(types.ElicitRequestSchema, req => {
        elicitations.push(req.params);
        return { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } };
    });
    out.protocolVersion = transport.protocolVersion;
    out.capabilities = client.getServerCapabilities();

    await client.setLoggingLevel('debug', opts());
    const prog = await callWithProgress(client, 'test_tool_with_progress', {});
    out.progressTool = { texts: textsOf(prog.result.content), progress: prog.progress };
    const logged = await client.callTool({ name: 'test_tool_with_logging', arguments: {} }, undefined, opts());
    out.loggingTool = { texts: textsOf(logged.content), logs: logs.splice(0) };

    out.binary = (await client.readResource({ uri: 'test://static-binary' }, opts())).contents;
    out.templateData = (await client.readResource({ uri: 'test://template/42/data' }, opts())).contents;
    out.promptWithArgs = await client.getPrompt(
        { name: 'test_prompt_with_arguments', arguments: { arg1: 'alpha', arg2: 'beta' } }, opts());

    const sampled = await client.callTool(
        { name: 'test_sampling', arguments: { prompt: 'What is the capital of France?' } }, undefined, opts());
    out.sampling = { texts: textsOf(sampled.content), isError: !!sampled.isError, requests: sampling };
    const elicited = await client.callTool(
        { name: 'test_elicitation', arguments: { message: 'Who are you?' } }, undefined, opts());
    out.elicitation = { texts: textsOf(elicited.content), requests: elicitations };

    const tokens = [];
    const httpBefore = http.length;
    const started = Date.now();
    const reconnected = await client.callTool({ name: 'test_reconnection', arguments: {} }, undefined, opts({
        onresumptiontoken: t => tokens.push(t),
    }));
    out.reconnection = {
        texts: textsOf(reconnected.content),
        isError: !!reconnected.isError,
        elapsedMs: Date.now() - started,
        tokens,
        http: http.slice(httpBefore),
    };

    const promptRef = { type: 'ref/prompt', name: 'test_prompt_with_arguments' };
    out.completions = {
        pa: (await client.complete({ ref: promptRef, argument: { name: 'arg1', value: 'pa' } }, opts())).completion,
        test: (await client.complete({ ref: promptRef, argument: { name: 'arg1', value: 'test' } }, opts())).completion,
        template: (await client.complete({
            ref: { type: 'ref/resource', uri: 'test://template/{id}/data' },
            argument: { name: 'id', value: 'zzz' },
        }, opts())).completion,
    };
    out.transportErrors = errors;

    await transport.terminateSession();
    await client.close();
    return out;
}

const scenarios = { quickstart, conformance };
try {
    if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
    const summary = await scenarios[scenario]();
    summary.http = http;
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exit(0);
} catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e?.stack ?? e), http }) + '\n');
    process.exit(1);
}
