/** The API client and the tree rows against a local HTTP server (no VS Code, no network). */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import { NoaApiError, NoaClient } from "../client";
import { buildRunNodes, iconFor, shortSource } from "../runsTree";

const TOKEN = "noa_k1_s3cret";

interface Seen { method: string; url: string; auth: string | undefined; body: unknown }

const seen: Seen[] = [];
let server: Server;
let base = "";

const DROP = {
  id: "d-1", project_id: 1, source: "/src/shop-api/", kind: "dir", sandbox: "A", commit: "0123456789abcdef",
  confidence: 0.82, status: "validated", created: "2026-11-25T18:00:00+00:00", finished: null, file_count: 3,
  total_bytes: 10, tree_hash: null, has_report: true,
};

function write(kind: string, subject: string) {
  return { id: "w-1", kind, subject, flow_run_id: "5f0c1a52-7a6e-4ad4-9c55-3a3c2d1e0f11", change_id: null,
           steps: { submit: "ok" }, status_url: null, ui_url: "http://127.0.0.1:4200/runs/flow-run/5f0c" };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}

before(async () => {
  server = createServer(async (req, res) => {
    const body = await readBody(req);
    seen.push({ method: req.method ?? "", url: req.url ?? "", auth: req.headers.authorization, body });
    const send = (code: number, doc: unknown) => {
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(doc));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(401, { detail: "invalid or revoked token" });
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/v1/drops") return send(200, { items: [DROP], total: 1, limit: 20, offset: 0 });
    if (req.method === "POST" && path === "/v1/drops") {
      const b = body as { source: string; sandbox: string };
      if (!["auto", "A", "B", "C"].includes(b.sandbox)) return send(422, { detail: [{ msg: "bad sandbox" }] });
      return send(202, write("drop", b.source));
    }
    if (req.method === "POST" && path === "/v1/pipelines") return send(202, write("pipeline", (body as { source: string }).source));
    if (req.method === "GET" && path.startsWith("/v1/runs/")) {
      return send(200, { flow_run_id: path.slice(9), name: "api-drop", state: "COMPLETED", state_name: "Completed",
                         message: null, final: true, start_time: null, end_time: null, parameters: {}, ui_url: null });
    }
    send(404, { detail: "not found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("NoaClient", () => {
  test("lists drops with the bearer token", async () => {
    const api = new NoaClient({ apiUrl: base, token: TOKEN });
    const list = await api.listDrops(5);
    assert.equal(list.items[0].id, "d-1");
    const last = seen[seen.length - 1];
    assert.equal(last.url, "/v1/drops?limit=5");
    assert.equal(last.auth, `Bearer ${TOKEN}`);
  });

  test("drops a folder and starts a pipeline with the documented bodies", async () => {
    const api = new NoaClient({ apiUrl: base, token: TOKEN });
    const w = await api.drop("/home/me/project", "B");
    assert.equal(w.kind, "drop");
    assert.deepEqual(seen[seen.length - 1].body, { source: "/home/me/project", sandbox: "B" });
    const p = await api.runPipeline("/home/me/project", "production");
    assert.equal(p.kind, "pipeline");
    assert.deepEqual(seen[seen.length - 1].body, { source: "/home/me/project", env: "production" });
    const run = await api.run(p.flow_run_id as string);
    assert.equal(run.final, true);
  });

  test("a refused token gives the server's reason and never the token", async () => {
    const api = new NoaClient({ apiUrl: base, token: "noa_wrong_token" });
    await assert.rejects(api.listDrops(), (err: unknown) => {
      if (!(err instanceof NoaApiError)) return false;
      assert.equal(err.status, 401);
      assert.match(err.message, /invalid or revoked token/);
      assert.doesNotMatch(err.message, /noa_wrong_token/);
      return true;
    });
  });

  test("validation errors are summarised; missing token and bad URL are refused before any request", async () => {
    const api = new NoaClient({ apiUrl: base, token: TOKEN });
    await assert.rejects(api.drop("/x", "Z" as never), /422 bad sandbox/);
    const before = seen.length;
    await assert.rejects(new NoaClient({ apiUrl: base, token: "" }).listDrops(), /set noa.token/);
    assert.throws(() => new NoaClient({ apiUrl: "ftp://x", token: TOKEN }), /must start with http/);
    assert.equal(seen.length, before);
  });

  test("an unreachable server is reported as such", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const api = new NoaClient({ apiUrl: `http://127.0.0.1:${port}`, token: TOKEN, timeoutMs: 3000 });
    await assert.rejects(api.listDrops(), /unreachable/);
  });
});

describe("runs tree", () => {
  test("drops become rows with status icons; started runs come first", () => {
    const nodes = buildRunNodes([{ write: write("pipeline", "/src/shop-api") }], [DROP]);
    assert.equal(nodes.length, 2);
    assert.equal(nodes[0].label, "pipeline shop-api");
    assert.equal(nodes[0].description, "submitted");
    assert.equal(nodes[0].icon, "sync");
    assert.equal(nodes[1].label, "shop-api");
    assert.equal(nodes[1].description, "validated · sandbox A · confidence 0.82");
    assert.equal(nodes[1].icon, "pass");
  });

  test("an error or an empty server shows one message row", () => {
    assert.deepEqual(buildRunNodes([], [], undefined).map((n) => n.label), ["no runs yet"]);
    assert.deepEqual(buildRunNodes([], null, "NOA API unreachable").map((n) => n.label), ["NOA API unreachable"]);
  });

  test("helpers", () => {
    assert.equal(shortSource("https://github.com/o/repo.git"), "repo");
    assert.equal(shortSource("pypi:toolz==1.2.0"), "pypi:toolz==1.2.0");
    assert.equal(iconFor("FAILED"), "error");
    assert.equal(iconFor("skipped"), "circle-slash");
  });
});
