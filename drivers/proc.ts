/**
 * Processes the lab started, found again by PID. A PID alone can be reused by an unrelated
 * process after a crash, so each check also requires a marker (a path only our process has
 * on its command line) before the process counts as ours — we never signal a stranger.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { LabError } from './errors.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when `pid` is alive (not a zombie) and, if given, its command line contains `marker`. */
export function isOurProcess(pid: number | undefined, marker?: string): boolean {
  if (!pid || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    if (!marker) return true;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .some((arg) => arg.includes(marker));
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(pid: number | undefined, marker: string, graceMs = 5000): Promise<'stopped' | 'not-running'> {
  if (!pid || !isOurProcess(pid, marker)) return 'not-running';
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone meanwhile */
    }
  };
  signal('SIGTERM');
  for (const [deadline, next] of [
    [Date.now() + graceMs, 'SIGKILL'],
    [Date.now() + graceMs + 5000, undefined],
  ] as const) {
    while (Date.now() < deadline) {
      if (!isOurProcess(pid, marker)) return 'stopped';
      await sleep(50);
    }
    if (next) signal(next);
  }
  if (isOurProcess(pid, marker)) throw new LabError('lab-setup', `process ${pid} (${marker}) survived SIGKILL`);
  return 'stopped';
}

function ancestors(): number[] {
  const out: number[] = [];
  let pid = process.ppid;
  while (pid > 1 && out.length < 64) {
    out.push(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

/**
 * Starts a daemon detached from us (it outlives the command that started it), its stdout and
 * stderr appended to `log`; resolves with its PID once it runs. One that cannot start is the
 * lab's tool failing: `[lab:runner-tool]` naming `what`.
 */
export async function spawnDetached(argv: readonly string[], log: string, o: { what: string; host?: string }): Promise<number> {
  const fh = await open(log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fh.fd, fh.fd] });
  child.unref();
  // Listening before any await: 'spawn' fires on the next tick.
  const spawned = new Promise<Error | undefined>((r) => {
    child.once('spawn', () => r(undefined));
    child.once('error', r);
  });
  await fh.close();
  const failed = await spawned;
  if (failed || !child.pid)
    throw new LabError('runner-tool', `cannot start ${o.what}: ${failed?.message ?? 'no pid'}`, o.host ? { host: o.host } : {});
  return child.pid;
}

/** The one QEMU workload at a time that the harness's tests and benches share on a 2-core machine. */
export const QEMU_SLOT_LOCK = '/tmp/labrig-test-qemu.lock';

/**
 * An exclusive lock file holding the owner's PID; a lock whose owner died is taken over.
 * Used to serialise lab bring-up and to keep our tests to one QEMU at a time.
 */
export async function acquireLock(path: string, opts: { timeoutMs: number; what: string }): Promise<() => Promise<void>> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        const owner = await readFile(path, 'utf8').catch(() => '');
        if (owner.trim() === String(process.pid)) await unlink(path).catch(() => {});
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    // A lock held by a process that started us (a CI wrapper holding it for a whole run) covers us.
    if (owner && ancestors().includes(owner)) return async () => {};
    // An empty file is a lock being written — or one left by another tool (flock(1) creates it
    // empty and never removes it): empty for more than 5 s, it is nobody's.
    const abandoned = !owner && Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? Date.now()) > 5_000;
    if ((owner && !isOurProcess(owner)) || abandoned) {
      await unlink(path).catch(() => {});
      continue;
    }
    if (Date.now() > deadline)
      throw new LabError('lab-timeout', `${opts.what}: lock ${path} still held by PID ${owner || '?'} after ${opts.timeoutMs} ms`);
    await sleep(200);
  }
}
