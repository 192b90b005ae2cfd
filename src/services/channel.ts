import { EventEmitter } from 'node:events';
import net from 'node:net';
import { errnoName } from '../errno.js';
import { addon, type NativeChannel } from '../native.js';

/** The step of a record from clawjail-init that is not one of its records. */
export const MALFORMED_RECORD_STEP = 'channel.record';
const EPROTO = 71;

/** A setup failure as reported by clawjail-init: a stable step id, errno and path. */
export interface SetupFailure {
  step: string;
  errno: number;
  path: string;
  detail: string;
}

type Message =
  | { t: 'services'; names: string[] }
  | { t: 'ready'; pid: number }
  | ({ t: 'error' } & SetupFailure)
  | { t: 'connected'; id: number; errno: number };

/**
 * The supervisor's end of the channel to clawjail-init. Events: `services` (names, fds),
 * `ready` (pid inside), `failure` (SetupFailure), `close`.
 */
export class InitChannel extends EventEmitter {
  private readonly native: NativeChannel;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (s: net.Socket) => void; reject: (e: Error) => void }>();
  private closed = false;

  constructor(fd: number) {
    super();
    this.native = new (addon().Channel)(fd, (data, fds) => this.onMessage(data, fds));
  }

  private onMessage(data: Buffer | null, fds: number[]): void {
    if (data === null) {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(Object.assign(new Error('the sandbox has exited'), { code: 'ESRCH' }));
      this.pending.clear();
      this.emit('close');
      return;
    }
    let msg: Message;
    try {
      msg = JSON.parse(data.toString('utf8')) as Message;
    } catch {
      for (const fd of fds) addon().closeFd(fd);
      // clawjail-init speaks only JSON records: anything else means it is not the helper we built.
      this.emit('failure', { step: MALFORMED_RECORD_STEP, errno: EPROTO, path: '', detail: `malformed record from clawjail-init: ${JSON.stringify(data.subarray(0, 80).toString('latin1'))}` } satisfies SetupFailure);
      return;
    }
    switch (msg.t) {
      case 'services':
        this.emit('services', msg.names, fds);
        break;
      case 'ready':
        this.emit('ready', msg.pid);
        break;
      case 'error':
        this.emit('failure', { step: msg.step, errno: msg.errno, path: msg.path, detail: msg.detail } satisfies SetupFailure);
        break;
      case 'connected': {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (!p) {
          for (const fd of fds) addon().closeFd(fd);
          break;
        }
        if (msg.errno || fds.length !== 1) {
          const code = msg.errno ? errnoName(msg.errno) : 'EPROTO';
          p.reject(Object.assign(new Error(`connect inside the sandbox failed: ${code}`), { code, errno: msg.errno }));
          break;
        }
        p.resolve(new net.Socket({ fd: fds[0]!, readable: true, writable: true }));
        break;
      }
      default:
        for (const fd of fds) addon().closeFd(fd);
        this.emit('failure', { step: MALFORMED_RECORD_STEP, errno: EPROTO, path: '', detail: `unknown record from clawjail-init: ${JSON.stringify(String((msg as { t?: unknown }).t))}` } satisfies SetupFailure);
    }
  }

  /** A TCP connection to 127.0.0.1:port inside the sandbox's network namespace. */
  connect(port: number): Promise<net.Socket> {
    if (this.closed) return Promise.reject(Object.assign(new Error('the sandbox has exited'), { code: 'ESRCH' }));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.native.send(Buffer.from(JSON.stringify({ t: 'connect', id, port })));
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
