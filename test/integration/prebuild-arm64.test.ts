import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const CXX = 'aarch64-linux-gnu-g++';
// On an arm64 host prebuilt-install.test.ts builds this prebuild natively and runs it, which says
// more; building it here too would race with it for the same staging directory.
const skip =
  process.arch === 'arm64'
    ? 'on arm64 prebuilt-install.test.ts builds and runs this prebuild'
    : (await execa(CXX, ['--version'], { reject: false })).exitCode !== 0
      ? `${CXX} not installed`
      : undefined;

/** e_machine, and the program header types, of a 64-bit little-endian ELF file. */
function elf(file: string): { machine: number; type: number; segments: number[] } {
  const b = readFileSync(file);
  expect(b.subarray(0, 6)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]));
  const phoff = Number(b.readBigUInt64LE(32));
  const segments = Array.from({ length: b.readUInt16LE(56) }, (_, i) => b.readUInt32LE(phoff + i * b.readUInt16LE(54)));
  return { machine: b.readUInt16LE(18), type: b.readUInt16LE(16), segments };
}

const EM_AARCH64 = 183;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;

// What `npm pack` ships for linux-arm64 is built by node-gyp with the cross compiler on an x64
// host (scripts/build-prebuilds.mjs). It cannot run here, so its shape is checked instead.
describe.skipIf(!!skip)(`the linux-arm64 prebuild${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('is an aarch64 N-API addon and a statically linked aarch64 clawjail-init', async () => {
    const r = await execa(process.execPath, [join(ROOT, 'scripts', 'build-prebuilds.mjs'), '--arch', 'arm64'], { cwd: ROOT, reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    const dir = join(ROOT, 'prebuilds', 'linux-arm64');
    const addon = elf(join(dir, 'clawjail.napi.glibc.node'));
    expect([addon.machine, addon.type, addon.segments.includes(PT_DYNAMIC)]).toEqual([EM_AARCH64, ET_DYN, true]);
    // N-API's entry point, not a Node-ABI-specific module registration.
    const text = readFileSync(join(dir, 'clawjail.napi.glibc.node')).toString('latin1');
    expect(text).toContain('napi_register_module_v1\0');
    expect(text).not.toMatch(/node_register_module_v\d+/);
    const helper = elf(join(dir, 'clawjail-init'));
    expect([helper.machine, helper.type, helper.segments.includes(PT_INTERP), helper.segments.includes(PT_DYNAMIC)]).toEqual([EM_AARCH64, ET_EXEC, false, false]);
  }, 180_000);
});
