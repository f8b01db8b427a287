/**
 * A real OpenSSH sshd on 127.0.0.1, with generated host and client keys in `dir`.
 * It is the `local` host of the default lab and the peer of the SSH driver's tests.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ensureKeyPair, fingerprintOf } from '../../drivers/ssh-keygen.js';

export interface SshdHandle {
  address: string;
  port: number;
  user: string;
  identityFile: string;
  /** SHA256:… fingerprint of the host key, for pinning. */
  hostKey: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

export interface SshdOptions {
  dir: string;
  port: number;
  /** Extra sshd_config lines. */
  extraConfig?: string[];
}

async function waitForPort(port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port} in time`);
}

export async function startSshd(opts: SshdOptions): Promise<SshdHandle> {
  const { dir, port } = opts;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const clientKey = join(dir, 'id_ed25519');
  await ensureKeyPair(hostKey, 'labrig-local-host');
  await ensureKeyPair(clientKey, 'labrig-client');
  const authorized = join(dir, 'authorized_keys');
  await writeFile(authorized, await readFile(`${clientKey}.pub`), { mode: 0o600 });
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    `${[
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${join(dir, 'sshd.pid')}`,
      'Subsystem sftp internal-sftp',
      'AllowStreamLocalForwarding yes',
      'LogLevel INFO',
      ...(opts.extraConfig ?? []),
    ].join('\n')}\n`,
  );
  const log = join(dir, 'sshd.log');
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config, '-E', log], { stdio: 'ignore', detached: true });
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error('sshd did not start');
  let exited = false;
  child.once('exit', () => (exited = true));
  try {
    await waitForPort(port, Date.now() + 10_000);
  } catch (e) {
    const text = await readFile(log, 'utf8').catch(() => '');
    throw new Error(`${(e as Error).message}\n${text}`);
  }
  return {
    address: '127.0.0.1',
    port,
    user: 'root',
    identityFile: clientKey,
    hostKey: await fingerprintOf(`${hostKey}.pub`),
    pid,
    dir,
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      process.kill(pid, 'SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (!exited) process.kill(pid, 'SIGKILL');
    },
  };
}
