/** Directories a PATH may hold, in order; only those that exist inside are kept. */
export const PATH_CANDIDATES = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Host variables that describe the terminal or locale and carry no secrets. */
export function isPassthroughName(name: string): boolean {
  return name === 'LANG' || name === 'TERM' || name === 'TZ' || name === 'COLORTERM' || name === 'LANGUAGE' || name.startsWith('LC_');
}

export interface EnvInput {
  hostEnv: Record<string, string | undefined>;
  /** Inside directories that exist (from the mount plan). */
  pathDirs: string[];
  pass: string[];
  set: Record<string, string>;
  /** Set when the egress proxy serves 127.0.0.1:port inside. */
  proxyPort?: number;
  /** Variables a service contributes (the inference router's base URLs). */
  serviceEnv?: Record<string, string>;
  sandboxName: string;
}

/**
 * The workload's environment: cleared, then the terminal/locale allowlist, the sandbox's own
 * variables, the proxy variables, explicitly passed host variables, and explicit settings last.
 */
export function buildEnv(input: EnvInput): string[] {
  const env = new Map<string, string>();
  for (const [k, v] of Object.entries(input.hostEnv)) if (v !== undefined && isPassthroughName(k)) env.set(k, v);
  env.set('PATH', input.pathDirs.join(':'));
  env.set('HOME', '/sandbox');
  env.set('TMPDIR', '/tmp');
  env.set('USER', 'sandbox');
  env.set('LOGNAME', 'sandbox');
  env.set('CLAWJAIL_SANDBOX', input.sandboxName);
  if (input.proxyPort) {
    const url = `http://127.0.0.1:${input.proxyPort}`;
    for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY']) {
      env.set(k, url);
      env.set(k.toLowerCase(), url);
    }
    // Loopback inside the sandbox's network namespace reaches only the sandbox's own services,
    // so letting it bypass the proxy crosses no boundary; every other destination goes through.
    env.set('NO_PROXY', 'localhost,127.0.0.1,::1');
    env.set('no_proxy', 'localhost,127.0.0.1,::1');
    env.set('NODE_USE_ENV_PROXY', '1');
  }
  for (const [k, v] of Object.entries(input.serviceEnv ?? {})) env.set(k, v);
  for (const name of input.pass) {
    const v = input.hostEnv[name];
    if (v !== undefined) env.set(name, v);
  }
  for (const [k, v] of Object.entries(input.set)) env.set(k, v);
  return [...env].map(([k, v]) => `${k}=${v}`);
}
