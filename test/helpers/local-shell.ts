/**
 * The pipe shell protocol against a shell started on the runner (dash, busybox sh, bash):
 * the same framing an SSH channel gets, without sshd, so every POSIX shell at hand is
 * checked. Processes are ours, found by parent PID in /proc and stopped by PID.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Console } from '../../drivers/console.js';
import { Shell } from '../../drivers/shell.js';
import { childrenOf } from './sshd.js';

async function killTree(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    return;
  }
  for (const child of await childrenOf(pid)) await killTree(child);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export async function localPipeShell(
  argv: readonly string[],
  logDir: string,
): Promise<{ shell: Shell; pid: number; stop(): Promise<void> }> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const name = argv.join(' ');
  const base = join(logDir, `${argv[0]!.replace(/\W+/g, '_')}-${child.pid}`);
  const stdout = Console.fromStreams(child.stdout, child.stdin, { name, logPath: `${base}.out.log`, failOn: [], encoding: 'latin1' });
  const stderr = Console.fromStreams(child.stderr, undefined, { name, logPath: `${base}.err.log`, failOn: [], encoding: 'latin1' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid) await killTree(child.pid);
    await exited;
    await Promise.all([stdout.close(), stderr.close()]);
  };
  const shell = await Shell.overPipe({ stdout, stderr, write: (d) => stdout.write(d), killTree, close: stop }, { host: name });
  return { shell, pid: child.pid!, stop };
}
