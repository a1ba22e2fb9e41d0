// The official TypeScript SDK (@modelcontextprotocol/sdk v1) serving the bench tools on Node.
//
// Usage: MCP_TS_SDK_DIR=... node bench/targets/ts_server.mjs --mode sse|json|stateless [--port 0]
//
// MCP_TS_SDK_DIR is the installed SDK package (scripts/install-node-tools puts it in
// .cache/node-tools/env.sh). The SDK and zod are loaded through their CommonJS builds
// with a require() rooted in that directory, so this file needs no package.json of its own.
//
// Modes, all on node:http with no framework:
//   sse        stateful (Mcp-Session-Id), answers as SSE streams: the SDK's default
//   json       stateful, JSON answers (enableJsonResponse)
//   stateless  no sessions: a new McpServer + transport per request, as in the SDK's
//              simpleStatelessStreamableHttp example; answers as SSE streams
//
// Tools: echo(message) -> text; progress(steps, delay_ms) sends `steps` progress
// notifications when the request has a progressToken. Prints "PORT <n>" once listening.

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';

const sdkDir = process.env.MCP_TS_SDK_DIR;
if (!sdkDir) {
    console.error('MCP_TS_SDK_DIR is not set: source .cache/node-tools/env.sh (scripts/install-node-tools)');
    process.exit(2);
}
const require = createRequire(path.join(sdkDir, 'package.json'));
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { isInitializeRequest } = require('@modelcontextprotocol/sdk/types.js');
const z = require('zod');

const { values: opts } = parseArgs({
    options: {
        mode: { type: 'string', default: 'sse' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '0' },
    },
});
if (!['sse', 'json', 'stateless'].includes(opts.mode)) {
    console.error(`unknown --mode ${opts.mode}`);
    process.exit(2);
}

function buildServer() {
    const server = new McpServer({ name: 'bench-ts', version: '1' });
    server.registerTool(
        'echo',
        { description: 'Return the message unchanged.', inputSchema: { message: z.string() } },
        async ({ message }) => ({ content: [{ type: 'text', text: message }] }),
    );
    server.registerTool(
        'progress',
        {
            description: 'Report `steps` progress notifications, sleeping `delay_ms` between them.',
            inputSchema: { steps: z.number().int().default(5), delay_ms: z.number().int().default(0) },
        },
        async ({ steps, delay_ms }, extra) => {
            const token = extra._meta?.progressToken;
            for (let i = 1; i <= steps; i++) {
                if (token !== undefined) {
                    await extra.sendNotification({
                        method: 'notifications/progress',
                        params: { progressToken: token, progress: i, total: steps },
                    });
                }
                if (delay_ms) await new Promise((resolve) => setTimeout(resolve, delay_ms));
            }
            return { content: [{ type: 'text', text: `done ${steps}` }] };
        },
    );
    return server;
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', (chunk) => chunks.push(chunk));
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

function jsonError(res, status, message) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

const sessions = new Map();

async function stateful(req, res) {
    const sid = req.headers['mcp-session-id'];
    let transport = sid ? sessions.get(sid) : undefined;
    if (req.method !== 'POST') {
        if (!transport) return jsonError(res, sid ? 404 : 400, 'unknown or missing session');
        return transport.handleRequest(req, res);
    }
    const body = JSON.parse(await readBody(req));
    if (!transport) {
        if (sid) return jsonError(res, 404, 'session not found');
        if (!isInitializeRequest(body)) return jsonError(res, 400, 'no session: initialize first');
        transport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            enableJsonResponse: opts.mode === 'json',
            onsessioninitialized: (id) => sessions.set(id, transport),
        });
        transport.onclose = () => {
            if (transport.sessionId) sessions.delete(transport.sessionId);
        };
        await buildServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
}

async function stateless(req, res) {
    if (req.method !== 'POST') return jsonError(res, 405, 'method not allowed');
    const body = JSON.parse(await readBody(req));
    const server = buildServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
        transport.close();
        server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
}

const handler = opts.mode === 'stateless' ? stateless : stateful;
const httpServer = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
    if (!req.url.startsWith('/mcp')) return jsonError(res, 404, 'not found');
    handler(req, res).catch((err) => {
        if (!res.headersSent) jsonError(res, 500, String(err));
        else res.end();
    });
});
httpServer.headersTimeout = 0;
httpServer.requestTimeout = 0;
httpServer.listen(Number(opts.port), opts.host, 1024, () => {
    process.stdout.write(`PORT ${httpServer.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => process.exit(0));
}
