/**
 * Version validation: puts on a host the component versions the lab config asks for
 * (`components`), before the run. A package not at its version is installed with the host's
 * package manager and read back; a QEMU build directory is checked to hold runnable
 * qemu-system-* binaries. Whatever fails is a lab failure: the host sits this run out.
 * The main job applies them holding the host's lease: never under a test another run is doing.
 */
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { silentRecorder } from '../drivers/recorder.js';
import { shellQuote } from '../drivers/ssh.js';
import { Host } from './host.js';
import { withLease } from './lease.js';
import type { ComponentsConfig, HostConfig, Lab } from './schema.js';

export interface AppliedComponent {
  component: string;
  /** What the config asked for. */
  wanted: string;
  /** What the host has now. */
  has: string;
  action: 'already there' | 'installed' | 'checked';
  /** For a build's binary: the file that runs (a labrig wrapper's target) and its SHA-256. */
  path?: string;
  sha256?: string;
}

const fill = (template: string, values: Record<string, string>) =>
  template.replace(/\{(\w+)\}/g, (all, k: string) => (k in values ? shellQuote(values[k]!) : all));

/** True when the config asks for anything to be applied. */
export function hasComponents(config: HostConfig): boolean {
  return config.components.packages.length > 0 || config.components.qemuDir !== undefined;
}

/** The binary a suite runs for `qemu-system-<arch>`: the configured build's, else the host's own (undefined: let libvirt choose). */
export function qemuBuildBinary(config: HostConfig, binary: string): string | undefined {
  return config.components.qemuDir ? `${config.components.qemuDir.replace(/\/$/, '')}/${binary}` : undefined;
}

/** Changes the host: the caller holds its lease (applyLabComponents does). */
export async function applyComponents(host: Host, c: ComponentsConfig = host.config.components): Promise<AppliedComponent[]> {
  const fail = (message: string) => new LabError('config', message, { host: host.name });
  const installed = async (name: string) => {
    const r = await host.run(fill(c.versionCommand, { name }), { timeoutMs: 60_000 });
    return r.code === 0 ? r.stdout.trim() : '';
  };
  const out: AppliedComponent[] = [];
  for (const p of c.packages) {
    const before = await installed(p.name);
    if (before === p.version) {
      out.push({ component: p.name, wanted: p.version, has: before, action: 'already there' });
      continue;
    }
    const r = await host.run(`${fill(c.installCommand, p)} 2>&1`, { timeoutMs: 30 * 60_000 });
    const tail = r.stdout.trim().split('\n').slice(-5).join('\n');
    if (r.code !== 0)
      throw fail(`components.packages: installing ${p.name} ${p.version} (has ${before || 'none'}) failed with exit ${r.code}:\n${tail}`);
    const after = await installed(p.name);
    if (after !== p.version) throw fail(`components.packages: ${p.name} is at ${after || 'none'} after installing ${p.version}:\n${tail}`);
    out.push({ component: p.name, wanted: p.version, has: after, action: 'installed' });
  }
  if (c.qemuDir) {
    const dir = shellQuote(c.qemuDir);
    // a labrig wrapper (components fetch) names the binary it runs: that file is what is hashed
    const script = `for q in ${dir}/qemu-system-*; do [ -x "$q" ] || continue; real=$(sed -n 's/^# binary: //p' "$q" | head -1); [ -n "$real" ] || real=$(readlink -f "$q"); printf '%s\\t%s\\t%s\\t%s\\n' "$q" "$("$q" --version | head -1)" "$real" "$(sha256sum "$real" | cut -d' ' -f1)"; done; true`;
    const r = await host.run(script, { timeoutMs: 120_000 });
    const binaries = r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, string, string, string]);
    if (!binaries.length) throw fail(`components.qemuDir: ${c.qemuDir} holds no runnable qemu-system-* binary`);
    const broken = binaries.filter(([, v]) => !/version \S+/.test(v));
    if (broken.length) throw fail(`components.qemuDir: ${broken.map(([b]) => b).join(', ')} do not run (--version printed nothing)`);
    for (const [bin, v, path, sha256] of binaries)
      out.push({ component: bin, wanted: c.qemuDir, has: /version (\S+)/.exec(v)![1]!, action: 'checked', path, sha256 });
  }
  return out;
}

/** Where the main job records what it applied; the manifest carries it as `components`. */
export const componentsFile = (outDir: string) => join(outDir, 'components.json');

export type ComponentsRecord = Record<string, AppliedComponent[] | { error: string }>;

/**
 * Applies every host's components, one host after another, each under its lease (a host
 * leased by another run is refused, naming the holder); a host that fails is named in `failed`.
 */
export async function applyLabComponents(
  lab: Lab,
  logDir: string,
  say: (line: string) => void,
): Promise<{ record: ComponentsRecord; failed: Record<string, string> }> {
  const record: ComponentsRecord = {};
  const failed: Record<string, string> = {};
  const lease = { ...lab.lease, runId: process.env.LABRIG_RUN_ID || `components-${process.pid}`, recorder: silentRecorder };
  for (const config of lab.hosts.filter(hasComponents)) {
    const host = new Host(config, { logDir });
    try {
      record[config.name] = await withLease(host, lease, () => applyComponents(host));
      for (const a of record[config.name] as AppliedComponent[]) say(`${config.name}: ${a.component} ${a.has} (${a.action})`);
    } catch (e) {
      const error = (e as Error).message;
      record[config.name] = { error };
      failed[config.name] = error.split('\n')[0]!;
    } finally {
      await host.close().catch(() => undefined);
    }
  }
  return { record, failed };
}
