// Interop client: the official TypeScript MCP SDK lists and calls tools on the suite's servers.
//
// Usage: node client.mjs plan.json  → prints one JSON array of results on stdout.
// A plan is a list of targets:
//   {"label", "transport": "stdio"|"sse"|"http", "url"?, "command"?, "args"?, "env"?, "cwd"?, "token"?,
//    "call"?: {"name", "arguments"}}
// A target that cannot connect (e.g. refused for want of a token) is reported, not thrown.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function transportFor(target) {
  const headers = target.token ? { Authorization: `Bearer ${target.token}` } : {};
  if (target.transport === "stdio") {
    return new StdioClientTransport({
      command: target.command, args: target.args, env: target.env, cwd: target.cwd, stderr: "ignore",
    });
  }
  if (target.transport === "sse") {
    return new SSEClientTransport(new URL(target.url), { requestInit: { headers } });
  }
  return new StreamableHTTPClientTransport(new URL(target.url), { requestInit: { headers } });
}

async function run(target) {
  const outcome = { label: target.label, transport: target.transport, connected: false };
  const client = new Client({ name: "mcp-suite-interop", version: "1.0.0" });
  try {
    await client.connect(transportFor(target));
    outcome.connected = true;
    outcome.server = client.getServerVersion()?.name;
    const listed = await client.listTools();
    outcome.tools = listed.tools.map((tool) => tool.name).sort();
    if (target.call) {
      const result = await client.callTool({ name: target.call.name, arguments: target.call.arguments ?? {} });
      outcome.isError = Boolean(result.isError);
      outcome.text = result.content?.[0]?.text ?? null;
      outcome.structured = result.structuredContent ?? null;
    }
  } catch (error) {
    outcome.error = String(error?.message ?? error).slice(0, 300);
    outcome.code = error?.code ?? null;
  } finally {
    try {
      await client.close();
    } catch {
      // already closed
    }
  }
  return outcome;
}

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];
for (const target of plan) {
  results.push(await run(target));
}
process.stdout.write(JSON.stringify(results) + "\n");
process.exit(0);
