import type { Logger } from 'pino';
import type { AuditSink } from '../log.js';
import type { LaunchPlan } from '../plan/plan.js';
import type { LoadedProfile } from '../profile/load.js';
import type { ControlServer } from './control/index.js';
import type { ApprovalBroker, ApprovalBrokerOptions, EgressProxy, Resolver } from './egress/index.js';
import type { InferenceRouter } from './inference/index.js';

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
 * Step 4: the sandbox's services, created from the plan before the sandbox exists. Credentials
 * are resolved here, so a missing key stops the launch before anything runs. Each service's code
 * is loaded only when the plan has that service.
 */
export async function startServices(
  plan: LaunchPlan,
  loaded: LoadedProfile,
  options: ServiceOptions & { audit: AuditSink; logger: Logger },
): Promise<RunningServices> {
  const { profile } = loaded;
  const { audit, logger } = options;
  let router: InferenceRouter | undefined;
  let proxy: EgressProxy | undefined;
  let broker: ApprovalBroker | undefined;
  let control: ControlServer | undefined;

  if (plan.services.inference) {
    const { createInferenceRouter } = await import('./inference/router.js');
    const { resolveCredentials } = await import('./inference/credentials.js');
    const credentials = resolveCredentials(profile.inference, options.credentialEnv ?? process.env);
    router = createInferenceRouter({ sandbox: plan.name, config: profile.inference, credentials, audit, logger });
  }
  if (plan.services.egress) {
    if (profile.network.approvals.enabled) {
      const { createApprovalBroker } = await import('./egress/approvals.js');
      const { createProfileRulePersister } = await import('./egress/persist.js');
      const { createControlServer } = await import('./control/server.js');
      broker = createApprovalBroker({
        timeoutMs: profile.network.approvals.timeoutMs,
        ...(options.onApproval ? { onApproval: options.onApproval } : {}),
        ...(loaded.file ? { persist: createProfileRulePersister(loaded.file) } : {}),
        onError: (err) => logger.warn({ err }, 'approval handling failed'),
      });
      control = createControlServer({ sandbox: plan.name, broker, audit, logger });
      await control.listen();
    }
    const { createEgressProxy } = await import('./egress/proxy.js');
    proxy = createEgressProxy({
      sandbox: plan.name,
      policy: profile.network,
      audit,
      logger,
      ...(broker ? { approvals: broker } : {}),
      ...(options.resolve ? { resolve: options.resolve } : {}),
      ...(router ? { localHandlers: { 'inference.local': router.handler } } : {}),
    });
  }

  return {
    ...(proxy ? { proxy } : {}),
    ...(router ? { router } : {}),
    ...(broker ? { broker } : {}),
    ...(control ? { control } : {}),
    async serve(names, fds) {
      const jobs = names.map((name, i) => {
        const fd = fds[i]!;
        if (name === 'egress' && proxy) return proxy.listen({ fd });
        if ((name === 'inference' || name === 'inference.sock') && router) return router.listen({ fd }).then(() => undefined);
        return Promise.reject(new Error(`no service for socket '${name}'`));
      });
      await Promise.all(jobs);
    },
    async close() {
      await Promise.allSettled([proxy?.close(), router?.close(), control?.close()]);
    },
  };
}
