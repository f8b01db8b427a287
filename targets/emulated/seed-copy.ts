/**
 * The seeds' lab config (labs/seed-lab.config.ts, written for real hardware) onto the running
 * emulated lab: each seed host is reached at the emulated host of its role (its SSH address,
 * port, host key and identity, its console and power), and everything else stays the seed's.
 * What the emulated host physically cannot do is overridden HERE and only here, each override
 * with its reason; `apply` reports every one that changed a value, so none is silent.
 * `labrig localize <config> --onto-emulated` writes the copy; test/seed-copy.test.ts runs it.
 */
import { LabError } from '../../drivers/errors.js';
import type { HostConfig, Lab, Role } from '../schema.js';

/** The emulated host standing in for a seed host of this role. */
export const EMULATED_BY_ROLE: Record<Exclude<Role, 'local'>, string> = {
  'arm64-armhf': 'emu-arm64',
  'arm64-kunpeng': 'emu-arm64',
  'x86-pmem': 'emu-x86-pmem',
  'x86-xen': 'emu-xen',
};

export interface Override {
  host: string;
  /** Path in the host's config, as in the lab config (`suites.pcieRootPorts.cpu`). */
  field: string;
  seed: unknown;
  copy: unknown;
  why: string;
}

type Rule = {
  field: string;
  why: string;
  /** The copy's value (undefined: the field is dropped); default: the emulated host's own value of the field. */
  value?: (seed: HostConfig, emulated: HostConfig) => unknown;
};

/** Where the copy reaches each host: the point of the copy, not a deviation from the seed's suites. */
const ACCESS: Rule[] = [
  { field: 'ssh', why: "the emulated host's SSH: address, port, pinned host key, the lab's client key" },
  {
    field: 'console',
    why: "the emulated host's console (emu-xen: ser2net telnet as the seed's console server; emu-x86-pmem: its serial pty; emu-arm64, this machine: none)",
  },
  { field: 'power', why: "the emulated host's power (QMP; emu-arm64, this machine, has none)" },
];

/** What the emulated hosts physically cannot do as the seed hosts do. Nothing else differs from the seed. */
const OVERRIDES: Rule[] = [
  {
    field: 'accel',
    why: 'KVM asked (or auto): the emulated hosts have no usable KVM (TCG VMs, and arm guests on an x86 runner), so their guests run under TCG',
  },
  { field: 'expect.arch', why: 'emu-arm64 is this x86_64 runner running arm guests under TCG' },
  {
    field: 'expect.features',
    why: 'kvm dropped: no emulated host has a usable /dev/kvm (the suites then read domcapabilities and run guests as TCG)',
    value: (s) => s.expect.features.filter((f) => f !== 'kvm'),
  },
  { field: 'expect.absent', why: 'what the emulated host declares absent (kvm on the VM hosts) is checked absent' },
  { field: 'expect.cpuMhz', why: "the Kunpeng's 2600 MHz: the runner's dmidecode reports its own CPU" },
  { field: 'expect.versions', why: "the Kunpeng's qemu 2.12 / libvirt 4.5 (CentOS 7.6): the runner has Debian 12's" },
  {
    field: 'suites.armhfKernelUpgrade.guest',
    why: "the seed's prepared disk and installer kernel are files on the MP30-AR1, and its upgradeCommand runs apt-get against Debian's mirror, which nothing here may reach: the images layer's armhf-guest recipe (Debian armhf packages, built on the runner) with its two kernels instead",
  },
  { field: 'suites.armhfKernelUpgrade.restartLibvirtd', why: 'no systemd on this runner: libvirtd is restarted by its pid file' },
  { field: 'suites.pcieRootPorts.cpu', why: 'host-passthrough needs KVM: under TCG domcapabilities offers custom models (cortex-a57)' },
  {
    field: 'suites.pcieRootPorts.firmware',
    why: "the seed's edk2.git build is on the Kunpeng only: Debian's AAVMF (qemu-efi-aarch64) on the runner",
  },
  {
    field: 'suites.snapshotKexec.qemu',
    why: "the seed's own QEMU build (/usr/local/bin) is on the seed host only: the emulated host's Debian QEMU (built with libpmem)",
  },
  {
    field: 'suites.snapshotKexec.guest',
    why: "nested TCG: the images layer's staged guest kernel (pmem-guest-kernel.ts) and its command line (acpi=off, no crypto self-tests)",
  },
  { field: 'suites.snapshotKexec.timeoutsMs', why: 'a nested TCG guest boots and verifies its pattern 10-50x slower than under KVM' },
  ...(['dom0Mem', 'dom0MaxVcpus', 'console', 'com1', 'loglvl', 'guestLoglvl'] as const).map(
    (k): Rule => ({
      field: `suites.xen.${k}`,
      why: "the emulated Xen's command line is built into its image (EMU_XEN_BOOT: a 1-vCPU, 1 GiB VM) and the suite checks the settings against what Xen booted with",
    }),
  ),
  {
    field: 'suites.xen.pvGuest.kernel',
    why: "Arch's /boot/vmlinuz-linux is not on a Debian dom0: the domU kernel the images layer puts in the dom0 image (images/xen-domu.ts)",
  },
  { field: 'suites.xen.pvGuest.ramdisk', why: 'its initrd, from the same recipe' },
  { field: 'suites.xen.pvGuest.memoryMiB', why: '512 MiB does not fit beside a 512 MiB dom0 in a 1 GiB VM' },
  { field: 'suites.xen.timeoutsMs', why: 'Xen, dom0 and the domU all run under TCG' },
];

/** The lab-wide setting that changes: the emulated hosts share this machine's cores. */
const PARALLEL_WHY = 'every emulated host shares this 2-core machine (EMULATED_PARALLEL_HOSTS)';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function get(o: unknown, path: string[]): unknown {
  return path.reduce<unknown>((v, k) => (isObj(v) ? v[k] : undefined), o);
}

/** The parent object of `path`, when the seed has it (a rule never adds a block the seed does not have). */
function parentOf(o: Obj, path: string[]): Obj | undefined {
  const p = get(o, path.slice(0, -1));
  return path.length === 1 ? o : isObj(p) ? p : undefined;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function applyRule(copy: Obj, seed: HostConfig, emulated: HostConfig, rule: Rule, out: Override[]): void {
  const path = rule.field.split('.');
  const parent = parentOf(copy, path);
  if (!parent) return;
  const key = path[path.length - 1]!;
  const before = parent[key];
  const after = rule.value ? rule.value(seed, emulated) : get(emulated, path);
  if (same(before, after)) return;
  if (after === undefined) delete parent[key];
  else parent[key] = structuredClone(after);
  out.push({ host: seed.name, field: rule.field, seed: before, copy: after, why: rule.why });
}

/**
 * The copy of `seed` on the hosts of `emulated` (both parsed). Every seed host keeps its name,
 * role, os and suite blocks; `overrides` lists each value that changed and why.
 */
export function seedOntoEmulated(seed: Lab, emulated: Lab): { lab: Lab; overrides: Override[] } {
  const overrides: Override[] = [];
  const hosts = seed.hosts.map((s) => {
    const names = [...new Set(s.role.map((r) => (r === 'local' ? undefined : EMULATED_BY_ROLE[r])))];
    if (names.length !== 1 || !names[0])
      throw new LabError('config', `seed host ${s.name}: roles ${s.role.join(', ')} map to no single emulated host`, { host: s.name });
    const e = emulated.hosts.find((h) => h.name === names[0]);
    if (!e)
      throw new LabError('lab-setup', `seed host ${s.name} needs ${names[0]}, which is not up: \`npx labrig lab up ${names[0]}\``, {
        host: s.name,
      });
    const copy = structuredClone(s) as unknown as Obj;
    copy.description = `${s.description ?? s.name} — on ${e.name}`;
    for (const rule of [...ACCESS, ...OVERRIDES]) applyRule(copy, s, e, rule, overrides);
    return copy as unknown as HostConfig;
  });
  const parallelHosts = emulated.parallelHosts ?? 1;
  if (seed.parallelHosts !== parallelHosts)
    overrides.push({ host: '(lab)', field: 'parallelHosts', seed: seed.parallelHosts, copy: parallelHosts, why: PARALLEL_WHY });
  return { lab: { ...structuredClone(seed), name: `${seed.name}-on-emulated`, parallelHosts, hosts }, overrides };
}

/** One line per override, for the CLI and the test's report. */
export function overrideLines(overrides: readonly Override[], opts: { values?: boolean } = {}): string[] {
  const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));
  return overrides.map(
    (o) => `${o.host} ${o.field}: ${o.why}${opts.values ? `\n    seed: ${show(o.seed)}\n    copy: ${show(o.copy)}` : ''}`,
  );
}
