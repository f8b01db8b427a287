/**
 * kexec a host into another installed kernel, proven the way a reboot is: SSH answers again
 * with a new boot_id, and `uname -r` is the kernel asked for. A host that does not come back
 * is seen on its console (tail attached) and power-cycled back to life — the next suite finds it
 * usable. Its console decides whose failure it was: the new kernel's banner, then nothing, is the
 * product's (did-not-boot); a silent console is the lab's (did-not-return). (A `Host.kexec()`
 * method would delegate here.)
 */
import { isLabError, LabError, ProductError } from '../drivers/errors.js';
import { type Recorder, silentRecorder } from '../drivers/recorder.js';
import { shellQuote } from '../drivers/ssh.js';
import type { Host } from './host.js';
import { type InstalledKernel, installedKernels, KERNEL_LISTING_SCRIPT } from './kernel-names.js';

export { type InstalledKernel, installedKernels } from './kernel-names.js';

/** The kernel to kexec into: the one asked for, else the first installed one that is not running. */
export function chooseKexecTarget(installed: readonly InstalledKernel[], running: string, wanted?: string): InstalledKernel {
  const list = installed.map((k) => k.version).join(', ') || 'none';
  if (wanted) {
    const k = installed.find((i) => i.version === wanted);
    if (!k) throw new LabError('config', `kexec target ${wanted} is not installed in /boot (installed: ${list})`);
    return k;
  }
  const other = installed.find((i) => i.version !== running);
  if (!other) throw new LabError('config', `no installed kernel other than the running ${running} to kexec into (installed: ${list})`);
  return other;
}

export interface KexecOptions {
  /** `uname -r` of the kernel to boot; default: chooseKexecTarget(). */
  kernel?: string;
  /** The new kernel's command line; default: the running one (--reuse-cmdline, as in seed 003). */
  commandLine?: string;
  /** kexec -e → SSH with a new boot_id; default: the host's returnTimeoutMs. */
  timeoutMs?: number;
  recorder?: Recorder;
}

export interface KexecResult {
  from: string;
  to: string;
  bootIdBefore: string;
  bootIdAfter: string;
  /** From the moment `kexec -e` runs to SSH answering with a new boot_id. */
  kexecMs: number;
}

const GO = 'labrig-kexec-e-now';

export async function kexecInto(host: Host, opts: KexecOptions = {}): Promise<KexecResult> {
  const rec = opts.recorder ?? silentRecorder;
  const from = (await host.run('uname -r', { check: true })).stdout.trim();
  const bootIdBefore = await host.bootId();
  const installed = installedKernels((await host.run(KERNEL_LISTING_SCRIPT, { check: true })).stdout);
  const target = chooseKexecTarget(installed, from, opts.kernel);
  const timeoutMs = opts.timeoutMs ?? host.config.returnTimeoutMs;

  await rec.step(`kexec -l ${target.version}`, { from, image: target.image, initrd: target.initrd ?? 'none' }, async () => {
    const initrd = target.initrd ? ` --initrd=${shellQuote(target.initrd)}` : '';
    const cmdline = opts.commandLine === undefined ? ' --reuse-cmdline' : ` --command-line=${shellQuote(opts.commandLine)}`;
    const r = await host.run(`kexec -l ${shellQuote(target.image)}${initrd}${cmdline}`, { timeoutMs: 120_000 });
    if (r.code !== 0)
      throw new ProductError('command-failed', `kexec -l ${target.image} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`, {
        host: host.name,
      });
  });

  // The lease reserves itself before the holder dies with the old kernel (sync below keeps it).
  await host.announceTransition(timeoutMs);
  const t0 = await rec.step('sync; kexec -e', { host: host.name }, async () => {
    // kexec -e does not sync (FIELD-NOTES). The marker says the shell reached kexec; the
    // connection then dies with the kernel, so this channel is never waited on again.
    const stream = await host.ssh.openCommand(`sync && echo ${GO} && exec kexec -e`);
    const said = await new Promise<boolean>((resolve) => {
      let out = '';
      const timer = setTimeout(() => resolve(false), 60_000);
      stream.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes(GO)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      stream.stdout.once('close', () => {
        clearTimeout(timer);
        resolve(out.includes(GO));
      });
    });
    if (!said) throw new LabError('unreachable', 'the kexec -e command did not start (no marker within 60 s)', { host: host.name });
    return performance.now();
  });

  let bootIdAfter: string;
  try {
    bootIdAfter = (await host.waitForReturn(bootIdBefore, timeoutMs)).bootId;
  } catch (e) {
    await recoverByPowerCycle(host, bootIdBefore, rec, e);
    throw e;
  }
  const kexecMs = Math.round(performance.now() - t0);
  const to = (await host.run('uname -r', { check: true })).stdout.trim();
  if (to !== target.version)
    throw new ProductError('mismatch', `kexec into ${target.version} came back running ${to} (from ${from})`, { host: host.name });
  return { from, to, bootIdBefore, bootIdAfter, kexecMs };
}

/**
 * After a failed return: the console's last lines as evidence, then a power cycle and a wait
 * for a new boot_id, so the host is usable again. The caller rethrows the original failure.
 */
export async function recoverByPowerCycle(host: Host, bootIdBefore: string, rec: Recorder, cause: unknown): Promise<void> {
  await rec.step('recover: console tail, power cycle', { host: host.name }, async () => {
    const console = host.config.console ? await host.console().catch(() => undefined) : undefined;
    if (console) await rec.attach(`console-tail-${host.name}.txt`, console.tail(80), 'text/plain');
    await rec.attach('failure.txt', String(cause instanceof Error ? cause.message : cause), 'text/plain');
    if (!host.power) {
      rec.log(`${host.name}: no power controller: the host stays as it is (${isLabError(cause) ? 'lab' : 'product'} failure)`);
      return;
    }
    await host.power.cycle();
    const back = await host.waitForReturn(bootIdBefore);
    // The host is back with a fresh boot: lift the mark waitForReturn set when it gave up.
    host.broken = undefined;
    rec.log(`${host.name}: power-cycled and back (boot_id ${back.bootId}, ${back.ms} ms)`);
  });
}
