// A real `orderly-dispatch run --http` as a child process, and a client that
// checks every answer against the served OpenAPI document.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { OPENAPI } from '../../src/http/openapi.js';
import { cli } from '../gascity/fixtures.js';

export interface Controller {
  url: string;
  child: ChildProcess;
  /** Every JSON line the controller printed so far. */
  events: Array<Record<string, unknown>>;
  stop(): Promise<number | null>;
}

export async function startController(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Controller> {
  const child = spawn(process.execPath, [cli, 'run', ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no http line in 20 s; stderr: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as Record<string, unknown>;
      events.push(e);
      if (e.type === 'http') {
        clearTimeout(timer);
        resolve(e.url as string);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before serving: ${stderr}`)));
  });
  return {
    url,
    child,
    events,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ $id: 'api', ...OPENAPI });

const pointer = (...parts: string[]): string => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

/** Every `METHOD route` of the document a test called: the document is checked whole, not a sample. */
export const covered = new Set<string>();

/** The schema the document gives for this route's answer, or an error naming what is missing. */
export function validate(route: string, method: string, status: number, contentType: string | null, body: unknown): void {
  const op = (OPENAPI.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>)[route]?.[method];
  if (!op) throw new Error(`the OpenAPI document has no ${method.toUpperCase()} ${route}`);
  covered.add(`${method.toUpperCase()} ${route}`);
  if (!op.responses[String(status)]) throw new Error(`the OpenAPI document has no ${status} answer for ${method.toUpperCase()} ${route}`);
  if (!contentType?.startsWith('application/json')) throw new Error(`${method.toUpperCase()} ${route} answered ${contentType}, not JSON`);
  const check = ajv.getSchema(`api#/${pointer('paths', route, method, 'responses', String(status), 'content', 'application/json', 'schema')}`)!;
  if (!check(body)) throw new Error(`${method.toUpperCase()} ${route} ${status} does not match the OpenAPI document: ${ajv.errorsText(check.errors)}\n${JSON.stringify(body).slice(0, 600)}`);
}

export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

/** A request whose answer is checked against the OpenAPI document's route `route`. */
export async function call(base: string, method: string, path: string, route: string, init: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(method === 'POST' ? { 'x-gc-request': 'true', 'content-type': 'application/json' } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  const body = text ? JSON.parse(text) : undefined;
  validate(route, method.toLowerCase(), res.status, res.headers.get('content-type'), body);
  return { status: res.status, body, headers: res.headers };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
