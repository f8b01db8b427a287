/**
 * Seed 003's whole point as one number: the VM blackout of snapshot → kexec → restore
 * (stop → running again after loadvm) against a cold boot of the same guest on the same host,
 * both measured in this run. Runs one cycle on the lab's x86-pmem host (the lab must be up:
 * `npx labrig lab up`), in the first pmem mode the host supports, and leaves the host on the
 * other kernel (the suite works from whichever kernel runs).
 * Run: npx tsx bench/snapshot-kexec.bench.ts [host]
 * On the emulated lab 7.2 saves and 10.0 restores; the same QEMU both ways:
 *   LABRIG_EMU_RESTORE_QEMU=same npx tsx bench/snapshot-kexec.bench.ts
 */
import { consoleRecorder } from '../drivers/recorder.js';
import { inspectHost } from '../suites/snapshot-kexec/host-prep.js';
import { describePass } from '../suites/snapshot-kexec/marker.js';
import { coldBootOn, paramsOf, prepareMode, requirePmemOn, saveKexecRestore, uploadGuest } from '../suites/snapshot-kexec/procedure.js';
import { hostAccel } from '../targets/accel.js';
import { loadLab } from '../targets/config.js';
import { Host } from '../targets/host.js';
import { acquireLease } from '../targets/lease.js';
import { logsDirOf, runContext } from '../targets/run-context.js';

const lab = await loadLab();
const wanted = process.argv[2];
const config = lab.hosts.find((h) => (wanted ? h.name === wanted : h.role.includes('x86-pmem')));
if (!config) throw new Error(`no ${wanted ?? 'x86-pmem'} host in lab ${lab.name}`);
const rec = consoleRecorder(`[${config.name}] `);
const { runId } = runContext();
const host = new Host(config, { logDir: logsDirOf(runContext()), recorder: rec });
const lease = await acquireLease(host, { ...lab.lease, runId, recorder: rec });
const p = paramsOf(host);
let stop: (() => Promise<void>) | undefined;
try {
  const prep = await inspectHost(host, {
    qemu: p.qemu,
    restoreQemu: p.restoreQemu,
    machine: p.machine,
    accel: (await hostAccel(host)).accel,
    workDir: p.workDir,
  });
  requirePmemOn(host, p, prep);
  const mode = p.modes.find((m) => prep.modes[m].ok);
  if (!mode) throw new Error(`${config.name}: none of ${p.modes.join(', ')} is usable`);
  const files = await uploadGuest(host, p, prep.running);
  const backing = await prepareMode(host, rec, p, mode);
  const guest = await coldBootOn(host, rec, p, prep, files, backing);
  stop = () => guest.stop();
  const r = await saveKexecRestore(host, rec, p, guest, backing);
  const ok = !r.restoreError && r.verdict?.ok;
  const ratio = r.blackoutMs / guest.coldBootMs;
  process.stdout.write(
    [
      `${config.name} (${prep.accel}, ${prep.machine}, ${mode}, guest ${p.guest.memoryMiB} MiB on pmem, pattern ${p.guest.patternMiB} MiB):`,
      `  saving QEMU ${prep.qemu.version}; restoring QEMU ${prep.restoreQemu.binary}: ${prep.restoreQemu.version}`,
      `  cold boot (QEMU start → first marker)  ${guest.coldBootMs} ms`,
      `  vm blackout (stop → running)           ${r.blackoutMs} ms   ratio ${ratio.toFixed(3)}`,
      `    savevm ${r.save.savevmMs} ms, VM state ${r.save.vmStateBytes} B, kexec ${r.kernelBefore} → ${r.kernelAfter} ${r.kexecMs} ms`,
      `  stop → first marker after the restore  ${r.resumeMarkerMs ?? '-'} ms`,
      `  restore verified: ${ok ? 'yes' : `NO: ${r.restoreError?.message ?? r.verdict?.problems.join('; ')}`}`,
      `  pattern after the restore: ${r.verdict?.passAfter ? describePass(r.verdict.passAfter, p.guest.patternMiB) : '-'}`,
      '',
    ].join('\n'),
  );
  if (!ok) process.exitCode = 1;
} finally {
  await stop?.().catch(() => undefined);
  await host.close();
  await lease.release();
  host.ssh.close();
}
