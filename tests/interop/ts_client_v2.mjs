// Interop driver: the official TypeScript SDK v2 client (`@modelcontextprotocol/client`) against a
// real scalemcp quickstart server on the modern, stateless 2026-07-28 path.
//
// Usage: node ts_client_v2.mjs <url>
// Needs MCP_TS_CLIENT_V2_DIR (set by .cache/node-tools/env.sh). Prints one JSON summary on stdout;
// tests/interop/test_typescript_sdk_v2.py asserts on it. Any failure prints {"error": ...}, exit 1.
//
// Three connections, each with its own record of HTTP exchanges:
//   pinned  versionNegotiation {pin: '2026-07-28'}: the main scenario (tools, progress, logs,
//           elicitation answered through the client's handler via MRTR, resources, prompts)
//   auto    versionNegotiation 'auto': the server/discover probe must select 2026-07-28
//   legacy  the v2 default ('legacy', an initialize handshake): a control for the wire checks

import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [url] = process.argv.slice(2);
const clientDir = process.env.MCP_TS_CLIENT_V2_DIR;
if (!clientDir || !url) {
    console.error('usage: MCP_TS_CLIENT_V2_DIR=... node ts_client_v2.mjs <url>');
    process.exit(2);
}
const { Client, StreamableHTTPClientTransport, LOG_LEVEL_META_KEY } = await import(
    pathToFileURL(path.join(clientDir, 'dist', 'index.mjs')).href);

const MODERN = '2026-07-28';
const opts = extra => ({ timeout: 10_000, ...extra });
const textsOf = content => content.filter(c => c.type === 'text').map(c => c.text);

// JSON-RPC messages in a response body: one JSON document, or the `data:` lines of an SSE stream.
function messagesIn(contentType, text) {
    if (contentType === 'text/event-stream') {
        return text.split('\n').filter(l => l.startsWith('data:'))
            .map(l => l.slice(5).trim()).filter(Boolean).map(d => JSON.parse(d));
    }
    return text ? [JSON.parse(text)] : [];
}

// A fetch that records every exchange: request headers and JSON-RPC body, response headers and
// the JSON-RPC messages of the body (read from a clone, so the SDK still streams the original).
function recorder() {
    const http = [];
    const pending = [];
    const fetchFn = async (input, init = {}) => {
        const headers = new Headers(init.headers);
        const response = await fetch(input, init);
        const contentType = (response.headers.get('content-type') ?? '').split(';')[0].trim();
        const entry = {
            method: init.method ?? 'GET',
            status: response.status,
            contentType,
            request: {
                protocolVersion: headers.get('mcp-protocol-version'),
                sessionId: headers.get('mcp-session-id'),
                mcpMethod: headers.get('mcp-method'),
                mcpName: headers.get('mcp-name'),
            },
            responseSessionId: response.headers.get('mcp-session-id'),
            body: typeof init.body === 'string' ? JSON.parse(init.body) : null,
            messages: null,
        };
        http.push(entry);
        pending.push(response.clone().text().then(
            text => { entry.messages = messagesIn(contentType, text); },
            e => { entry.messages = [{ readError: String(e) }]; }));
        return response;
    };
    return { http, fetchFn, settled: () => Promise.all(pending) };
}

async function connect(versionNegotiation, capabilities = {}) {
    const rec = recorder();
    const client = new Client({ name: 'scalemcp-interop-ts-v2', version: '1.0.0' },
        { capabilities, ...(versionNegotiation && { versionNegotiation }) });
    const logs = [];
    client.setNotificationHandler('notifications/message', n => {
        logs.push({ level: n.params.level, data: n.params.data });
    });
    const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: rec.fetchFn });
    await client.connect(transport, opts());
    return { client, transport, logs, rec };
}

async function countdown(client, n, meta) {
    const progress = [];
    const result = await client.callTool(
        { name: 'countdown', arguments: { n }, ...(meta && { _meta: meta }) },
        opts({ onprogress: p => progress.push([p.progress, p.total ?? null, p.message ?? null]) }));
    return { texts: textsOf(result.content), progress };
}

async function errorCode(promise) {
    try {
        await promise;
        return null;
    } catch (e) {
        return e.code ?? String(e);
    }
}

async function pinned() {
    const out = {};
    const elicitations = [];
    const answers = [{ action: 'accept', content: { name: 'Zoë' } }, { action: 'decline' }];
    const { client, transport, logs, rec } = await connect(
        { mode: { pin: MODERN } }, { elicitation: { form: {} } });
    client.setRequestHandler('elicitation/create', req => {
        elicitations.push(req.params);
        return answers[elicitations.length - 1];
    });
    out.protocolVersion = client.getNegotiatedProtocolVersion() ?? null;
    out.transportProtocolVersion = transport.protocolVersion ?? null;
    out.sessionId = transport.sessionId ?? null;
    out.serverVersion = client.getServerVersion() ?? null;
    out.instructions = client.getInstructions() ?? null;
    out.capabilities = client.getServerCapabilities() ?? null;

    out.tools = (await client.listTools(undefined, opts())).tools.map(t => t.name);
    const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }, opts());
    out.add = { texts: textsOf(add.content), structured: add.structuredContent ?? null, isError: !!add.isError };

    // Logging is opt-in per request in 2026-07-28 (`_meta` logLevel; logging/setLevel is gone).
    out.countdown = await countdown(client, 3, { [LOG_LEVEL_META_KEY]: 'info' });
    out.countdownLogs = logs.splice(0);
    out.countdownNoLevel = await countdown(client, 2);
    out.logsWithoutLevel = logs.splice(0);
    out.countdownWarning = await countdown(client, 1, { [LOG_LEVEL_META_KEY]: 'warning' });
    out.logsAtWarning = logs.splice(0);

    const askStart = rec.http.length;
    const accepted = await client.callTool({ name: 'ask_name', arguments: {} }, opts());
    out.askNameHttpRange = [askStart, rec.http.length];
    const declined = await client.callTool({ name: 'ask_name', arguments: {} }, opts());
    out.askName = [textsOf(accepted.content), textsOf(declined.content)];
    out.elicitations = elicitations;

    out.greeting = (await client.readResource({ uri: 'greeting://Ada' }, opts())).contents;
    out.reviewPrompt = (await client.getPrompt(
        { name: 'review_code', arguments: { code: 'x = 1' } }, opts())).messages;
    out.unknownToolCode = await errorCode(client.callTool({ name: 'no_such_tool', arguments: {} }, opts()));
    out.missingResourceCode = await errorCode(client.readResource({ uri: 'nope://missing' }, opts()));

    await client.close();
    await rec.settled();
    out.http = rec.http;
    return out;
}

async function auto() {
    const { client, rec } = await connect({ mode: 'auto' });
    const out = { protocolVersion: client.getNegotiatedProtocolVersion() ?? null };
    const add = await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } }, opts());
    out.addStructured = add.structuredContent ?? null;
    await client.close();
    await rec.settled();
    out.http = rec.http;
    return out;
}

async function legacy() {
    const { client, transport, rec } = await connect(undefined, { elicitation: { form: {} } });
    client.setRequestHandler('elicitation/create', () => ({ action: 'accept', content: { name: 'Zoë' } }));
    const out = { protocolVersion: client.getNegotiatedProtocolVersion() ?? null };
    out.tools = (await client.listTools(undefined, opts())).tools.map(t => t.name);
    out.askName = textsOf((await client.callTool({ name: 'ask_name', arguments: {} }, opts())).content);
    await transport.terminateSession();
    await client.close();
    await rec.settled();
    out.http = rec.http;
    return out;
}

try {
    const summary = { pinned: await pinned(), auto: await auto(), legacy: await legacy() };
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exit(0);
} catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e?.stack ?? e) }) + '\n');
    process.exit(1);
}
