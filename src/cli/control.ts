import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { socketPeerUid } from '../native.js';
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PublishInput } from '../dispatcher/event-log.js';

/**
 * The running controller's control socket (`<state>/control.sock`): one JSON
 * request per connection, one JSON answer. `orderly-dispatch fire` goes through it so a
 * manual run happens inside the controller that owns the state (the state
 * directory's lock admits one process).
 */
export function controlPath(state: string): string {
  return join(state, 'control.sock');
}

export type ControlRequest = { cmd: 'fire'; scopedName: string } | { cmd: 'status' } | { cmd: 'feed' } | { cmd: 'publish'; event: PublishInput };

export function serveControl(state: string, handle: (req: ControlRequest) => Promise<unknown>): Server {
  const path = controlPath(state);
  // A socket file left by a controller that was killed: the state lock
  // (held by us now) proves nobody listens on it.
  rmSync(path, { force: true });
  const server = createServer((conn) => {
    const refused = foreignPeer(conn);
    if (refused) {
      conn.end(JSON.stringify({ error: refused }) + '\n');
      return;
    }
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch {
        conn.end(JSON.stringify({ error: 'bad request' }) + '\n');
        return;
      }
      handle(req).then(
        (res) => conn.end(JSON.stringify(res) + '\n'),
        (err: unknown) => conn.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }) + '\n'),
      );
    });
    conn.on('error', () => undefined);
  });
  // The socket file is the owner's alone too; peers of another uid are refused on connect as well.
  server.once('listening', () => {
    try {
      chmodSync(path, 0o600);
    } catch {
      // Gone already (a stop right after start).
    }
  });
  server.listen(path);
  server.unref();
  return server;
}

/**
 * Why a peer may not use this socket, or undefined: only processes of the
 * controller's own user may fire its orders or read its state.
 */
function foreignPeer(conn: Socket): string | undefined {
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const own = process.getuid?.();
  if (own === undefined) return undefined;
  try {
    if (fd === undefined || fd < 0) return 'refused: the peer of this connection cannot be identified';
    const uid = socketPeerUid(fd);
    return uid === own ? undefined : `refused: uid ${uid} is not the controller's uid ${own}`;
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
}

/** Sends a request to a running controller; undefined when none listens. */
export function askControl(state: string, req: ControlRequest, timeoutMs = 600_000): Promise<unknown | undefined> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(controlPath(state));
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`the controller did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (c) => (buf += c));
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf));
      } catch {
        reject(new Error(`unreadable answer from the controller: ${buf.slice(0, 200)}`));
      }
    });
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(undefined);
      else reject(err);
    });
  });
}
