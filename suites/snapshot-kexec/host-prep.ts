/**
 * Host preparation for seed 003, checked rather than assumed: where the pmem comes from
 * (`memmap=` or an NVDIMM region), which modes this kernel can give it (devdax needs the
 * dax_pmem driver, fsdax nd_pmem), whether QEMU takes `pmem=on` (libpmem), the tools, and the
 * kernels kexec can choose from. Then each mode's namespace: `ndctl create-namespace -f -e
 * <ns> --mode devdax|fsdax --map mem`, fsdax with ext4 mounted `-o dax`.
 */
import { LabError, ProductError } from '../../drivers/errors.js';
import { shellQuote } from '../../drivers/ssh.js';
import type { Host } from '../../targets/host.js';
import { type InstalledKernel, installedKernels } from '../../targets/kexec.js';
import type { PmemMode } from './guest.js';
import { pinMachine, probeQemu, type QemuFacts, resolveQemuPath } from './qemu-check.js';

export interface NdNamespace {
  dev: string;
  mode: string;
  size: number;
  chardev?: string;
  blockdev?: string;
  align?: number;
}

export interface NdRegion {
  dev: string;
  size: number;
  namespaces: NdNamespace[];
}

/** `ndctl list -RN` (an array of regions, or `{regions: […]}` when there are several kinds). */
export function parseNdctlRegions(json: string): NdRegion[] {
  if (!json.trim()) return [];
  const parsed = JSON.parse(json) as unknown;
  const regions = (Array.isArray(parsed) ? parsed : ((parsed as { regions?: unknown[] }).regions ?? [parsed])) as Partial<NdRegion>[];
  return regions
    .filter((r) => typeof r.dev === 'string')
    .map((r) => ({ dev: r.dev!, size: Number(r.size ?? 0), namespaces: r.namespaces ?? [] }));
}

/** The `memmap=<size>!<offset>` reservations of a kernel command line. */
export function memmapPmem(cmdline: string): string[] {
  return cmdline.split(/\s+/).filter((a) => /^memmap=[0-9]+[KMG]?![0-9]+[KMG]?$/i.test(a));
}

/** The namespace `ndctl create-namespace` printed, as JSON. */
export function parseCreatedNamespace(json: string): NdNamespace {
  const ns = JSON.parse(json) as NdNamespace & { daxregion?: { devices?: { chardev: string }[] } };
  return { ...ns, chardev: ns.chardev ?? ns.daxregion?.devices?.[0]?.chardev };
}

export interface HostPrep {
  pmemSource: string;
  regions: NdRegion[];
  modes: Record<PmemMode, { ok: true } | { ok: false; reason: string }>;
  /** The QEMU that starts and saves the guest, and the one that restores it (the same one unless restoreQemu). */
  qemu: QemuFacts;
  restoreQemu: QemuFacts;
  /** The versioned machine type both start the guest with (q35 pinned on the saving QEMU). */
  machine: string;
  accel: 'kvm' | 'tcg';
  running: string;
  kernels: InstalledKernel[];
}

const TOOLS = ['ndctl', 'kexec', 'qemu-img', 'mkfs.ext4', 'sync'];

export async function inspectHost(
  host: Host,
  o: { qemu: string; restoreQemu?: string; machine: string; accel: 'kvm' | 'tcg'; workDir: string },
): Promise<HostPrep> {
  const run = async (cmd: string, timeoutMs = 60_000) => host.run(cmd, { timeoutMs });
  const missing = (
    await run(`for t in ${[...TOOLS, o.qemu].map(shellQuote).join(' ')}; do command -v "$t" >/dev/null || echo "$t"; done`)
  ).stdout.trim();
  if (missing)
    throw new LabError('config', `the host lacks ${missing.split('\n').join(', ')} (seed 003 needs ndctl, kexec-tools, QEMU)`, {
      host: host.name,
    });

  const cmdline = (await host.read('/proc/cmdline')).trim();
  const regions = parseNdctlRegions((await run('ndctl list -RN')).stdout);
  const memmap = memmapPmem(cmdline);
  const pmemSource = memmap.length ? memmap.join(' ') : regions.length ? `NVDIMM region ${regions.map((r) => r.dev).join(', ')}` : '';
  const drivers = (await run('ls /sys/bus/nd/drivers 2>/dev/null')).stdout.split(/\s+/);
  const modes: HostPrep['modes'] = {
    devdax: drivers.includes('dax_pmem')
      ? { ok: true }
      : {
          ok: false,
          reason: `kernel ${(await run('uname -r')).stdout.trim()} has no dax_pmem driver (/sys/bus/nd/drivers: ${drivers.join(' ') || 'none'})`,
        },
    fsdax: drivers.includes('nd_pmem')
      ? { ok: true }
      : { ok: false, reason: `no nd_pmem driver (/sys/bus/nd/drivers: ${drivers.join(' ') || 'none'})` },
  };

  const qemu = await probeQemu(host, o.qemu, o.workDir);
  const restorePath = o.restoreQemu ? await resolveQemuPath(host, o.restoreQemu, o.qemu) : o.qemu;
  const restoreQemu = restorePath === o.qemu ? qemu : await probeQemu(host, restorePath, o.workDir);
  const machine = pinMachine(qemu.machines, o.machine, o.qemu);
  const accel = o.accel;
  const running = (await run('uname -r')).stdout.trim();
  const kernels = installedKernels((await run('ls -1 /boot')).stdout);
  return { pmemSource, regions, modes, qemu, restoreQemu, machine, accel, running, kernels };
}

export async function namespaceOf(host: Host, ns: string): Promise<NdNamespace | undefined> {
  const regions = parseNdctlRegions((await host.run('ndctl list -RN', { timeoutMs: 60_000 })).stdout);
  return regions.flatMap((r) => r.namespaces).find((n) => n.dev === ns);
}

/** Puts `ns` into `mode` (left as it is when it already is) and returns it. */
export async function configureNamespace(host: Host, ns: string, mode: PmemMode, fsdaxMount: string): Promise<NdNamespace> {
  const current = await namespaceOf(host, ns);
  if (!current) throw new LabError('config', `no pmem namespace ${ns} on the host (ndctl list -N)`, { host: host.name });
  if (current.mode === mode) return current;
  // A namespace in use cannot be reconfigured: the fsdax filesystem goes first.
  await host.run(`umount ${shellQuote(fsdaxMount)} 2>/dev/null; true`);
  const r = await host.run(`ndctl create-namespace -f -e ${shellQuote(ns)} --mode ${mode} --map mem`, { timeoutMs: 180_000 });
  if (r.code !== 0)
    throw new ProductError(
      'command-failed',
      `ndctl create-namespace --mode ${mode} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`,
      { host: host.name },
    );
  return parseCreatedNamespace(r.stdout);
}

/** The fsdax filesystem: made when the device has none, mounted -o dax (again after a kexec). */
export async function mountFsdax(host: Host, blockdev: string, mount: string, mkfs: boolean): Promise<void> {
  const dev = `/dev/${blockdev}`;
  const mounted = await host.run(`grep -E ${shellQuote(`^${dev} ${mount} `)} /proc/mounts`);
  if (mounted.code === 0) return;
  if (mkfs) await host.run(`mkfs.ext4 -q -F -b 4096 ${dev}`, { check: true, timeoutMs: 300_000 });
  await host.run(`mkdir -p ${shellQuote(mount)} && mount -o dax ${dev} ${shellQuote(mount)}`, { check: true, timeoutMs: 60_000 });
  const opts = (await host.run(`grep -E ${shellQuote(`^${dev} ${mount} `)} /proc/mounts`, { check: true })).stdout;
  if (!/[ ,]dax(=always)?[ ,]/.test(opts))
    throw new ProductError('mismatch', `${dev} is mounted on ${mount} without dax: ${opts.trim()}`, { host: host.name });
}
