// Interop driver: the official TypeScript SDK client's experimental tasks API
// (client.experimental.tasks, 2025-11-25 core tasks) against a real scalemcp server running
// examples/tasks.py. Usage: node ts_tasks_client.mjs <url> [<url> ...]. With several URLs (the
// nodes of one fleet) the SDK's requests go to them in turn, through its `fetch` option.
// Prints one JSON summary on stdout (tests/interop/test_typescript_sdk_tasks.py asserts on
// it); a failure prints {"error": ...}.

import path from 'node:path';
import { pathToFileURL } from 'node:url';

const urls = process.argv.slice(2).map(u => new URL(u));
const url = urls[0];
const sdkDir = process.env.MCP_TS_SDK_DIR;
if (!sdkDir || !url) {
    console.error('usage: MCP_TS_SDK_DIR=... node ts_tasks_client.mjs <url>');
    process.exit(2);
}
const load = rel => import(pathToFileURL(path.join(sdkDir, 'dist', 'esm', rel)).href);
const { Client } = await load('client/index.js');
const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
const types = await load('types.js');

const opts = extra => ({ timeout: 10_000, ...extra });
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// Each request to the next node in turn; what went where, by JSON-RPC method (or the
// HTTP method for GET and DELETE, "response" for an answer to the server's request).
const routed = [];
let turn = 0;
function inTurn(input, init) {
    const target = new URL(input instanceof Request ? input.url : String(input));
    const node = turn++ % urls.length;
    target.host = urls[node].host;
    let what = init?.method ?? 'GET';
    if (what === 'POST' && typeof init.body === 'string') {
        const body = JSON.parse(init.body);
        what = body.method ?? (body.result !== undefined ? 'response' : 'error');
    }
    routed.push({ node, what });
    return fetch(target, init);
}

async function main() {
    const client = new Client({ name: 'scalemcp-interop-ts-tasks', version: '1.0.0' },
        { capabilities: { elicitation: { form: {} } } });
    const elicitations = [];
    client.setRequestHandler(types.ElicitRequestSchema, req => {
        elicitations.push({ message: req.params.message,
            relatedTask: req.params._meta?.['io.modelcontextprotocol/related-task'] ?? null });
        return { action: 'accept', content: { confirm: true } };
    });
    const transport = new StreamableHTTPClientTransport(url, { fetch: inTurn });
    await client.connect(transport, opts());
    const out = { capabilities: client.getServerCapabilities() };
    const tools = (await client.listTools({}, opts())).tools;
    out.taskSupport = Object.fromEntries(tools.map(t => [t.name, t.execution?.taskSupport ?? null]));

    const tasks = client.experimental.tasks;
    // A task-augmented tools/call through the SDK's stream: taskCreated, statuses, result.
    const streamed = [];
    for await (const message of tasks.callToolStream(
            { name: 'crunch', arguments: { steps: 2, step_s: 0.05 } }, undefined,
            opts({ task: { ttl: 60_000 } }))) {
        streamed.push(message.type === 'taskCreated' || message.type === 'taskStatus'
            ? { type: message.type, taskId: message.task.taskId, status: message.task.status,
                pollInterval: message.task.pollInterval ?? null }
            : message.type === 'result'
                ? { type: 'result', texts: message.result.content.map(c => c.text) }
                : { type: message.type, error: String(message.error) });
    }
    out.streamed = streamed;
    const firstId = streamed[0]?.taskId;
    out.getFinished = await tasks.getTask(firstId, opts());
    out.resultFinished = await tasks.getTaskResult(firstId, types.CallToolResultSchema, opts());

    // An elicitation inside a task: the server asks on the session's GET stream.
    const invoice = [];
    for await (const message of tasks.callToolStream(
            { name: 'send_invoice', arguments: { customer: 'ACME', amount_cents: 1250 } },
            undefined, opts({ task: { ttl: 60_000 } }))) {
        invoice.push(message.type === 'result'
            ? { type: 'result', texts: message.result.content.map(c => c.text) }
            : message.type === 'error' ? { type: 'error', error: String(message.error) }
            : { type: message.type, taskId: message.task.taskId, status: message.task.status });
    }
    out.invoice = invoice;
    out.elicitations = elicitations;

    // tasks/cancel on a running task, then on the terminal one (an error).
    let longId = null;
    for await (const message of tasks.callToolStream(
            { name: 'crunch', arguments: { steps: 100, step_s: 0.1 } }, undefined,
            opts({ task: { ttl: 60_000 } }))) {
        if (message.type === 'taskCreated') { longId = message.task.taskId; break; }
    }
    await sleep(300);
    out.beforeCancel = (await tasks.getTask(longId, opts())).status;
    out.cancelled = await tasks.cancelTask(longId, opts());
    out.afterCancel = (await tasks.getTask(longId, opts())).status;
    try {
        await tasks.cancelTask(longId, opts());
        out.cancelAgain = 'accepted';
    } catch (e) {
        out.cancelAgain = { code: e.code ?? null, message: String(e.message) };
    }
    try {
        await tasks.getTask('no-such-task', opts());
        out.unknown = 'found';
    } catch (e) {
        out.unknown = { code: e.code ?? null };
    }

    const listed = await tasks.listTasks(undefined, opts());
    out.listed = listed.tasks.map(t => ({ taskId: t.taskId, status: t.status }));
    out.ids = { first: firstId, invoice: invoice[0]?.taskId ?? null, long: longId };
    out.routed = routed;

    await transport.terminateSession();
    await client.close();
    return out;
}

try {
    process.stdout.write(JSON.stringify(await main()) + '\n');
    process.exit(0);
} catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e?.stack ?? e) }) + '\n');
    process.exit(1);
}
