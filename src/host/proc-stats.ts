import { readdirSync, readFileSync } from 'node:fs';

/** One line of /proc/PID/stat, the fields a resource summary needs. */
export interface ProcStat {
  pid: number;
  ppid: number;
  /** user + system CPU time, in clock ticks. */
  cpuTicks: number;
  /** Resident pages (the page size varies by architecture; residentBytes() gives bytes). */
  rssPages: number;
}

/**
 * Parses /proc/PID/stat. The command name (field 2) is in parentheses and may itself contain
 * spaces and parentheses, so fields are counted from the last ')'.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After ')' : state(3) ppid(4) ... utime(14) stime(15) ... rss(24)
  const rest = text.slice(close + 2).split(' ');
  const field = (n: number) => Number(rest[n - 3]);
  const stat = { pid, ppid: field(4), cpuTicks: field(14) + field(15), rssPages: field(24) };
  return Object.values(stat).every(Number.isFinite) ? stat : undefined;
}

/** The processes descending from `root` (itself included), from one pass over a process table. */
export function descendants(root: number, table: ProcStat[]): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const p of table) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  const self = table.find((p) => p.pid === root);
  if (!self) return [];
  const out: ProcStat[] = [];
  const queue = [self];
  while (queue.length) {
    const p = queue.pop()!;
    out.push(p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

/** VmRSS of one process in bytes (0 for a kernel thread or a process that is gone). */
export function residentBytes(pid: number, procDir = '/proc'): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`${procDir}/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** /proc reports CPU times in USER_HZ, which Linux fixes at 100 for every architecture. */
export const USER_HZ = 100;

/** Every process visible in /proc now (ones that exit while it is read are skipped). */
export function readProcessTable(procDir = '/proc'): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const s = parseProcStat(readFileSync(`${procDir}/${entry}/stat`, 'utf8'));
      if (s) out.push(s);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
