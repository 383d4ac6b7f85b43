/**
 * The VS Code face: commands "NOA: Drop this folder", "NOA: Run pipeline" and the
 * "Recent runs" tree view. The API calls and the rows live in client.ts / runsTree.ts.
 */

import * as vscode from "vscode";

import { NoaClient, type PipelineEnv, type Sandbox } from "./client";
import { buildRunNodes, type RunNode, type StartedRun } from "./runsTree";

function client(): NoaClient {
  const cfg = vscode.workspace.getConfiguration("noa");
  return new NoaClient({ apiUrl: cfg.get<string>("apiUrl", "http://127.0.0.1:8765"), token: cfg.get<string>("token", "") });
}

class RunsProvider implements vscode.TreeDataProvider<RunNode> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly started: StartedRun[] = [];

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(node: RunNode): vscode.TreeItem {
    const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
    item.id = node.id;
    item.description = node.description;
    item.tooltip = node.tooltip;
    item.iconPath = new vscode.ThemeIcon(node.icon);
    item.contextValue = node.contextValue;
    if (node.url) {
      item.command = { command: "vscode.open", title: "Open in Prefect", arguments: [vscode.Uri.parse(node.url)] };
    }
    return item;
  }

  async getChildren(): Promise<RunNode[]> {
    let api: NoaClient;
    try {
      api = client();
    } catch (err) {
      return buildRunNodes(this.started, null, (err as Error).message);
    }
    await Promise.all(this.started.filter((s) => s.write.flow_run_id && !s.run?.final).map(async (s) => {
      try {
        s.run = await api.run(s.write.flow_run_id as string);
      } catch {
        /* keep the last known state */
      }
    }));
    try {
      const drops = await api.listDrops(20);
      return buildRunNodes(this.started, drops.items);
    } catch (err) {
      return buildRunNodes(this.started, null, (err as Error).message);
    }
  }
}

async function folderOf(uri?: vscode.Uri): Promise<string | undefined> {
  if (uri?.fsPath) return uri.fsPath;
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length === 1) return folders[0].uri.fsPath;
  if (folders.length > 1) {
    const picked = await vscode.window.showWorkspaceFolderPick({ placeHolder: "Folder to send to NOA" });
    return picked?.uri.fsPath;
  }
  void vscode.window.showErrorMessage("NOA: open a folder first");
  return undefined;
}

export function activate(context: vscode.ExtensionContext): void {
  const provider = new RunsProvider();
  context.subscriptions.push(vscode.window.registerTreeDataProvider("noa.runs", provider));

  const start = async (kind: "drop" | "pipeline", uri?: vscode.Uri) => {
    const folder = await folderOf(uri);
    if (!folder) return;
    const cfg = vscode.workspace.getConfiguration("noa");
    try {
      const api = client();
      const write = kind === "drop"
        ? await api.drop(folder, cfg.get<Sandbox>("sandbox", "auto"))
        : await api.runPipeline(folder, cfg.get<PipelineEnv>("pipelineEnv", "staging"));
      provider.started.push({ write });
      provider.refresh();
      void vscode.window.showInformationMessage(`NOA: ${kind} of ${folder} started (flow run ${write.flow_run_id ?? "-"})`);
    } catch (err) {
      void vscode.window.showErrorMessage(`NOA: ${(err as Error).message}`);
    }
  };

  context.subscriptions.push(
    vscode.commands.registerCommand("noa.dropFolder", (uri?: vscode.Uri) => start("drop", uri)),
    vscode.commands.registerCommand("noa.runPipeline", (uri?: vscode.Uri) => start("pipeline", uri)),
    vscode.commands.registerCommand("noa.refreshRuns", () => provider.refresh()),
  );
}

export function deactivate(): void {
  /* nothing to release */
}
