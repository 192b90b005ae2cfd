/**
 * Addresses and ports that several layers must agree on. This folder is the bottom of the import
 * graph: it imports nothing of clawjail's, so the profile schema, the planner and the services can
 * all use it without importing each other.
 */

/** The host loopback address an allow rule names to reach a service on the host (forwarded into the sandbox). */
export const LOOPBACK_HOST = '127.0.0.1';

/** Ports on which a client is expected to start with TLS; `methods`/`paths` rules may not name them. */
export const TLS_PORTS: ReadonlySet<number> = new Set([443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 6697, 8443]);

/** Where the egress proxy listens inside the sandbox's network namespace. */
export const EGRESS_PORT = 3128;

/** Where the inference router listens inside the sandbox's network namespace, and its socket. */
export const INFERENCE_PORT = 3129;
export const INFERENCE_SOCKET_PATH = '/run/clawjail/inference.sock';
