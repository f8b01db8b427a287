/**
 * A build directory made from a candidate's .debs: `root/` is what `dpkg-deb -x` unpacked,
 * `bin/` holds one wrapper per binary that points it at the build's own libraries and data
 * (LD_LIBRARY_PATH, QEMU's -L, libvirt's module dirs), `build.json` says what is in it.
 * The layout is the same for a prefix a real lab builds into (/opt/qemu-10.0): `bin/` is what
 * `components.qemuDir` / `components.libvirtDir` name.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { shellQuote } from '../drivers/ssh.js';

export type ComponentName = 'qemu' | 'libvirt';

export interface BuildBinary {
  component: ComponentName;
  name: string;
  /** The wrapper a caller runs. */
  wrapper: string;
  /** The binary the wrapper executes. */
  path: string;
  sha256: string;
  version: string;
}

export interface BuildRecord {
  dir: string;
  suite: string;
  /** components-fetch BUILD_RECIPE at the time. */
  recipe: number;
  components: Partial<Record<ComponentName, { version: string; upstream: string }>>;
  packages: { name: string; version: string; sha256: string }[];
  binaries: BuildBinary[];
  fetchedAt: string;
  fetchSeconds: number;
}

export const buildFile = (dir: string) => join(dir, 'build.json');
export const buildBinDir = (dir: string) => join(dir, 'bin');

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Which binaries get a wrapper, and for which component. */
const WRAPPED: { component: ComponentName; dir: string; match: RegExp }[] = [
  { component: 'qemu', dir: 'usr/bin', match: /^qemu-(system-[a-z0-9_]+|img)$/ },
  { component: 'libvirt', dir: 'usr/bin', match: /^(virsh|virt-admin)$/ },
  { component: 'libvirt', dir: 'usr/sbin', match: /^(libvirtd|virtlogd|virtqemud)$/ },
];

const libDirsOf = async (root: string) => {
  const out: string[] = [];
  for (const d of ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']) {
    const names = await readdir(join(root, d)).catch(() => [] as string[]);
    if (names.some((n) => /\.so(\.|$)/.test(n))) out.push(join(root, d));
  }
  return out;
};

/** The shell text of one wrapper; every path quoted (a build may sit under any prefix). */
export function wrapperScript(opts: { binary: string; libDirs: string[]; env?: Record<string, string>; leadingArgs?: string[] }): string {
  const lines = ['#!/bin/sh', "# labrig components: run the build's binary with the build's libraries", `# binary: ${opts.binary}`];
  if (opts.libDirs.length)
    lines.push(`LD_LIBRARY_PATH=${shellQuote(opts.libDirs.join(':'))}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}`, 'export LD_LIBRARY_PATH');
  for (const [k, v] of Object.entries(opts.env ?? {})) lines.push(`${k}=${shellQuote(v)}`, `export ${k}`);
  lines.push(`exec ${[opts.binary, ...(opts.leadingArgs ?? [])].map(shellQuote).join(' ')} "$@"`);
  return `${lines.join('\n')}\n`;
}

/** libvirt's own variables for where its modules are (src/driver.c, virFileFindResourceFull). */
export const libvirtModuleEnv = (root: string): Record<string, string> => ({
  LIBVIRT_DRIVER_DIR: join(root, 'usr/lib/x86_64-linux-gnu/libvirt/connection-driver'),
  LIBVIRT_LOCK_MANAGER_PLUGIN_DIR: join(root, 'usr/lib/x86_64-linux-gnu/libvirt/lock-driver'),
  LIBVIRT_STORAGE_BACKEND_DIR: join(root, 'usr/lib/x86_64-linux-gnu/libvirt/storage-backend'),
  LIBVIRT_STORAGE_FILE_DIR: join(root, 'usr/lib/x86_64-linux-gnu/libvirt/storage-file'),
});

export async function writeWrappers(dir: string): Promise<{ component: ComponentName; name: string; wrapper: string; path: string }[]> {
  const root = join(dir, 'root');
  const libDirs = await libDirsOf(root);
  await mkdir(buildBinDir(dir), { recursive: true });
  const out: { component: ComponentName; name: string; wrapper: string; path: string }[] = [];
  for (const w of WRAPPED) {
    for (const name of (await readdir(join(root, w.dir)).catch(() => [] as string[])).filter((n) => w.match.test(n)).sort()) {
      const path = join(root, w.dir, name);
      const wrapper = join(buildBinDir(dir), name);
      // Debian's QEMU is not relocatable: without -L it would load the system's (older) ROMs and keymaps
      const leadingArgs = w.component === 'qemu' && name.startsWith('qemu-system-') ? ['-L', join(root, 'usr/share/qemu')] : [];
      const env = w.component === 'libvirt' ? libvirtModuleEnv(root) : { QEMU_MODULE_DIR: join(root, 'usr/lib/x86_64-linux-gnu/qemu') };
      await writeFile(wrapper, wrapperScript({ binary: path, libDirs, env, leadingArgs }));
      await chmod(wrapper, 0o755);
      out.push({ component: w.component, name, wrapper, path });
    }
  }
  return out;
}

/** ldd's complaints: "libfoo.so.1 => not found", "…: version `LIBVIRT_11.0.0' not found (required by …)". */
export function parseLddMissing(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const lib = /^\s*(\S+) => not found/.exec(line);
    if (lib) out.add(lib[1]!);
    const ver = /version [`'‘]([^'’]+)['’] not found \(required by ([^)]+)\)/.exec(line);
    if (ver) out.add(`${ver[1]} (required by ${ver[2]!.split('/').pop()})`);
  }
  return [...out];
}

const isElf = async (path: string) => {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return false;
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.toString('latin1') === '\x7fELF';
  } finally {
    await fh.close();
  }
};

/**
 * Every wrapped binary (and libvirt's driver modules) must find all its libraries with the
 * build's and the system's, and answer --version: else one line naming the component, the
 * binary and what is missing.
 */
export async function verifyBuild(dir: string): Promise<BuildBinary[]> {
  const root = join(dir, 'root');
  const libDirs = await libDirsOf(root);
  const env = { ...process.env, LD_LIBRARY_PATH: libDirs.join(':') } as Record<string, string>;
  const wrapped = await writeWrappers(dir);
  const modules = join(root, 'usr/lib/x86_64-linux-gnu/libvirt/connection-driver');
  const moduleFiles = (await readdir(modules).catch(() => [] as string[]))
    .filter((n) => n.endsWith('.so'))
    .map((n) => ({ component: 'libvirt' as const, name: n, path: join(modules, n) }));
  for (const f of [...wrapped, ...moduleFiles]) {
    if (!(await isElf(f.path))) continue;
    const r = await runLocal(['ldd', f.path], { env, timeoutMs: 60_000, check: false });
    const missing = parseLddMissing(`${r.stdout}\n${r.stderr}`);
    if (missing.length)
      throw new LabError(
        'config',
        `components: ${f.component} build ${dir}: ${f.name} does not run on this host: missing ${missing.join(', ')}`,
      );
  }
  const out: BuildBinary[] = [];
  for (const w of wrapped) {
    const r = await runLocal([w.wrapper, '--version'], { timeoutMs: 60_000, check: false });
    const first = `${r.stdout}\n${r.stderr}`.trim().split('\n')[0] ?? '';
    if (r.code !== 0)
      throw new LabError('config', `components: ${w.component} build ${dir}: ${w.name} --version exits ${r.code}: ${first}`);
    const version = /version (\S+)/.exec(first)?.[1] ?? /(\d+\.\d+\.\d+)/.exec(first)?.[1] ?? first;
    out.push({ ...w, version, sha256: await sha256File(w.path) });
  }
  return out;
}

export async function readBuild(dir: string): Promise<BuildRecord | undefined> {
  try {
    return JSON.parse(await readFile(buildFile(dir), 'utf8')) as BuildRecord;
  } catch {
    return undefined;
  }
}

/** Whether a user other than root can reach path: every parent needs o+x (libvirt runs QEMU as libvirt-qemu). */
export async function reachableByOthers(path: string): Promise<string | undefined> {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const s = await stat(p).catch(() => undefined);
    if (s?.isDirectory() && !(s.mode & 0o001)) return p;
  }
  return undefined;
}
