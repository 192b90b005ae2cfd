import type { Logger } from 'pino';
import { createAuditSink, type AuditEvent, type AuditSink } from '../log.js';
import type { LaunchPlan } from '../plan/plan.js';
import type { Sandbox } from '../sandbox.js';

/**
 * The sandbox's audit sink (the log, and the plan's audit file). Events emitted before the Sandbox
 * handle exists wait; attach() hands them to it in order, and later events go straight to it.
 */
export function openAudit(plan: LaunchPlan, log: Logger): { sink: AuditSink; attach(sandbox: Sandbox): void } {
  const early: AuditEvent[] = [];
  let sandbox: Sandbox | undefined;
  const sink = createAuditSink({
    log,
    ...(plan.egress.auditLog ? { file: plan.egress.auditLog } : {}),
    listener: (e) => (sandbox ? sandbox.emitAudit(e) : early.push(e)),
  });
  return {
    sink,
    attach: (sb) => {
      sandbox = sb;
      sb.replayAudit(early.splice(0));
    },
  };
}
