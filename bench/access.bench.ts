/**
 * The real-lab access paths on emu-mini: an IPMI power cycle (ipmitool lanplus → ipmi_sim →
 * QEMU stopped and started again) until SSH answers with a new boot_id, and the console shell
 * over IPMI Serial-over-LAN beside the same host's pty console (100 commands each, ms per
 * command). Takes the QEMU slot; brings emu-mini up twice in a private run dir.
 * Run: npx tsx bench/access.bench.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, QEMU_SLOT_LOCK } from '../drivers/proc.js';
import { parseLab } from '../targets/config.js';
import { emulatedLab, labDown, labUp } from '../targets/emulated/lab.js';
import { Host } from '../targets/host.js';

const COMMANDS = 100;
const CYCLES = 3;
const release = await acquireLock(QEMU_SLOT_LOCK, { timeoutMs: 60 * 60_000, what: 'access bench waiting for the QEMU slot' });
const runDir = await mkdtemp(join(tmpdir(), 'labrig-bench-access-'));
const port = 32000 + Math.floor(Math.random() * 8000);

async function consoleMs(host: Host): Promise<number> {
  const shell = await host.consoleShell(180_000);
  for (let i = 0; i < 5; i++) await shell.run('true', { timeoutMs: 60_000 });
  const t0 = performance.now();
  for (let i = 0; i < COMMANDS; i++) {
    const r = await shell.run(`echo v-${i}; (exit ${i % 5})`, { timeoutMs: 60_000 });
    if (r.code !== i % 5 || !r.stdout.includes(`v-${i}`))
      throw new Error(`command ${i}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}`);
  }
  return (performance.now() - t0) / COMMANDS;
}

const up = async (access: 'bmc' | 'pty') => {
  await labUp({ runDir, hosts: ['emu-mini'], ports: { 'emu-mini': port }, access: { 'emu-mini': access } });
  return new Host(parseLab(emulatedLab({ runDir })).hosts.find((h) => h.name === 'emu-mini')!, { logDir: join(runDir, `logs-${access}`) });
};

const out: Record<string, unknown> = {};
try {
  const bmcHost = await up('bmc');
  out.solMsPerCommand = Math.round((await consoleMs(bmcHost)) * 10) / 10;
  await bmcHost.close();
  const cycles: { cycleMs: number; sshBackMs: number }[] = [];
  for (let i = 0; i < CYCLES; i++) {
    const before = await bmcHost.bootId();
    await bmcHost.close();
    const t0 = performance.now();
    await bmcHost.power!.cycle();
    const cycleMs = performance.now() - t0;
    const back = await bmcHost.waitForReturn(before, 300_000);
    if (back.bootId === before) throw new Error('boot_id did not change');
    cycles.push({ cycleMs: Math.round(cycleMs), sshBackMs: Math.round(performance.now() - t0) });
  }
  out.ipmiCycles = cycles;
  await bmcHost.close();
  await labDown({ runDir });
  const ptyHost = await up('pty');
  out.ptyMsPerCommand = Math.round((await consoleMs(ptyHost)) * 10) / 10;
  await ptyHost.close();
  console.log(JSON.stringify(out, null, 2));
} finally {
  await labDown({ runDir }).catch(() => undefined);
  await rm(runDir, { recursive: true, force: true });
  await release();
}
