/**
 * What a reboot does to a lease on a real local sshd, without rebooting this machine: the
 * holder's SSH connection dies (its sshd session process is killed), every process of the old
 * boot dies (the holder), and the tmpfs lock folder is emptied. Only processes our own sshd
 * started are killed, found by PID through /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';

async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The sshd process serving the connection `pid` runs in: the child of the listening sshd. */
export async function connectionOf(pid: number, sshdPid: number): Promise<number> {
  for (let p = pid, hops = 0; hops < 16; hops++) {
    const parent = await parentOf(p);
    if (parent === sshdPid) return p;
    if (parent <= 1) break;
    p = parent;
  }
  throw new Error(`pid ${pid} does not run under sshd ${sshdPid}`);
}

/** Alive and not a zombie. */
export async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat[stat.lastIndexOf(')') + 2] !== 'Z';
}

/** Kills the connection `holderPid` runs in and the holder itself; empties `wipe` (the lock folder). */
export async function simulateReboot(o: { holderPid: number; sshdPid: number; wipe: string[] }): Promise<void> {
  const connection = await connectionOf(o.holderPid, o.sshdPid);
  process.kill(connection, 'SIGKILL');
  try {
    process.kill(o.holderPid, 'SIGKILL');
  } catch {
    // already gone with its connection
  }
  for (const dir of o.wipe) await rm(dir, { recursive: true, force: true });
}

/**
 * A process that is someone else's but has `pid`, as the old holder's pid is after a reboot:
 * the kernel hands out ns_last_pid + 1 next (root only; retried while other forks race us).
 */
export async function spawnWithPid(pid: number, tries = 500): Promise<ChildProcess> {
  for (let i = 0; i < tries; i++) {
    if (
      await readFile(`/proc/${pid}/stat`).then(
        () => true,
        () => false,
      )
    ) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    await writeFile('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    if (child.pid === pid) return child;
    child.kill('SIGKILL');
  }
  throw new Error(`could not start a process with pid ${pid} in ${tries} tries`);
}
