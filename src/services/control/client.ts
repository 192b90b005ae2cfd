import http from 'node:http';
import { ClawjailError } from '../../errors.js';
import type { ApprovalVerdict, DecideResult, PendingApproval } from '../egress/approvals.js';

/** Talks to one sandbox's control socket (see server.ts for the protocol). */
export interface ControlClient {
  readonly path: string;
  info(): Promise<{ name: string; pid: number }>;
  listApprovals(): Promise<{ sandbox: string; pending: PendingApproval[] }>;
  decide(id: string, verdict: ApprovalVerdict): Promise<DecideResult>;
}

export function createControlClient(socketPath: string, timeoutMs = 10_000): ControlClient {
  function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        {
          socketPath,
          method,
          path,
          timeout: timeoutMs,
          headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(new ClawjailError('ERR_CLAWJAIL_SERVICE', `control socket ${socketPath} sent a response that is not JSON`, { path: socketPath }));
              return;
            }
            if (res.statusCode === 200) return resolve(parsed as T);
            const message = (parsed as { message?: string }).message ?? `HTTP ${res.statusCode}`;
            const code = res.statusCode === 404 ? 'ERR_CLAWJAIL_NOT_FOUND' : 'ERR_CLAWJAIL_SERVICE';
            reject(new ClawjailError(code, message, { path: socketPath }));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(
            new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no sandbox is listening on ${socketPath} (${err.code})`, {
              path: socketPath,
              hint: 'the sandbox may have exited; `clawjail approvals` without --name lists the running ones',
            }),
          );
          return;
        }
        reject(new ClawjailError('ERR_CLAWJAIL_SERVICE', `control socket ${socketPath}: ${err.message}`, { path: socketPath, cause: err }));
      });
      req.end(payload);
    });
  }

  return {
    path: socketPath,
    info: () => call('GET', '/v1/sandbox'),
    listApprovals: () => call('GET', '/v1/approvals'),
    decide: (id, verdict) => {
      if (!/^[0-9a-f]{1,32}$/.test(id)) {
        return Promise.reject(new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `no pending approval with id ${JSON.stringify(id)}`, { hint: 'ids are the hex strings `clawjail approvals` shows' }));
      }
      return call('POST', `/v1/approvals/${id}`, { verdict });
    },
  };
}
