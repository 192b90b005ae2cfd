// Builds the prebuilt native binaries shipped in the package: for each architecture,
// prebuilds/linux-<arch>/clawjail.napi.glibc.node (the N-API addon, found by node-gyp-build and
// by src/native.ts) and prebuilds/linux-<arch>/clawjail-init (the helper, statically linked).
//
//   node scripts/build-prebuilds.mjs [--arch x64,arm64]      (npm run build:prebuilds; prepack)
//
// The host's architecture is built with the host compiler, the other with the cross compiler
// (<triplet>-g++, e.g. g++-aarch64-linux-gnu on Debian). Each architecture is built by node-gyp
// in its own staging directory under .cache/prebuild/, never in build/, so the developer's own
// build (build/Release) is left alone; the staging directory is kept, so a rebuild only
// recompiles what changed.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Node's arch name → the GNU triplet of its cross compiler and the ELF e_machine it produces. */
const ARCHES = {
  x64: { triplet: 'x86_64-linux-gnu', machine: 62 },
  arm64: { triplet: 'aarch64-linux-gnu', machine: 183 },
};

function fail(message, hint) {
  console.error(`build-prebuilds: ${message}\n  hint: ${hint}`);
  process.exit(1);
}

function parseArches(argv) {
  let list = process.env.CLAWJAIL_PREBUILD_ARCH || 'x64,arm64';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--arch' && argv[i + 1]) list = argv[++i];
    else if (argv[i].startsWith('--arch=')) list = argv[i].slice('--arch='.length);
    else fail(`unknown argument ${argv[i]}`, 'usage: node scripts/build-prebuilds.mjs [--arch x64,arm64]');
  }
  const arches = list.split(',').map((a) => a.trim()).filter(Boolean);
  for (const a of arches) if (!ARCHES[a]) fail(`unsupported architecture ${a}`, `choose among ${Object.keys(ARCHES).join(', ')}`);
  return arches;
}

/** node-gyp: the one npm runs scripts with, else the one bundled with this node's npm. */
function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) fail('cannot find node-gyp', 'run this through npm (npm run build:prebuilds), which provides node-gyp');
  return found;
}

/** The compilers for arch: the host's own for the host arch, <triplet>-gcc/g++ otherwise. */
function compilers(arch) {
  if (arch === process.arch) return {};
  const { triplet } = ARCHES[arch];
  const cxx = `${triplet}-g++`;
  if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status !== 0) {
    fail(`the cross compiler ${cxx} is not installed, so linux-${arch} cannot be built`, `install it (Debian: apt-get install g++-${triplet}), or build only some architectures: --arch ${process.arch}`);
  }
  return { CC: `${triplet}-gcc`, CXX: cxx, LINK: cxx, AR: `${triplet}-ar` };
}

/** Node's headers: an explicit nodedir wins; else the ones installed beside this node, if any. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) && existsSync(join(prefix, 'include', 'node', 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

/**
 * A 64-bit little-endian ELF file's machine, whether it needs a dynamic loader (a PT_INTERP
 * program header), and the newest glibc and libstdc++ symbol versions it names (null: none).
 */
function inspectElf(file) {
  const bytes = readFileSync(file);
  if (bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) return { machine: -1, dynamic: true, glibc: null };
  const phoff = Number(bytes.readBigUInt64LE(32));
  const phentsize = bytes.readUInt16LE(54);
  let dynamic = false;
  for (let i = 0; i < bytes.readUInt16LE(56); i++) if (bytes.readUInt32LE(phoff + i * phentsize) === 3) dynamic = true;
  const newest = (prefix) => {
    let best = null;
    for (const m of bytes.toString('latin1').matchAll(new RegExp(`${prefix}_(\\d+(?:\\.\\d+)+)\\0`, 'g'))) {
      const v = m[1].split('.').map(Number);
      const cmp = best ? v.map((x, i) => x - (best[i] ?? 0)).find((d) => d !== 0) ?? v.length - best.length : 1;
      if (cmp > 0) best = v;
    }
    return best && best.join('.');
  };
  return { machine: bytes.readUInt16LE(18), dynamic, glibc: newest('GLIBC'), glibcxx: newest('GLIBCXX') };
}

/** Copies src to dest atomically: the temporary copy is made beside src (the staging directory),
 * so prebuilds/ never holds a partial or temporary file, even while `npm pack` reads it. */
function install(src, dest, mode) {
  const tmp = `${src}.tmp-${process.pid}`;
  copyFileSync(src, tmp);
  chmodSync(tmp, mode);
  renameSync(tmp, dest);
}

const gyp = nodeGyp();
for (const arch of parseArches(process.argv.slice(2))) {
  const env = { ...process.env, ...compilers(arch) };
  const stage = join(root, '.cache', 'prebuild', `linux-${arch}`);
  mkdirSync(stage, { recursive: true });
  // Only what binding.gyp reads; timestamps kept so make rebuilds only what changed.
  cpSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'), { preserveTimestamps: true });
  rmSync(join(stage, 'native'), { recursive: true, force: true });
  cpSync(join(root, 'native'), join(stage, 'native'), { recursive: true, preserveTimestamps: true });
  // binding.gyp resolves node-addon-api's headers with require() from its own directory.
  if (!existsSync(join(stage, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'));

  console.log(`build-prebuilds: linux-${arch}${env.CXX ? ` with ${env.CXX}` : ''}`);
  const args = [gyp, 'configure', 'build', `--arch=${arch}`, '--clawjail-link=portable', ...nodedirArgs()];
  if (process.env.npm_config_jobs === undefined) args.push('--jobs=2');
  try {
    execFileSync(process.execPath, args, { cwd: stage, env, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    fail(`node-gyp failed for linux-${arch} (exit ${e.status ?? e.code})`, `its output is above; the build directory is ${join(stage, 'build')}`);
  }

  const out = join(root, 'prebuilds', `linux-${arch}`);
  mkdirSync(out, { recursive: true });
  const built = { addon: join(stage, 'build', 'Release', 'clawjail.node'), helper: join(stage, 'build', 'Release', 'clawjail-init') };
  for (const [what, file] of Object.entries(built)) {
    const elf = inspectElf(file);
    if (elf.machine !== ARCHES[arch].machine) fail(`${file} is not a linux-${arch} binary (ELF machine ${elf.machine})`, 'check CC/CXX/LINK: the cross compiler was not used');
    if (what === 'helper' && elf.dynamic) fail(`${file} is not statically linked (it needs a dynamic loader)`, 'the prebuilt helper must be static: check binding.gyp\'s clawjail_link condition');
    if (what === 'addon') console.log(`build-prebuilds: linux-${arch} addon needs glibc >= ${elf.glibc ?? '(any)'}, libstdc++ GLIBCXX >= ${elf.glibcxx ?? '(any)'}`);
  }
  install(built.addon, join(out, 'clawjail.napi.glibc.node'), 0o755);
  install(built.helper, join(out, 'clawjail-init'), 0o755);
  console.log(`build-prebuilds: wrote prebuilds/linux-${arch}/clawjail.napi.glibc.node and clawjail-init`);
}
