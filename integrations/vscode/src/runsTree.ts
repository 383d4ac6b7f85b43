/**
 * What the "Recent runs" view shows, as plain data (no VS Code import): the extension maps
 * each RunNode onto a vscode.TreeItem. Runs started from this window come first (with
 * their flow run state once polled), then the server's drops, newest first.
 */

import type { Drop, RunOut, WriteOut } from "./client";

export interface RunNode {
  id: string;
  label: string;
  description: string;
  tooltip: string;
  icon: "pass" | "error" | "sync" | "circle-slash" | "question";
  contextValue: "noaDrop" | "noaRun" | "noaMessage";
  url?: string | null;
}

export interface StartedRun {
  write: WriteOut;
  run?: RunOut;
}

const OK = new Set(["ok", "passed", "completed", "validated", "merged", "promoted", "done", "success"]);
const BAD = new Set(["failed", "error", "crashed", "rejected", "rolled_back", "timeout", "cancelled"]);
const RUNNING = new Set(["running", "pending", "scheduled", "received", "analysing", "started", "queued"]);

export function iconFor(status: string): RunNode["icon"] {
  const s = status.toLowerCase();
  if (OK.has(s)) return "pass";
  if (BAD.has(s)) return "error";
  if (RUNNING.has(s)) return "sync";
  if (s === "skipped") return "circle-slash";
  return "question";
}

/** The last path or URL segment of a source: `/src/app/` -> `app`, `pypi:x==1` stays. */
export function shortSource(source: string): string {
  const trimmed = source.replace(/[\\/]+$/, "");
  const last = trimmed.split(/[\\/]/).pop() ?? trimmed;
  return last.replace(/\.git$/, "") || source;
}

export function dropNode(drop: Drop): RunNode {
  const parts = [drop.status];
  if (drop.sandbox) parts.push(`sandbox ${drop.sandbox}`);
  if (drop.confidence !== null && drop.confidence !== undefined) parts.push(`confidence ${drop.confidence.toFixed(2)}`);
  const lines = [
    `drop ${drop.id}`,
    `source: ${drop.source}`,
    `status: ${drop.status}`,
    `created: ${drop.created}`,
  ];
  if (drop.finished) lines.push(`finished: ${drop.finished}`);
  if (drop.commit) lines.push(`commit: ${drop.commit.slice(0, 12)}`);
  return {
    id: `drop:${drop.id}`,
    label: shortSource(drop.source),
    description: parts.join(" · "),
    tooltip: lines.join("\n"),
    icon: iconFor(drop.status),
    contextValue: "noaDrop",
  };
}

export function startedNode(started: StartedRun): RunNode {
  const w = started.write;
  const state = started.run ? started.run.state_name || started.run.state : "submitted";
  const status = started.run ? started.run.state.toLowerCase() : "pending";
  return {
    id: `run:${w.flow_run_id ?? w.id}`,
    label: `${w.kind} ${shortSource(w.subject)}`,
    description: state,
    tooltip: [`${w.kind} of ${w.subject}`, `flow run: ${w.flow_run_id ?? "none"}`, started.run?.message ?? ""]
      .filter(Boolean).join("\n"),
    icon: iconFor(status),
    contextValue: "noaRun",
    url: started.run?.ui_url ?? w.ui_url,
  };
}

export function messageNode(text: string): RunNode {
  return { id: "message", label: text, description: "", tooltip: text, icon: "question", contextValue: "noaMessage" };
}

/** The view's rows: started runs (newest first), then drops not already listed. */
export function buildRunNodes(started: StartedRun[], drops: Drop[] | null, error?: string): RunNode[] {
  const nodes = [...started].reverse().map(startedNode);
  if (error) nodes.push(messageNode(error));
  else if (drops !== null && drops.length === 0 && nodes.length === 0) nodes.push(messageNode("no runs yet"));
  for (const d of drops ?? []) nodes.push(dropNode(d));
  return nodes;
}
