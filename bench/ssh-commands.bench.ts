/**
 * Sequential small commands against one local OpenSSH sshd, four ways:
 *   ssh spawned per command · OpenSSH ControlMaster (labgrid's way) · our exec (one ssh2
 *   connection, a channel per command) · our Host.run (a persistent sh with nonce markers).
 * Run: npx tsx bench/ssh-commands.bench.ts [--json]
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startSshd } from '../targets/emulated/sshd.js';
import { Host } from '../targets/host.js';
import { hostSchema } from '../targets/schema.js';

async function timeEach(n: number, body: () => Promise<unknown>): Promise<number> {
  await body(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await body();
  return (performance.now() - t0) / n;
}

const dir = await mkdtemp(join(tmpdir(), 'labrig-bench-'));
const sshd = await startSshd({ dir, port: 20000 + Math.floor(Math.random() * 20000) });
const knownHosts = join(dir, 'known_hosts');
await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${(await readFile(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8')).trim()}\n`);
const sshArgs = [
  '-i',
  sshd.identityFile,
  '-p',
  String(sshd.port),
  '-o',
  `UserKnownHostsFile=${knownHosts}`,
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  'BatchMode=yes',
];
const control = join(dir, 'cm');
const host = new Host(
  hostSchema.parse({
    name: 'local',
    role: 'local',
    ssh: { address: '127.0.0.1', port: sshd.port, identityFile: sshd.identityFile, hostKey: sshd.hostKey },
    expect: { arch: 'x86_64' },
  }),
  { logDir: dir },
);
try {
  const spawnMs = await timeEach(20, () => execa('ssh', [...sshArgs, 'root@127.0.0.1', 'true']));
  const cmArgs = [...sshArgs, '-o', 'ControlMaster=auto', '-o', `ControlPath=${control}`, '-o', 'ControlPersist=60'];
  const controlMasterMs = await timeEach(50, () => execa('ssh', [...cmArgs, 'root@127.0.0.1', 'true']));
  await execa('ssh', [...cmArgs, '-O', 'exit', 'root@127.0.0.1'], { reject: false });
  const execMs = await timeEach(50, () => host.exec('true'));
  const runMs = await timeEach(1000, () => host.run('true'));
  const result = {
    commands: 'sequential `true`',
    sshSpawnMs: +spawnMs.toFixed(1),
    controlMasterMs: +controlMasterMs.toFixed(1),
    execMs: +execMs.toFixed(1),
    hostRunMs: +runMs.toFixed(3),
    hostRunVsControlMaster: +(controlMasterMs / runMs).toFixed(0),
    execVsControlMaster: +(controlMasterMs / execMs).toFixed(2),
  };
  process.stdout.write(
    process.argv.includes('--json')
      ? `${JSON.stringify(result)}\n`
      : `${Object.entries(result)
          .map(([k, v]) => `${k.padEnd(24)} ${v}`)
          .join('\n')}\n`,
  );
} finally {
  await host.close();
  await sshd.stop();
  await rm(dir, { recursive: true, force: true });
}
