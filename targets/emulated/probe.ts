/**
 * Is a lab host answering? Plain OpenSSH with the pinned key (StrictHostKeyChecking=yes
 * against a known_hosts we generate), so bring-up proves exactly what a run relies on. A
 * TCP connect alone proves nothing here: QEMU's host forward accepts before the guest does.
 */

import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { LabError } from '../../drivers/errors.js';
import { runLocal } from '../../drivers/local.js';

export interface SshTarget {
  address: string;
  port: number;
  user: string;
  identityFile: string;
  knownHosts: string;
}

/** One known_hosts line per host: `[addr]:port <public key>`. */
export async function writeKnownHosts(
  path: string,
  entries: readonly { address: string; port: number; publicKey: string }[],
): Promise<void> {
  const lines = entries.map((e) => `[${e.address}]:${e.port} ${e.publicKey.split(/\s+/).slice(0, 2).join(' ')}`);
  await writeFile(path, `${lines.join('\n')}\n`, { mode: 0o600 });
}

export function sshArgv(t: SshTarget, command: string, connectTimeoutS = 5): string[] {
  return [
    'ssh',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${t.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    `ConnectTimeout=${connectTimeoutS}`,
    '-o',
    'IdentitiesOnly=yes',
    '-i',
    t.identityFile,
    '-p',
    String(t.port),
    `${t.user}@${t.address}`,
    command,
  ];
}

/** The host's boot_id over SSH, or the reason it could not be read. */
export async function sshBootId(t: SshTarget, timeoutMs = 20_000): Promise<{ ok: true; bootId: string } | { ok: false; reason: string }> {
  try {
    const r = await runLocal(sshArgv(t, 'cat /proc/sys/kernel/random/boot_id'), { timeoutMs, check: false });
    const bootId = r.stdout.trim();
    if (r.code === 0 && /^[0-9a-f-]{36}$/.test(bootId)) return { ok: true, bootId };
    return { ok: false, reason: `ssh exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}` };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

export async function waitForSsh(host: string, t: SshTarget, timeoutMs: number, stillAlive: () => boolean): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not tried';
  while (Date.now() < deadline) {
    const r = await sshBootId(t, Math.max(1000, Math.min(20_000, deadline - Date.now())));
    if (r.ok) return r.bootId;
    last = r.reason;
    if (!stillAlive()) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new LabError('unreachable', `SSH on ${t.address}:${t.port} did not answer within ${timeoutMs} ms (last: ${last})`, { host });
}

/** A port someone else holds would make our check talk to their server: refuse early. */
export async function assertPortFree(host: string, port: number, address = '127.0.0.1'): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
  if (!free) throw new LabError('lab-setup', `port ${address}:${port} is already in use by a process that is not this lab's`, { host });
}
