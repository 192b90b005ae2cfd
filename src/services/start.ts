import net from 'node:net';
import type { Logger } from 'pino';
import type { AuditSink } from '../log.js';
import type { LaunchPlan } from '../plan/plan.js';
import type { ControlServer } from './control/index.js';
import type { ApprovalBroker, ApprovalBrokerOptions, EgressProxy, Resolver } from './egress/index.js';
import type { InferenceRouter } from './inference/index.js';
import type { LoopbackForwarder } from './egress/loopback.js';

export interface ServiceOptions {
  /** Asked for each destination no rule allows, when approvals are on. */
  onApproval?: ApprovalBrokerOptions['onApproval'];
  /** Name resolution for the egress proxy (default: the host's getaddrinfo). */
  resolve?: Resolver;
  /** Where route credentials ({env: NAME}) are read from (default process.env). */
  credentialEnv?: NodeJS.ProcessEnv;
}

export interface RunningServices {
  /** Serves the listening sockets init handed over, by service name. */
  serve(names: string[], fds: number[]): Promise<void>;
  close(): Promise<void>;
  proxy?: EgressProxy;
  router?: InferenceRouter;
  broker?: ApprovalBroker;
  control?: ControlServer;
}

/**
 * Step 4, in two halves. The services read the plan only (its `egress` and `inference` sections,
 * and `services` for which of them run), never the profile, so `--dry-run` shows all they enforce;
 * they never change the plan. `prepareServices` runs before the sandbox exists and does everything that
 * can refuse a launch: route credentials are resolved (a missing key stops it before anything
 * runs) and the approvals control socket is bound (a name already in use stops it). The returned
 * services then load their code and create their servers while the sandbox is being built: init's
 * sockets are already listening, so a connection made at once waits in the backlog until
 * `serve()` attaches; `launch()` resolves only after it has.
 */
export async function prepareServices(plan: LaunchPlan, options: ServiceOptions & { audit: AuditSink; logger: Logger }): Promise<RunningServices> {
  const { egress, inference } = plan;
  const { audit, logger } = options;
  let credentials: Map<string, string> | undefined;
  let broker: ApprovalBroker | undefined;
  let control: ControlServer | undefined;

  if (plan.services.inference) {
    const { resolveCredentials } = await import('./inference/credentials.js');
    credentials = resolveCredentials(inference, options.credentialEnv ?? process.env);
  }
  if (plan.services.egress && egress.approvals.enabled) {
    const { createApprovalBroker } = await import('./egress/approvals.js');
    const { createProfileRulePersister } = await import('./egress/persist.js');
    const { createControlServer } = await import('./control/server.js');
    broker = createApprovalBroker({
      timeoutMs: egress.approvals.timeoutMs,
      ...(options.onApproval ? { onApproval: options.onApproval } : {}),
      ...(egress.persistTo ? { persist: createProfileRulePersister(egress.persistTo) } : {}),
      onError: (err) => logger.warn({ err }, 'approval handling failed'),
    });
    control = createControlServer({ sandbox: plan.name, broker, audit, logger });
    await control.listen();
  }

  const services: RunningServices = {
    ...(broker ? { broker } : {}),
    ...(control ? { control } : {}),
    serve: async () => {},
    close: async () => {},
  };
  // The inference router is needed as soon as the sandbox is up (clients are told its address);
  // its code loads while the sandbox is being built.
  const created = (async () => {
    if (credentials) {
      const { createInferenceRouter } = await import('./inference/router.js');
      services.router = createInferenceRouter({ sandbox: plan.name, config: inference, credentials, audit, logger });
    }
  })();
  // Nobody may be waiting yet; the failure is reported by serve().
  created.catch(() => {});

  // The egress proxy is created on the first connection to it: a sandbox whose workload never
  // uses the network never loads the HTTP machinery. Until then a plain listener accepts, paused,
  // so nothing is read before the proxy takes the socket.
  let proxyP: Promise<EgressProxy> | undefined;
  const proxy = (): Promise<EgressProxy> =>
    (proxyP ??= (async () => {
      await created;
      const { createEgressProxy } = await import('./egress/proxy.js');
      services.proxy = createEgressProxy({
        sandbox: plan.name,
        policy: egress,
        limits: egress.limits,
        audit,
        logger,
        ...(broker ? { approvals: broker } : {}),
        ...(options.resolve ? { resolve: options.resolve } : {}),
        ...(services.router ? { localHandlers: { 'inference.local': services.router.handler } } : {}),
      });
      return services.proxy;
    })());
  let front: net.Server | undefined;
  const serveEgress = (fd: number): Promise<void> =>
    new Promise((resolve, reject) => {
      // Half-open, as an HTTP server's sockets are: a tunnel's client may end its side first.
      front = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
        proxy().then(
          (p) => p.accept(socket),
          (err: unknown) => {
            logger.error({ err }, 'egress proxy could not start');
            socket.destroy();
          },
        );
      });
      front.once('error', reject);
      front.listen({ fd }, () => resolve());
    });

  // Host-loopback forwards: small, loaded only by sandboxes whose rules name 127.0.0.1.
  let loopback: LoopbackForwarder | undefined;
  const serveLoopback = async (fd: number, port: number): Promise<void> => {
    if (!loopback) {
      const { createLoopbackForwarder } = await import('./egress/loopback.js');
      loopback ??= createLoopbackForwarder({ sandbox: plan.name, policy: egress, audit, logger });
    }
    return loopback.serve(fd, port);
  };

  services.serve = async (names, fds) => {
    await created;
    const jobs = names.map((name, i) => {
      const fd = fds[i]!;
      if (name === 'egress' && plan.services.egress) return serveEgress(fd);
      if (name.startsWith('loopback:') && plan.services.loopback) return serveLoopback(fd, Number(name.slice('loopback:'.length)));
      if ((name === 'inference' || name === 'inference.sock') && services.router) return services.router.listen({ fd }).then(() => undefined);
      return Promise.reject(new Error(`no service for socket '${name}'`));
    });
    await Promise.all(jobs);
  };
  services.close = async () => {
    await created.catch(() => {});
    await proxyP?.catch(() => {});
    const frontClosed = front ? new Promise<void>((r) => front!.close(() => r())) : undefined;
    await Promise.allSettled([frontClosed, services.proxy?.close(), services.router?.close(), control?.close(), Promise.resolve(broker?.close()), loopback?.close()]);
  };
  return services;
}
