/**
 * `labrig console <host>`: the console on this terminal, raw, until Ctrl-]. It takes the host's
 * lease first, so it never steals a console a run is using: a held lease is refused, naming
 * the holder. A host that does not answer SSH holds no lease (the holder dies with its
 * connection), and that is exactly when a console is needed: it attaches with a warning.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from '../drivers/errors.js';
import { silentRecorder } from '../drivers/recorder.js';
import { Host } from '../targets/host.js';
import { acquireLease, type Lease } from '../targets/lease.js';
import type { Lab } from '../targets/schema.js';
import { pickHost } from './host-args.js';

const DETACH = 0x1d; // Ctrl-]

async function takeLease(host: Host, lab: Lab): Promise<Lease | undefined> {
  try {
    return await acquireLease(host.ssh, { ...lab.lease, waitMs: 0, runId: 'labrig-console', recorder: silentRecorder });
  } catch (e) {
    if (!(e instanceof LabError) || e.kind !== 'unreachable') throw e;
    process.stderr.write(`labrig console: cannot take the lease of ${host.name} (${e.message.split('\n')[0]}); attaching without it\n`);
    return undefined;
  }
}

export async function attachConsole(lab: Lab, name: string): Promise<number> {
  const config = pickHost(lab, name);
  if (!config.console) throw new LabError('lab-setup', `host ${name} has no console in the lab config (hosts.${name}.console)`);
  // A folder of our own (0700, unpredictable name): the session's log is kept there for the user.
  const host = new Host(config, { logDir: await mkdtemp(join(tmpdir(), 'labrig-console-')) });
  let lease: Lease | undefined;
  try {
    lease = await takeLease(host, lab);
    const console = await host.console();
    process.stderr.write(`labrig: attached to ${name} (${console.where}); log ${console.logPath}; detach with Ctrl-]\n`);
    const stop = console.onBytes((chunk) => process.stdout.write(chunk));
    const stdin = process.stdin;
    if (stdin.isTTY) stdin.setRawMode(true);
    await new Promise<void>((resolve) => {
      stdin.on('data', (d: Buffer) => {
        const i = d.indexOf(DETACH);
        if (i >= 0) {
          if (i > 0) void console.write(d.subarray(0, i));
          resolve();
        } else void console.write(d);
      });
      stdin.once('end', () => resolve());
    });
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
    stop();
    process.stderr.write('\nlabrig: detached\n');
    return 0;
  } finally {
    await lease?.release();
    await host.close();
  }
}
