/** A throwaway real sshd for one test file, and the SshConfig that reaches it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SshConfig, sshOptionsSchema } from '../../drivers/ssh-options.js';
import { type SshdHandle, startSshd } from '../../targets/emulated/sshd.js';

export async function testSshd(extraConfig: string[] = []): Promise<{ sshd: SshdHandle; config: SshConfig; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-sshd-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const sshd = await startSshd({ dir, port, extraConfig });
  const config = sshOptionsSchema.parse({
    address: sshd.address,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    hostKey: sshd.hostKey,
  });
  return {
    sshd,
    config,
    async cleanup() {
      await sshd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** PIDs whose parent is `pid` (from /proc: processes we started, found without name patterns). */
export async function childrenOf(pid: number): Promise<number[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(entry));
  }
  return out;
}

/**
 * Shell text that prints "alive" or "gone" for the pid in `pidFile`, then removes the file.
 * A killed process may stay a zombie until init reaps it (seconds, on these machines): gone.
 */
export function aliveCheck(pidFile: string): string {
  return `st=$(sed 's/.*) //' /proc/$(cat ${pidFile})/stat 2>/dev/null | cut -c1); rm -f ${pidFile}; [ -n "$st" ] && [ "$st" != Z ] && echo alive || echo gone`;
}
