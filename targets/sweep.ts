/**
 * What a crashed run left on a host, found and removed by the next run's health check. Only what
 * is provably the harness's own: libvirt and xl domains named `labrig-<kind>-<runTag>-<hex>`
 * with another run's tag, QEMU processes whose own `-name` argument is such a name (read from
 * /proc/<pid>/cmdline, argument by argument), and mounts under the harness's own folders. The
 * caller holds the host's lease, so no other run is live on the host. Finding is pure; removing
 * re-checks each process's command line first and proves everything gone by listing again.
 */
import { posix } from 'node:path';
import { Virsh } from '../drivers/libvirt.js';
import { shellQuote } from '../drivers/ssh.js';
import { parseXlList } from '../drivers/xl-parse.js';
import { parseHarnessName, runTag } from './harness-name.js';
import type { Host } from './host.js';

export interface Leftover {
  what: 'libvirt domain' | 'xl domain' | 'qemu process' | 'mount';
  /** Domain name, mount point, or `<pid> <name>` for a process. */
  id: string;
  /** The run tag its name carries (domains and processes). */
  runTag?: string;
  pid?: number;
  /** A process's command line as /proc shows it, arguments joined by \x1f. */
  cmdline?: string;
}

const SEP = '\x1f';

/** One SSH command whose output `findLeftovers` reads, in sections. */
export const leftoversListing = [
  "echo '@@virsh'; if command -v virsh >/dev/null 2>&1; then virsh -q -c qemu:///system list --all --name 2>/dev/null || echo '!unreachable'; fi",
  "echo '@@xl'; if command -v xl >/dev/null 2>&1; then xl list 2>/dev/null || echo '!unreachable'; fi",
  // argv of every process, arguments separated by \037 so each one is read back exactly
  "echo '@@procs'; for p in /proc/[0-9]*; do a=$(tr '\\000' '\\037' < $p/cmdline 2>/dev/null); [ -n \"$a\" ] && printf '%s %s\\n' \"${p#/proc/}\" \"$a\"; done; true",
  "echo '@@mounts'; cat /proc/self/mounts",
].join('; ');

function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.replace(/\r/g, '').split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) out.set(m[1]!, (current = []));
    else if (current && line.trim()) current.push(line);
  }
  return out;
}

/** /proc/mounts escapes space, tab, newline and backslash as octal. */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

const under = (path: string, folder: string, orAt: boolean) => {
  const f = posix.normalize(folder).replace(/\/+$/, '');
  return f !== '' && ((orAt && path === f) || path.startsWith(`${f}/`));
};

/** The harness name a QEMU process was started with (`-name X` or `-name guest=X,…`), if it is one. */
export function qemuHarnessName(argv: readonly string[]): { name: string; runTag: string } | undefined {
  if (!/^qemu-(system-|kvm$)/.test(posix.basename(argv[0] ?? ''))) return undefined;
  const i = argv.indexOf('-name');
  const value = i >= 0 ? argv[i + 1] : undefined;
  if (value === undefined) return undefined;
  const name = (value.startsWith('guest=') ? value.slice('guest='.length) : value).split(',')[0]!;
  const parsed = parseHarnessName(name);
  return parsed && { name, runTag: parsed.runTag };
}

export interface FindOptions {
  /** This run's id: what carries its tag is this run's own and stays. */
  runId: string;
  /** The harness's own folders on the host: mounts under them are ours (a folder may itself be a mount the lab made: it stays). */
  folders: readonly string[];
  /** Where the harness itself mounts (the fsdax mount): a mount there or under it is ours. */
  mountPoints?: readonly string[];
}

export function findLeftovers(listing: string, o: FindOptions): { leftovers: Leftover[]; notes: string[] } {
  const s = sections(listing);
  for (const name of ['virsh', 'xl', 'procs', 'mounts']) if (!s.has(name)) throw new Error(`leftovers listing lacks its @@${name} section`);
  const ours = runTag(o.runId);
  const notes: string[] = [];
  const leftovers: Leftover[] = [];
  const otherRun = (tag: string | undefined): tag is string => tag !== undefined && tag !== ours;
  const virsh = s.get('virsh')!;
  if (virsh.includes('!unreachable')) notes.push('libvirt did not answer: its domains not checked');
  for (const name of virsh.map((l) => l.trim())) {
    const tag = parseHarnessName(name)?.runTag;
    if (otherRun(tag)) leftovers.push({ what: 'libvirt domain', id: name, runTag: tag });
  }
  const xl = s.get('xl')!;
  if (xl.includes('!unreachable')) notes.push('xl did not answer: its domains not checked');
  else if (xl.length)
    for (const d of parseXlList(xl.join('\n'))) {
      const tag = parseHarnessName(d.name)?.runTag;
      if (otherRun(tag)) leftovers.push({ what: 'xl domain', id: d.name, runTag: tag });
    }
  for (const line of s.get('procs')!) {
    const m = /^(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const argv = m[2]!.split(SEP).filter((a, i, all) => i < all.length - 1 || a !== '');
    const q = qemuHarnessName(argv);
    if (q && otherRun(q.runTag))
      leftovers.push({ what: 'qemu process', id: `${m[1]} ${q.name}`, runTag: q.runTag, pid: Number(m[1]), cmdline: m[2]! });
  }
  const mounts = s
    .get('mounts')!
    .map((l) => unescapeMount(l.split(' ')[1] ?? ''))
    .filter((mp) => o.folders.some((f) => under(mp, f, false)) || (o.mountPoints ?? []).some((f) => under(mp, f, true)));
  // Deepest first, so a mount on top of another comes off before the one beneath it.
  for (const mp of [...new Set(mounts)].sort((a, b) => b.length - a.length)) leftovers.push({ what: 'mount', id: mp });
  return { leftovers, notes };
}

/** A process is ended only while /proc still shows the very command line it was found with. */
function endProcessCommand(pid: number, cmdline: string): string {
  const same = `[ "$(tr '\\000' '\\037' < /proc/${pid}/cmdline 2>/dev/null)" = ${shellQuote(cmdline)} ]`;
  return `if ${same}; then kill -TERM ${pid}; i=0; while ${same} && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; ${same} && kill -KILL ${pid}; fi; true`;
}

async function remove(host: Host, l: Leftover): Promise<void> {
  switch (l.what) {
    case 'libvirt domain':
      return new Virsh(host).remove(l.id);
    case 'xl domain':
      await host.run(`xl destroy ${shellQuote(l.id)} >/dev/null 2>&1; true`, { timeoutMs: 60_000 });
      return;
    case 'qemu process':
      await host.run(endProcessCommand(l.pid!, l.cmdline!), { timeoutMs: 30_000 });
      return;
    case 'mount':
      await host.run(`umount ${shellQuote(l.id)} 2>/dev/null || umount -l ${shellQuote(l.id)}`, { timeoutMs: 60_000 });
  }
}

export interface SweepResult {
  removed: Leftover[];
  /** Found, and still there after the attempt. */
  failed: Leftover[];
  notes: string[];
}

export const describeLeftover = (l: Leftover) => `${l.what} ${l.id}${l.runTag ? ` (run ${l.runTag})` : ''}`;

const key = (l: Leftover) => `${l.what}\n${l.id}\n${l.cmdline ?? ''}`;

/** Finds, removes and proves gone what earlier runs left. The caller holds the host's lease. */
export async function sweepHost(host: Host, o: FindOptions): Promise<SweepResult> {
  const list = async () => findLeftovers((await host.run(leftoversListing, { check: true, timeoutMs: 60_000 })).stdout, o);
  const found = await list();
  if (!found.leftovers.length) return { removed: [], failed: [], notes: found.notes };
  for (const l of found.leftovers) await remove(host, l);
  const still = new Set((await list()).leftovers.map(key));
  return {
    removed: found.leftovers.filter((l) => !still.has(key(l))),
    failed: found.leftovers.filter((l) => still.has(key(l))),
    notes: found.notes,
  };
}

/** The harness's folders on a host: its state folder and the work folders its suites are given. */
export function harnessFolders(
  hostStateDir: string,
  suites: { pcieRootPorts?: { workDir: string }; snapshotKexec?: { workDir: string; fsdaxMount: string } },
): Pick<FindOptions, 'folders' | 'mountPoints'> {
  const folders = [hostStateDir, suites.pcieRootPorts?.workDir, suites.snapshotKexec?.workDir].filter((f): f is string => !!f);
  return { folders, mountPoints: suites.snapshotKexec ? [suites.snapshotKexec.fsdaxMount] : [] };
}
