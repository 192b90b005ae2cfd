import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import YAML, { isMap, isSeq, type Document, type YAMLMap, type YAMLSeq } from 'yaml';
import { ClawjailError } from '../../errors.js';
import type { AllowRule } from '../../profile/network.js';

/**
 * `clawjail approve ID --always`: add the rule to the sandbox's profile file. The file is edited
 * as a YAML document (comments and layout survive) and replaced atomically: written to a temp
 * file in the same directory, fsync'ed, then renamed over the original, so a crash leaves either
 * the old or the new profile, never half of one.
 */

const locks = new Map<string, Promise<unknown>>();

/** Serializes writers of one file inside this process; the rename keeps other processes safe. */
function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(file) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  locks.set(file, tail);
  void tail.then(() => {
    if (locks.get(file) === tail) locks.delete(file);
  });
  return next;
}

export type AddRuleResult = 'added' | 'present';

export function addAllowRuleToProfile(file: string, rule: AllowRule): Promise<AddRuleResult> {
  return withFileLock(file, async () => {
    let text = '';
    let mode = 0o644;
    try {
      text = await readFile(file, 'utf8');
      mode = (await stat(file)).mode & 0o777;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const doc = YAML.parseDocument(text);
    if (doc.errors.length > 0) {
      throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `cannot add the rule to ${file}: it is not valid YAML (${doc.errors[0]?.message ?? 'parse error'})`, {
        path: file,
        hint: 'fix the file, or add the rule by hand under network.allow',
      });
    }
    const allow = allowSequence(doc, file);
    if (allow.items.some((item) => covers(item, rule))) return 'present';
    allow.flow = false;
    const node = doc.createNode(ruleForFile(rule)) as YAMLMap;
    const ports = node.get('ports', true);
    if (isSeq(ports)) ports.flow = true;
    node.commentBefore = ` added by \`clawjail approve --always\` on ${new Date().toISOString().slice(0, 10)}`;
    allow.items.push(node);
    await writeAtomic(file, doc.toString(), mode);
    return 'added';
  });
}

/** A persister for the approval broker. */
export function createProfileRulePersister(file: string): (rule: AllowRule) => Promise<{ file: string }> {
  return async (rule) => {
    await addAllowRuleToProfile(file, rule);
    return { file };
  };
}

function allowSequence(doc: Document, file: string): YAMLSeq {
  if (doc.contents === null || doc.contents === undefined) doc.contents = doc.createNode({}) as never;
  if (!isMap(doc.contents)) throw notAMap(file, 'the document');
  let network = doc.get('network', true);
  if (network === undefined || network === null) {
    doc.set('network', doc.createNode({}));
    network = doc.get('network', true);
  }
  if (!isMap(network)) throw notAMap(file, '`network`');
  let allow = network.get('allow', true);
  if (allow === undefined || allow === null) {
    network.set('allow', doc.createNode([]));
    allow = network.get('allow', true);
  }
  if (!isSeq(allow)) throw notAMap(file, '`network.allow`', 'a list');
  return allow;
}

function notAMap(file: string, what: string, shape = 'a mapping'): ClawjailError {
  return new ClawjailError('ERR_CLAWJAIL_PROFILE', `cannot add the rule to ${file}: ${what} is not ${shape}`, {
    path: file,
    hint: 'fix the file, or add the rule by hand under network.allow',
  });
}

/** Only the fields a person would write: defaults stay implicit. */
function ruleForFile(rule: AllowRule): Record<string, unknown> {
  const out: Record<string, unknown> = { host: rule.host, ports: rule.ports };
  if (rule.methods) out.methods = rule.methods;
  if (rule.paths) out.paths = rule.paths;
  if (rule.allowMissingSni) out.allowMissingSni = true;
  return out;
}

function covers(item: unknown, rule: AllowRule): boolean {
  if (!isMap(item)) return false;
  const value = item.toJSON() as Partial<AllowRule>;
  if (typeof value.host !== 'string' || value.host.toLowerCase() !== rule.host.toLowerCase()) return false;
  if (value.methods || value.paths) return false;
  const ports = Array.isArray(value.ports) ? value.ports : [443];
  return rule.ports.every((p) => ports.includes(p));
}

async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(text, 'utf8');
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // The rename is durable only once the directory entry is on disk.
  const dir = await open(dirname(file), 'r').catch(() => undefined);
  await dir?.sync().catch(() => undefined);
  await dir?.close();
}
