/**
 * A small client for the NOA API (`noa server`), free of any VS Code import so that it
 * can be unit-tested with node's built-in test runner against a local HTTP server.
 *
 * Endpoints used: GET /v1/drops, POST /v1/drops, POST /v1/pipelines, GET /v1/runs/{id}.
 * Every call sends `Authorization: Bearer <token>`; the token never appears in errors.
 */

export interface Drop {
  id: string;
  project_id: number | null;
  source: string;
  kind: string;
  sandbox: string | null;
  commit: string | null;
  confidence: number | null;
  status: string;
  created: string;
  finished: string | null;
  has_report?: boolean;
}

export interface DropList {
  items: Drop[];
  total: number;
  limit: number;
  offset: number;
}

export interface WriteOut {
  id: string;
  kind: string;
  subject: string;
  flow_run_id: string | null;
  change_id: string | null;
  steps: Record<string, string>;
  status_url: string | null;
  ui_url: string | null;
}

export interface RunOut {
  flow_run_id: string;
  name: string;
  state: string;
  state_name: string;
  message: string | null;
  final: boolean;
  start_time: string | null;
  end_time: string | null;
  ui_url: string | null;
}

export type Sandbox = "auto" | "A" | "B" | "C";
export type PipelineEnv = "staging" | "production";

export class NoaApiError extends Error {
  constructor(message: string, readonly status: number | null) {
    super(message);
    this.name = "NoaApiError";
  }
}

export interface ClientOptions {
  apiUrl: string;
  token: string;
  timeoutMs?: number;
  fetchImpl?: typeof fetch;
}

export class NoaClient {
  private readonly base: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    const url = (options.apiUrl || "").trim();
    if (!/^https?:\/\//.test(url)) {
      throw new NoaApiError(`noa.apiUrl must start with http:// or https:// (got ${JSON.stringify(url)})`, null);
    }
    this.base = url.replace(/\/+$/, "");
    this.token = options.token || "";
    this.timeoutMs = options.timeoutMs ?? 15000;
    this.fetchImpl = options.fetchImpl ?? fetch;
  }

  /** Drops (code drop runs), newest first. */
  async listDrops(limit = 20): Promise<DropList> {
    return this.request<DropList>("GET", `/v1/drops?limit=${encodeURIComponent(String(limit))}`);
  }

  /** Start a code drop of `source` (a directory on the NOA host, a git URL, an archive). */
  async drop(source: string, sandbox: Sandbox = "auto"): Promise<WriteOut> {
    return this.request<WriteOut>("POST", "/v1/drops", { source, sandbox });
  }

  /** Start the main job (`noa_pipeline`) for `source`. */
  async runPipeline(source: string, env: PipelineEnv = "staging"): Promise<WriteOut> {
    return this.request<WriteOut>("POST", "/v1/pipelines", { source, env });
  }

  /** A flow run's state. */
  async run(flowRunId: string): Promise<RunOut> {
    return this.request<RunOut>("GET", `/v1/runs/${encodeURIComponent(flowRunId)}`);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.token) {
      throw new NoaApiError("no NOA API token: set noa.token (noa server token create NAME --scope write)", null);
    }
    const headers: Record<string, string> = {
      Accept: "application/json",
      Authorization: `Bearer ${this.token}`,
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let response: Response;
    try {
      response = await this.fetchImpl(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (err) {
      const why = controller.signal.aborted ? `timed out after ${this.timeoutMs} ms` : describe(err);
      throw new NoaApiError(`NOA API at ${this.base} unreachable: ${why}`, null);
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text();
    if (!response.ok) {
      throw new NoaApiError(`${method} ${path.split("?")[0]}: ${response.status} ${detail(text)}`.trim(), response.status);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new NoaApiError(`${method} ${path.split("?")[0]}: answer is not JSON`, response.status);
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? err.message;
  }
  return String(err);
}

/** FastAPI errors are `{"detail": "..."}` or `{"detail": [{"msg": ...}]}`. */
export function detail(text: string): string {
  try {
    const doc = JSON.parse(text) as { detail?: unknown };
    if (typeof doc.detail === "string") return doc.detail;
    if (Array.isArray(doc.detail)) {
      return doc.detail.map((d) => (d && typeof d === "object" && "msg" in d ? String((d as { msg: unknown }).msg) : String(d))).join("; ");
    }
  } catch {
    /* not JSON */
  }
  return text.slice(0, 200);
}
