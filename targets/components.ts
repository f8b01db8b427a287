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
import { parseLddMissing } from './components-build.js';
import { buildLibvirtd, startBuildLibvirtd, stopBuildLibvirtd } from './components-libvirtd.js';
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
  const c = config.components;
  return c.packages.length > 0 || c.qemuDir !== undefined || c.libvirtDir !== undefined;
}

/** The binary a suite runs for `qemu-system-<arch>`: the configured build's, else the host's own (undefined: let libvirt choose). */
export function qemuBuildBinary(config: HostConfig, binary: string): string | undefined {
  return config.components.qemuDir ? `${config.components.qemuDir.replace(/\/$/, '')}/${binary}` : undefined;
}

interface BuildBinaryFacts {
  bin: string;
  /** The dotted version its --version names; '' when it printed none (it does not run). */
  version: string;
  firstLine: string;
  /** The file that runs (a labrig wrapper names it) and its SHA-256. */
  path: string;
  sha256: string;
}

/** The binaries of a build dir (names or globs): version, the file that runs and its SHA-256. */
async function buildBinaries(host: Host, dir: string, names: string[]): Promise<BuildBinaryFacts[]> {
  // a labrig wrapper (components fetch) names the binary it runs: that file is what is hashed
  const words = names.map((n) => `${shellQuote(dir)}/${n}`).join(' ');
  const script = `for q in ${words}; do [ -x "$q" ] || continue; real=$(sed -n 's/^# binary: //p' "$q" | head -1); [ -n "$real" ] || real=$(readlink -f "$q"); v=$("$q" --version 2>&1); rc=$?; printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$q" "$rc" "$(printf '%s' "$v" | grep -v '^$' | head -1)" "$real" "$(sha256sum "$real" | cut -d' ' -f1)"; done; true`;
  const r = await host.run(script, { timeoutMs: 120_000 });
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [bin, rc, first, path, sha256] = l.split('\t') as [string, string, string, string, string];
      const version = rc === '0' ? (/version (\S+)/.exec(first)?.[1] ?? /(\d+\.\d+\.\d+)\s*$/.exec(first)?.[1] ?? '') : '';
      return { bin, firstLine: first, version, path, sha256 };
    });
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
    const binaries = await buildBinaries(host, c.qemuDir, ['qemu-system-*']);
    if (!binaries.length) throw fail(`components.qemuDir: ${c.qemuDir} holds no runnable qemu-system-* binary`);
    const broken = binaries.filter((b) => !b.version);
    if (broken.length) throw fail(`components.qemuDir: ${broken.map((b) => b.bin).join(', ')} do not run (--version printed nothing)`);
    for (const b of binaries)
      out.push({ component: b.bin, wanted: c.qemuDir, has: b.version, action: 'checked', path: b.path, sha256: b.sha256 });
  }
  if (c.libvirtDir) {
    const binaries = await buildBinaries(host, c.libvirtDir, ['libvirtd', 'virtlogd', 'virsh']);
    const missing = ['libvirtd', 'virtlogd', 'virsh'].filter((n) => !binaries.some((b) => b.bin.endsWith(`/${n}`)));
    if (missing.length) throw fail(`components.libvirtDir: ${c.libvirtDir} has no executable ${missing.join(', ')}`);
    const broken = binaries.filter((b) => !b.version);
    if (broken.length)
      throw fail(
        `components.libvirtDir: ${broken.map((b) => `${b.bin} does not run (${parseLddMissing(b.firstLine).map((m) => `missing ${m}`)[0] ?? (b.firstLine || '--version printed nothing')})`).join('; ')}`,
      );
    // the daemon must start from the build and answer, then it is stopped: the suites start their own under the lease
    const daemon = buildLibvirtd(host.config.components === c ? host.config : { ...host.config, components: c })!;
    await startBuildLibvirtd(host, daemon);
    await stopBuildLibvirtd(host, daemon);
    for (const b of binaries)
      out.push({ component: b.bin, wanted: c.libvirtDir, has: b.version, action: 'checked', path: b.path, sha256: b.sha256 });
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
