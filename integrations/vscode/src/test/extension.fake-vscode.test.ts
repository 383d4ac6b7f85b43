/**
 * extension.ts wired to a FAKE `vscode` module (VS Code itself cannot run here): the
 * commands call the NOA API with the folder and the settings, and the tree provider turns
 * the answers into tree items. The NOA API is a local HTTP server.
 */

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Module from "node:module";
import { after, before, test } from "node:test";

const settings: Record<string, unknown> = { token: "noa_k_secret", sandbox: "C", pipelineEnv: "production" };
const messages: { level: string; text: string }[] = [];
const commands = new Map<string, (...args: unknown[]) => unknown>();
const providers = new Map<string, { getChildren(): Promise<unknown[]>; getTreeItem(n: unknown): FakeTreeItem }>();

class FakeTreeItem {
  id?: string;
  description?: string;
  tooltip?: string;
  iconPath?: { id: string };
  contextValue?: string;
  command?: { command: string };
  constructor(readonly label: string, readonly collapsibleState: number) {}
}

const fakeVscode = {
  workspace: {
    workspaceFolders: [{ uri: { fsPath: "/home/me/shop-api" } }],
    getConfiguration: () => ({ get: (key: string, fallback: unknown) => settings[key] ?? fallback }),
  },
  window: {
    registerTreeDataProvider: (id: string, p: never) => { providers.set(id, p); return { dispose() {} }; },
    showInformationMessage: async (text: string) => { messages.push({ level: "info", text }); },
    showErrorMessage: async (text: string) => { messages.push({ level: "error", text }); },
    showWorkspaceFolderPick: async () => undefined,
  },
  commands: {
    registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => { commands.set(id, fn); return { dispose() {} }; },
  },
  EventEmitter: class { event = () => ({ dispose() {} }); fire() {} },
  TreeItem: FakeTreeItem,
  TreeItemCollapsibleState: { None: 0 },
  ThemeIcon: class { constructor(readonly id: string) {} },
  Uri: { parse: (s: string) => ({ toString: () => s }) },
};

const mod = Module as unknown as { _resolveFilename: (...a: unknown[]) => string };
const resolve = mod._resolveFilename;
mod._resolveFilename = function (request: unknown, ...rest: unknown[]) {
  return request === "vscode" ? "vscode" : resolve.call(this, request, ...rest);
};
require.cache["vscode"] = { id: "vscode", filename: "vscode", loaded: true, exports: fakeVscode } as NodeJS.Module;

const bodies: { path: string; body: unknown }[] = [];
let server: Server;

before(async () => {
  server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      bodies.push({ path: req.url ?? "", body: raw ? JSON.parse(raw) : undefined });
      res.writeHead(req.method === "POST" ? 202 : 200, { "Content-Type": "application/json" });
      if (req.method === "POST") {
        res.end(JSON.stringify({ id: "w1", kind: req.url === "/v1/drops" ? "drop" : "pipeline",
          subject: "/home/me/shop-api", flow_run_id: "fr-1", change_id: null, steps: {}, status_url: null,
          ui_url: "http://127.0.0.1:4200/runs/flow-run/fr-1" }));
      } else if ((req.url ?? "").startsWith("/v1/runs/")) {
        res.end(JSON.stringify({ flow_run_id: "fr-1", name: "n", state: "RUNNING", state_name: "Running",
          message: null, final: false, start_time: null, end_time: null, ui_url: null }));
      } else {
        res.end(JSON.stringify({ items: [], total: 0, limit: 20, offset: 0 }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  settings.apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

test("activate registers the commands and the view; the commands call the API", async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ext = require("../extension") as { activate(ctx: { subscriptions: unknown[] }): void };
  const ctx = { subscriptions: [] as unknown[] };
  ext.activate(ctx);
  assert.deepEqual([...commands.keys()].sort(), ["noa.dropFolder", "noa.refreshRuns", "noa.runPipeline"]);
  assert.ok(providers.has("noa.runs"));

  await commands.get("noa.dropFolder")!({ fsPath: "/home/me/other" });
  await commands.get("noa.runPipeline")!();  // no folder given: the single workspace folder
  assert.deepEqual(bodies.filter((b) => b.body).map((b) => [b.path, b.body]), [
    ["/v1/drops", { source: "/home/me/other", sandbox: "C" }],
    ["/v1/pipelines", { source: "/home/me/shop-api", env: "production" }],
  ]);
  assert.equal(messages.filter((m) => m.level === "info").length, 2);

  const provider = providers.get("noa.runs")!;
  const nodes = await provider.getChildren();
  const items = nodes.map((n) => provider.getTreeItem(n));
  assert.equal(items[0].label, "pipeline shop-api");
  assert.equal(items[0].description, "Running");
  assert.equal(items[0].iconPath?.id, "sync");
  assert.equal(items[0].command?.command, "vscode.open");

  settings.token = "";
  await commands.get("noa.dropFolder")!({ fsPath: "/x" });
  const last = messages[messages.length - 1];
  assert.equal(last.level, "error");
  assert.match(last.text, /set noa\.token/);
});
