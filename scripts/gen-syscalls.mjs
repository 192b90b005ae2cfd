#!/usr/bin/env node
// Generates the seccomp compiler's syscall tables and kernel constants from the uapi headers
// installed on this machine (Debian: linux-libc-dev), so no number is ever typed by hand.
//
//   node scripts/gen-syscalls.mjs [--include DIR] [--check]
//
// The C preprocessor does the reading: `cc -E -dM` evaluates the headers' #if/#ifdef blocks
// exactly as a compiler would, and a tiny C program prints the constants whose values are
// expressions (AUDIT_ARCH_*, offsetof(struct seccomp_data, …)). --check regenerates in memory
// and exits 1 if the committed files differ (for CI).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(repo, 'src/policy/seccomp/tables');

const args = process.argv.slice(2);
const check = args.includes('--check');
const includeIdx = args.indexOf('--include');
const includeDir = includeIdx >= 0 ? args[includeIdx + 1] : '/usr/include';
const cc = process.env.CC ?? 'cc';

const X86_64_HEADER = join(includeDir, 'x86_64-linux-gnu/asm/unistd_64.h');
const GENERIC_HEADER = join(includeDir, 'asm-generic/unistd.h');

// arm64's uapi <asm/unistd.h> is these defines followed by #include <asm-generic/unistd.h>.
// When Debian's linux-libc-dev-arm64-cross is installed we read the list from it; otherwise we
// use this copy (checked against linux-libc-dev-arm64-cross 6.1.4). __BITS_PER_LONG is 64 on
// both hosts we generate on, which selects the 64-bit names (__NR3264_fcntl → fcntl, not fcntl64).
const ARM64_CROSS_HEADER = '/usr/aarch64-linux-gnu/include/asm/unistd.h';
const ARM64_WANTS_FALLBACK = [
  '__ARCH_WANT_RENAMEAT',
  '__ARCH_WANT_NEW_STAT',
  '__ARCH_WANT_SET_GET_RLIMIT',
  '__ARCH_WANT_TIME32_SYSCALLS',
  '__ARCH_WANT_SYS_CLONE3',
  '__ARCH_WANT_MEMFD_SECRET',
];

function arm64Wants() {
  if (!existsSync(ARM64_CROSS_HEADER)) return { wants: ARM64_WANTS_FALLBACK, from: 'the list in scripts/gen-syscalls.mjs' };
  const text = readFileSync(ARM64_CROSS_HEADER, 'utf8');
  const wants = [...text.matchAll(/^#define\s+(__ARCH_WANT_\w+)/gm)].map((m) => m[1]);
  return { wants, from: ARM64_CROSS_HEADER };
}

/** `#define NAME VALUE` lines that the preprocessor leaves defined after reading `source`. */
function macros(source) {
  const out = execFileSync(cc, ['-E', '-dM', '-nostdinc', '-isystem', includeDir, '-isystem', join(includeDir, 'x86_64-linux-gnu'), '-x', 'c', '-'], {
    input: source,
    encoding: 'utf8',
  });
  const map = new Map();
  for (const m of out.matchAll(/^#define (\w+) (.*)$/gm)) map.set(m[1], m[2].trim());
  return map;
}

/** Resolves a macro body such as `25`, `__NR3264_fcntl` or `(__NR_foo + 1)` to a number. */
function evaluate(map, body, seen = new Set()) {
  const expr = body.replace(/^\((.*)\)$/, '$1').trim();
  const sum = expr.split('+').map((t) => t.trim());
  let total = 0;
  for (const term of sum) {
    if (/^(0x[0-9a-f]+|\d+)[uUlL]*$/i.test(term)) total += Number(term.replace(/[uUlL]+$/, ''));
    else if (map.has(term) && !seen.has(term)) total += evaluate(map, map.get(term), new Set([...seen, term]));
    else return undefined;
  }
  return total;
}

function syscallTable(map) {
  const table = [];
  for (const [name, body] of map) {
    if (!name.startsWith('__NR_') || name === '__NR_syscalls' || name === '__NR_arch_specific_syscall') continue;
    const nr = evaluate(map, body);
    if (nr === undefined) throw new Error(`cannot evaluate ${name} = ${body}`);
    table.push([name.slice('__NR_'.length), nr]);
  }
  table.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  const numbers = new Set(table.map(([, nr]) => nr));
  if (numbers.size !== table.length) throw new Error('two syscall names share a number; the header reading is wrong');
  return table;
}

function headerVersion() {
  const v = macros('#include <linux/version.h>\n');
  return `${v.get('LINUX_VERSION_MAJOR')}.${v.get('LINUX_VERSION_PATCHLEVEL')}.${v.get('LINUX_VERSION_SUBLEVEL')}`;
}

// Constants whose values are expressions or struct layouts: let the compiler compute them.
const CONSTANT_GROUPS = {
  auditArch: ['AUDIT_ARCH_X86_64', 'AUDIT_ARCH_I386', 'AUDIT_ARCH_AARCH64'],
  seccompRet: [
    'SECCOMP_RET_KILL_PROCESS', 'SECCOMP_RET_KILL_THREAD', 'SECCOMP_RET_TRAP', 'SECCOMP_RET_ERRNO',
    'SECCOMP_RET_LOG', 'SECCOMP_RET_ALLOW', 'SECCOMP_RET_DATA',
  ],
  seccompMisc: ['SECCOMP_SET_MODE_FILTER', 'SECCOMP_FILTER_FLAG_TSYNC', 'BPF_MAXINSNS', 'X32_SYSCALL_BIT'],
  bpf: [
    'BPF_LD', 'BPF_LDX', 'BPF_ST', 'BPF_STX', 'BPF_ALU', 'BPF_JMP', 'BPF_RET', 'BPF_MISC',
    'BPF_W', 'BPF_H', 'BPF_B', 'BPF_IMM', 'BPF_ABS', 'BPF_IND', 'BPF_MEM', 'BPF_LEN', 'BPF_MSH',
    'BPF_ADD', 'BPF_SUB', 'BPF_MUL', 'BPF_DIV', 'BPF_OR', 'BPF_AND', 'BPF_LSH', 'BPF_RSH', 'BPF_NEG', 'BPF_MOD', 'BPF_XOR',
    'BPF_JA', 'BPF_JEQ', 'BPF_JGT', 'BPF_JGE', 'BPF_JSET', 'BPF_K', 'BPF_X', 'BPF_A', 'BPF_TAX', 'BPF_TXA', 'BPF_MEMWORDS',
  ],
  seccompData: ['SECCOMP_DATA_NR', 'SECCOMP_DATA_ARCH', 'SECCOMP_DATA_IP', 'SECCOMP_DATA_ARGS', 'SECCOMP_DATA_SIZE'],
  addressFamily: [
    'AF_UNIX', 'AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_PACKET', 'AF_VSOCK', 'AF_BLUETOOTH', 'AF_ALG',
    'AF_KEY', 'AF_APPLETALK', 'AF_X25', 'AF_CAN', 'AF_TIPC', 'AF_RDS', 'AF_XDP', 'AF_MAX',
  ],
  netlink: ['NETLINK_ROUTE', 'NETLINK_AUDIT', 'NETLINK_KOBJECT_UEVENT', 'NETLINK_NETFILTER', 'NETLINK_SOCK_DIAG'],
  clone: [
    'CLONE_NEWNS', 'CLONE_NEWCGROUP', 'CLONE_NEWUTS', 'CLONE_NEWIPC', 'CLONE_NEWUSER', 'CLONE_NEWPID',
    'CLONE_NEWNET', 'CLONE_NEWTIME', 'CLONE_FILES', 'CLONE_FS', 'CLONE_VM', 'CLONE_THREAD', 'CLONE_SIGHAND',
  ],
  ioctl: ['TIOCSTI', 'TIOCLINUX', 'TIOCSCTTY', 'TCGETS', 'FIONREAD'],
  personality: ['PER_LINUX', 'PER_LINUX32', 'ADDR_NO_RANDOMIZE', 'READ_IMPLIES_EXEC'],
};

function constants() {
  const names = Object.values(CONSTANT_GROUPS).flat();
  const program = `
#include <stddef.h>
#include <stdio.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <linux/bpf_common.h>
#include <linux/socket.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/personality.h>
#include <asm-generic/ioctls.h>
#include <sys/socket.h>
#define X32_SYSCALL_BIT 0x40000000
#define SECCOMP_DATA_NR offsetof(struct seccomp_data, nr)
#define SECCOMP_DATA_ARCH offsetof(struct seccomp_data, arch)
#define SECCOMP_DATA_IP offsetof(struct seccomp_data, instruction_pointer)
#define SECCOMP_DATA_ARGS offsetof(struct seccomp_data, args)
#define SECCOMP_DATA_SIZE sizeof(struct seccomp_data)
int main(void) {
${names.map((n) => `  printf("%s %llu\\n", "${n}", (unsigned long long)(${n}));`).join('\n')}
  return 0;
}
`;
  const dir = mkdtempSync(join(tmpdir(), 'gen-syscalls-'));
  try {
    writeFileSync(join(dir, 'c.c'), program);
    execFileSync(cc, ['-o', join(dir, 'c'), join(dir, 'c.c')]);
    const out = execFileSync(join(dir, 'c'), { encoding: 'utf8' });
    return new Map(out.trim().split('\n').map((l) => { const [n, v] = l.split(' '); return [n, Number(v)]; }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Errno names from asm-generic (x86_64 and arm64 both use the generic numbers). */
function errnos() {
  const map = macros('#include <asm-generic/errno.h>\n');
  const table = [];
  for (const [name, body] of map) {
    if (!/^E[A-Z0-9]+$/.test(name)) continue;
    const n = evaluate(map, body);
    if (n !== undefined) table.push([name, n]);
  }
  table.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  return table;
}

const hex = (n) => `0x${n.toString(16)}`;

function banner(from, version) {
  return `// GENERATED by scripts/gen-syscalls.mjs (npm run gen:syscalls) from ${from}
// (uapi headers of Linux ${version}). Do not edit by hand; rerun the script instead.
`;
}

function tableModule(constName, arch, table, from, version) {
  const lines = table.map(([name, nr]) => `  ${/^[a-z_]\w*$/.test(name) ? name : JSON.stringify(name)}: ${nr},`);
  return `${banner(from, version)}
/** ${arch} system call numbers by name, ascending by number. */
export const ${constName}: Readonly<Record<string, number>> = Object.freeze({
${lines.join('\n')}
});

/** Linux uapi header version the table was generated from; newer syscalls are unknown to it. */
export const ${constName}_HEADER_VERSION = '${version}';
`;
}

function constantsModule(values, errnoTable, version) {
  const group = (name, keys, fmt) => `export const ${name} = {\n${keys.map((k) => {
    const v = values.get(k);
    if (v === undefined || Number.isNaN(v)) throw new Error(`constant ${k} missing`);
    return `  ${k}: ${fmt(v)},`;
  }).join('\n')}\n} as const;\n`;
  return `${banner('linux/audit.h, linux/seccomp.h, linux/filter.h, linux/bpf_common.h, linux/socket.h, linux/netlink.h,\n// linux/sched.h, linux/personality.h, asm-generic/ioctls.h and asm-generic/errno.h', version)}
${group('AUDIT_ARCH', CONSTANT_GROUPS.auditArch, hex)}
${group('SECCOMP_RET', CONSTANT_GROUPS.seccompRet, hex)}
${group('SECCOMP_MISC', CONSTANT_GROUPS.seccompMisc, hex)}
${group('BPF', CONSTANT_GROUPS.bpf, hex)}
/** Byte offsets in struct seccomp_data. */
${group('SECCOMP_DATA', CONSTANT_GROUPS.seccompData, String)}
${group('ADDRESS_FAMILY', CONSTANT_GROUPS.addressFamily, String)}
${group('NETLINK', CONSTANT_GROUPS.netlink, String)}
${group('CLONE', CONSTANT_GROUPS.clone, hex)}
/** ioctl request numbers; x86_64 and arm64 both use the asm-generic terminal ioctls. */
${group('IOCTL', CONSTANT_GROUPS.ioctl, hex)}
${group('PERSONALITY', CONSTANT_GROUPS.personality, hex)}
/** errno numbers by name (asm-generic; the same on x86_64 and arm64). */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze({
${errnoTable.map(([n, v]) => `  ${n}: ${v},`).join('\n')}
});
`;
}

const version = headerVersion();
const x86 = syscallTable(macros(`#include "${X86_64_HEADER}"\n`));
const { wants, from: wantsFrom } = arm64Wants();
if (!check) console.log(`aarch64: __ARCH_WANT_* from ${wantsFrom}`);
const arm = syscallTable(macros(`${wants.map((w) => `#define ${w}`).join('\n')}\n#include "${GENERIC_HEADER}"\n`));

const files = {
  'x86_64.ts': tableModule('X86_64_SYSCALLS', 'x86_64', x86, X86_64_HEADER, version),
  // The banner names the defines, not where they were read, so --check gives the same answer
  // with or without the arm64 cross headers installed.
  'aarch64.ts': tableModule('AARCH64_SYSCALLS', 'aarch64', arm, `${GENERIC_HEADER}\n// with arm64's ${wants.join(', ')}`, version),
  'constants.ts': constantsModule(constants(), errnos(), version),
};

// --check compares the numbers, not the banner or the recorded header version, so a machine with
// another linux-libc-dev patch level that yields the same tables passes.
const data = (text) => text.split('\n').filter((l) => !l.startsWith('//') && !l.includes('_HEADER_VERSION = ')).join('\n');

let stale = false;
for (const [name, text] of Object.entries(files)) {
  const path = join(outDir, name);
  if (check) {
    if (!existsSync(path) || data(readFileSync(path, 'utf8')) !== data(text)) {
      console.error(`${path} is out of date; run npm run gen:syscalls`);
      stale = true;
    }
  } else {
    writeFileSync(path, text);
    console.log(`wrote ${path}`);
  }
}
if (stale) process.exit(1);
