/**
 * Addresses and ports that several layers must agree on. This folder is the bottom of the import
 * graph: it imports nothing of clawjail's, so the profile schema, the planner and the services can
 * all use it without importing each other.
 */

/** The host loopback address an allow rule names to reach a service on the host (forwarded into the sandbox). */
export const LOOPBACK_HOST = '127.0.0.1';
