/**
 * `labrig ssh <host> [command…]`: OpenSSH's habits over the lab's own connection (pinned host
 * key, the configured identity). No command: a login shell, on a pty sized like this terminal
 * when stdin is one. A command: its stdout and stderr here, its exit code ours; stdin is
 * forwarded when it is not a terminal (`labrig ssh h 'cat > f' < f`), like `ssh -n` otherwise.
 */
import { constants } from 'node:os';
import type { ClientChannel, PseudoTtyOptions } from 'ssh2';
import { SshSession } from '../drivers/ssh.js';
import type { HostConfig } from '../targets/schema.js';

export interface SshCommandOptions {
  /** Force a pty for a command (`ssh -t`): for top, vi, anything that needs a terminal. */
  tty?: boolean;
}

function exitCodeOf(code: number | null, signal: string | null): number {
  if (code !== null) return code;
  const n = signal ? constants.signals[`SIG${signal.replace(/^SIG/, '')}` as keyof typeof constants.signals] : undefined;
  return n ? 128 + n : 255;
}

export async function sshCommand(config: HostConfig, command: readonly string[], opts: SshCommandOptions = {}): Promise<number> {
  const ssh = new SshSession(config.name, config.ssh);
  const client = await ssh.connect();
  const stdin = process.stdin;
  const interactive = command.length === 0;
  const pty: PseudoTtyOptions | false =
    (opts.tty ?? (interactive && stdin.isTTY))
      ? { term: process.env.TERM || 'vt100', rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 }
      : false;
  try {
    const ch = await new Promise<ClientChannel>((resolve, reject) => {
      const done = (err: Error | undefined, channel: ClientChannel) => (err ? reject(err) : resolve(channel));
      if (interactive) client.shell(pty, done);
      else client.exec(command.join(' '), pty ? { pty } : {}, done);
    });
    const exit = new Promise<number>((resolve) => {
      let status = 255;
      ch.on('exit', (code: number | null, signal?: string) => (status = exitCodeOf(code, signal ?? null)));
      ch.on('close', () => resolve(status));
    });
    ch.on('data', (d: Buffer) => process.stdout.write(d));
    ch.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    const resize = () => ch.setWindow(process.stdout.rows || 24, process.stdout.columns || 80, 0, 0);
    if (pty) process.stdout.on('resize', resize);
    const raw = pty !== false && stdin.isTTY;
    const forward = interactive || raw || !stdin.isTTY;
    if (raw) stdin.setRawMode(true);
    const onData = (d: Buffer) => ch.write(d);
    const onEnd = () => ch.end();
    if (forward) {
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      stdin.resume();
    } else ch.end();
    try {
      return await exit;
    } finally {
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      process.stdout.removeListener('resize', resize);
    }
  } finally {
    ssh.close();
  }
}
