/**
 * How soon waitForReturn() notices a host that answers SSH again: sshd is stopped, started
 * again, and we measure from the moment it accepts TCP (a 2 ms probe) to waitForReturn
 * resolving. (The local machine's boot_id cannot change, so the previous id given is a
 * stale one; the SSH handshake and the boot_id read are inside the figure.)
 * Run: npx tsx bench/wait-for-return.bench.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSshd } from '../targets/emulated/sshd.js';
import { Host } from '../targets/host.js';
import { hostSchema } from '../targets/schema.js';

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });

const dir = await mkdtemp(join(tmpdir(), 'labrig-bench-'));
const port = 20000 + Math.floor(Math.random() * 20000);
let sshd = await startSshd({ dir, port });
const host = new Host(
  hostSchema.parse({
    name: 'local',
    role: 'local',
    ssh: { address: '127.0.0.1', port, identityFile: sshd.identityFile, hostKey: sshd.hostKey },
    expect: { arch: 'x86_64' },
  }),
  { logDir: dir },
);
const samples: number[] = [];
try {
  for (let i = 0; i < 5; i++) {
    await sshd.stop();
    const waiting = host.waitForReturn('stale-boot-id', 30_000);
    await new Promise((r) => setTimeout(r, 700));
    const restarted = startSshd({ dir, port });
    while (!(await accepts(port))) await new Promise((r) => setTimeout(r, 2));
    const tAccept = performance.now();
    await waiting;
    samples.push(performance.now() - tAccept);
    sshd = await restarted;
  }
  const sorted = [...samples].sort((a, b) => a - b);
  process.stdout.write(
    `waitForReturn after sshd accepts: median ${sorted[2]!.toFixed(0)} ms, max ${sorted[4]!.toFixed(0)} ms (samples ${samples.map((s) => s.toFixed(0)).join(', ')})\n`,
  );
} finally {
  await host.close();
  await sshd.stop();
  await rm(dir, { recursive: true, force: true });
}
