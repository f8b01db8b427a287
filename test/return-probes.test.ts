/**
 * Waiting for a host to return, on the real sshd behind a relay that plays the network while
 * the host is away: its first connections are accepted and never answered (QEMU's user network
 * does that for a guest that is rebooting: 11 such waits in 15 emu-xen reboots), later ones reach sshd.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Host } from '../targets/host.js';
import { hostSchema } from '../targets/schema.js';
import { testSshd } from './helpers/sshd.js';

let env: Awaited<ReturnType<typeof testSshd>>;
let root: string;

test.beforeAll(async () => {
  env = await testSshd();
  root = await mkdtemp(join(tmpdir(), 'labrig-return-'));
});
test.afterAll(async () => {
  await env?.cleanup();
  if (root) await rm(root, { recursive: true, force: true });
});

/** The first `silent` connections are held open and unanswered; the rest are relayed to sshd. */
async function relay(silent: number): Promise<{ server: Server; port: number; held: Socket[]; connections: () => number }> {
  let n = 0;
  const held: Socket[] = [];
  const server = createServer((client) => {
    client.on('error', () => undefined);
    if (++n <= silent) return void held.push(client);
    const upstream = netConnect(env.config.port, '127.0.0.1');
    upstream.on('error', () => undefined);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, held, connections: () => n };
}

test('probes stuck in their handshakes do not hold up seeing the host back, however many', async () => {
  // 5: more than a fixed cap of 4 probes, which left no slot free until the oldest timed out.
  const r = await relay(5);
  const config = hostSchema.parse({
    name: 'returning',
    role: 'local',
    ssh: { ...env.config, port: r.port, connectTimeoutMs: 120_000 },
    expect: { arch: 'x86_64' },
  });
  const host = new Host(config, { logDir: root });
  try {
    // The local boot_id cannot change: a stale previous id stands for the old boot.
    const back = await host.waitForReturn('boot-before-the-simulated-reboot', 300_000);
    expect(r.held.length, 'every unanswered connection was tried').toBe(5);
    expect(
      r.held.every((s) => !s.destroyed),
      'the stuck probes were still waiting when the host was seen back',
    ).toBe(true);
    expect(r.connections(), 'a later probe reached sshd').toBeGreaterThanOrEqual(6);
    // One probe at a time would have waited out the stuck handshakes' 120 s timeouts.
    expect(back.ms, `back in ${back.ms} ms`).toBeLessThan(60_000);
    expect((await host.run('echo usable')).stdout).toBe('usable\n');
  } finally {
    await host.close();
    host.ssh.close();
    for (const s of r.held) s.destroy();
    r.server.close();
  }
});
