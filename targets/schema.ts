/**
 * The one schema of a lab. lab.config.ts (or the file named by LABRIG_CONFIG) exports a
 * `lab` checked against it; every type used elsewhere is inferred from here. A host's ssh, console
 * and power options are their drivers' own (drivers/*-options.ts), composed here.
 * Secrets never appear in a config: only the NAME of the environment variable holding them.
 */
import { z } from 'zod';
import { envVarName } from '../drivers/config-fields.js';
import { consoleOptionsSchema } from '../drivers/console-options.js';
import { powerOptionsSchema } from '../drivers/power-options.js';
import { sshOptionsSchema } from '../drivers/ssh-options.js';
import { type Arch, archNames, normalizeArch, osFamilies } from './platform.js';

const oneOf = (what: string) => (i: { input: unknown }) =>
  i.input === undefined ? `required: ${what}` : `${what}, not ${JSON.stringify(i.input)}`;
/** An architecture under any of its names (amd64 is x86_64, arm64 is aarch64, armhf is armv7l), kept as the lab's name. */
const arch = z
  .enum(archNames, { error: oneOf('an architecture: x86_64 (amd64), aarch64 (arm64) or armv7l (armhf)') })
  .transform((a) => normalizeArch(a) as Arch);

export const roles = ['arm64-armhf', 'arm64-kunpeng', 'x86-pmem', 'x86-xen', 'local'] as const;
export const features = ['libvirt', 'kvm', 'uefi', 'pmem', 'xen', 'qemu', 'kexec'] as const;

export const expectSchema = z.strictObject({
  arch,
  /** Features the host must have; anything not listed is not required. */
  features: z.array(z.enum(features)).default([]),
  /** Features the host must NOT have (e.g. kvm on the emulated lab). */
  absent: z.array(z.enum(features)).default([]),
  cpuMhz: z.number().int().positive().optional(),
  /**
   * The component versions this run must use (version validation): each is a prefix of what the
   * host reports (`6.1.0-56`, `7.2`, `9.0.0`). A host running anything else fails doctor and host-facts.
   */
  versions: z
    .strictObject({ kernel: z.string(), qemu: z.string(), libvirt: z.string(), xen: z.string(), edk2: z.string() })
    .partial()
    .default({}),
});

export const pcieRootPortsSchema = z.strictObject({
  /** Machine types to bisect, each its own test; 'newest' is what the host's libvirt resolves `virt` to. */
  machineTypes: z.array(z.string().min(1)).min(1).default(['newest']),
  lower: z.number().int().min(1).default(1),
  /** nova caps num_pcie_ports at 28 on aarch64/virt. */
  upper: z.number().int().min(1).max(255).default(28),
  /** libvirt domain type; default: the host's accel (kvm, or qemu = TCG). */
  domainType: z.enum(['kvm', 'qemu']).optional(),
  cpu: z
    .strictObject({ mode: z.enum(['host-passthrough', 'maximum', 'custom']), model: z.string().optional() })
    .default({ mode: 'host-passthrough' }),
  memoryMiB: z.number().int().positive().default(1024),
  /** pcie-root-port io-reserve in bytes (0: ports stop claiming the 64 KiB I/O window). */
  ioReserve: z.number().int().min(0).optional(),
  packRootPorts: z.boolean().default(false),
  /**
   * Devices that each take a root port in every probe, as in seed 001 (xhci and virtio video take
   * 2 of its 15 ports, leaving 13 for devices; a CD-ROM on virtio-scsi; a pcie-to-pci-bridge).
   * The ceiling is then reported as ports in all and ports left for devices.
   */
  portDevices: z.array(z.enum(['xhci', 'video', 'scsi-cdrom', 'pcie-to-pci-bridge'])).default([]),
  /** Extra N probed after the bisection, to catch a gap it would not see. */
  spotChecks: z.array(z.number().int().min(1)).default([]),
  probeTimeoutMs: z.number().int().positive().default(300_000),
  firmware: z
    .strictObject({ loader: z.string(), varsTemplate: z.string() })
    .default({ loader: '/usr/share/AAVMF/AAVMF_CODE.fd', varsTemplate: '/usr/share/AAVMF/AAVMF_VARS.fd' }),
  /** Guest kernel + initrd on the runner, uploaded to the host; it must print the probe marker. Default: the probe guest built by images/aarch64-probe-guest.ts. */
  guest: z.strictObject({ kernel: z.string(), initrd: z.string(), cmdline: z.string().default('console=ttyAMA0') }).optional(),
  /** Where guest files, nvram and serial logs go on the host (readable by the QEMU user). */
  workDir: z.string().default('/var/lib/libvirt/images/labrig-pcie'),
  /** Known ceilings per machine type (as listed in machineTypes): a different result fails the test. */
  expectCeiling: z.record(z.string(), z.union([z.number().int(), z.string()])).default({}),
});
export type PcieRootPortsParams = z.output<typeof pcieRootPortsSchema>;

/** Per-suite parameters. Each suite owns its block; unknown keys are an error. */
export const suiteParamsSchema = z.strictObject({
  hostFacts: z.strictObject({ domcapsArch: arch.optional() }).optional(),
  pcieRootPorts: pcieRootPortsSchema.optional(),
  /** Seed 000: an armhf libvirt guest whose /boot is a 9p share, upgraded and rebooted (suites/armhf-kernel-upgrade.spec.ts). */
  armhfKernelUpgrade: z
    .strictObject({
      /** Domain name; the suite owns it (destroys and undefines it, before and after). */
      vm: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/, 'a libvirt domain name without spaces or slashes'),
      /** The share is `<shareRoot>/<vm>-boot`, the disk `<shareRoot>/<vm>.img` (the seed: /srv). */
      shareRoot: z.string().startsWith('/').default('/srv'),
      /** The user QEMU runs as: owns the share (mapped mode writes as this user). */
      qemuUser: z.string().min(1).default('libvirt-qemu'),
      hookPath: z.string().startsWith('/').default('/etc/libvirt/hooks/qemu'),
      /** Where the hook writes one line per domain start it handles. */
      hookLog: z.string().startsWith('/').default('/var/log/libvirt/labrig-boot-hook.log'),
      /** Shell command on the host that restarts libvirtd and returns once it answers (`systemctl restart libvirtd`). */
      restartLibvirtd: z.string().min(1),
      memoryMiB: z.number().int().min(64).default(256),
      guest: z.discriminatedUnion('kind', [
        /**
         * A guest image built on the runner by a recipe of images/ (Debian's armhf packages), uploaded to the host, upgraded from
         * kernels[0] to kernels[1]: `armhf-guest` is a busybox system that copies a kernel from its pool (fast: CI);
         * `armhf-debian` is a real Debian 12 (systemd, apt, initramfs-tools) that installs both with apt from a repository the
         * host serves on a second 9p share.
         */
        z.strictObject({
          kind: z.literal('recipe'),
          recipe: z.enum(['armhf-guest', 'armhf-debian']),
          kernels: z.tuple([
            z.string().regex(/^\d+\.\d+\.\d+-\d+-armmp(?:-lpae)?$/),
            z.string().regex(/^\d+\.\d+\.\d+-\d+-armmp(?:-lpae)?$/),
          ]),
        }),
        /** An installed Debian armhf disk already on the host; the first boot moves its /boot onto the share. */
        z.strictObject({
          kind: z.literal('prepared'),
          /** Copied to the suite's disk path: the prepared image itself is never written. */
          disk: z.string().startsWith('/'),
          diskFormat: z.enum(['raw', 'qcow2']).default('qcow2'),
          /** Kernel and initrd of the first boot (the seed's installer step: /boot is still empty). */
          installKernel: z.string().startsWith('/'),
          installInitrd: z.string().startsWith('/'),
          cmdline: z.string().default('console=ttyAMA0 root=/dev/vda1 rw'),
          /** Run in the guest on the first boot: fills the share's /boot, vmlinuz/initrd.img links included. */
          installCommand: z.string().min(1),
          /** Run in the guest to install the newer kernel: the apt command. */
          upgradeCommand: z.string().min(1),
          login: z.strictObject({ user: z.string().min(1).default('root'), passwordEnv: envVarName.optional() }).default({ user: 'root' }),
        }),
      ]),
      timeoutsMs: z
        .strictObject({
          boot: z.number().int().positive().default(240_000),
          shutdown: z.number().int().positive().default(120_000),
          upgrade: z.number().int().positive().default(600_000),
        })
        .default({ boot: 240_000, shutdown: 120_000, upgrade: 600_000 }),
    })
    .optional(),
  /** The Xen host's boot settings (checked on its serial console and in `xl info`) and its test guests. */
  xen: z
    .strictObject({
      /** As on the Xen command line: `512M,max:512M`. */
      dom0Mem: z
        .string()
        .regex(/^(?:(?:min|max):)?\d+[kKmMgGtT]?(?:,(?:(?:min|max):)?\d+[kKmMgGtT]?)*$/, 'a dom0_mem value: 512M,max:512M'),
      dom0MaxVcpus: z.number().int().positive(),
      /** Xen's `console=` (com1, vga, …). */
      console: z.string().min(1),
      /** `com1=` serial settings, e.g. 115200,8n1. */
      com1: z.string().optional(),
      loglvl: z.string().optional(),
      guestLoglvl: z.string().optional(),
      /** A PV guest on the host: its kernel prints `labrig-domu ready: <labrig.marker>` on hvc0 and gives a shell there. */
      pvGuest: z
        .strictObject({
          kernel: z.string().startsWith('/'),
          ramdisk: z.string().startsWith('/').optional(),
          /** Guest kernel command line; the suite adds its own `labrig.marker=`. */
          extra: z.string().default('console=hvc0'),
          memoryMiB: z.number().int().min(16).default(128),
          vcpus: z.number().int().positive().default(1),
          /** Bridge for the guest's vif (00:16:3e MAC); none: no vif. */
          bridge: z.string().optional(),
          /**
           * A disk image in dom0 that boots the same guest through `bootloader = "pygrub"`: its
           * /boot/grub/grub.cfg (or extlinux menu) names kernel and initrd. None: no pygrub test.
           */
          bootDisk: z.string().startsWith('/').optional(),
        })
        .optional(),
      /**
       * Where xendomains looks for the domains to start at boot (Debian: XENDOMAINS_AUTO in
       * /etc/default/xendomains); the autostart test links its cfg there and reboots dom0.
       * It must survive a reboot, as must `cfgDir`, where that cfg lives.
       */
      autostart: z
        .strictObject({
          autoDir: z.string().startsWith('/').default('/etc/xen/auto'),
          cfgDir: z.string().startsWith('/').default('/etc/xen'),
        })
        .optional(),
      /** An HVM guest (needs vmx/svm): a disk image whose serial console prints `readyPattern`. */
      hvmGuest: z
        .strictObject({
          disk: z.string().startsWith('/'),
          readyPattern: z.string().min(1),
          memoryMiB: z.number().int().min(16).default(512),
          vcpus: z.number().int().positive().default(1),
          bridge: z.string().optional(),
        })
        .optional(),
      timeoutsMs: z
        .strictObject({
          create: z.number().int().positive().default(120_000),
          marker: z.number().int().positive().default(180_000),
          shutdown: z.number().int().positive().default(60_000),
        })
        .default({ create: 120_000, marker: 180_000, shutdown: 60_000 }),
    })
    .optional(),
  /** Seed 003: a QEMU guest with its RAM on pmem saved, the host kexec'd into another kernel, the guest restored (suites/snapshot-kexec.spec.ts). */
  snapshotKexec: z
    .strictObject({
      /** Host directory for the guest's kernel, initramfs, qcow2 disk and serial log: it must survive a kexec (a disk, not tmpfs). */
      workDir: z.string().startsWith('/').default('/var/lib/labrig-snapshot-kexec'),
      /** pmem modes, each its own test (seed 003: method 1 devdax, method 2 fsdax); one the host cannot do is skipped with the reason. */
      modes: z
        .array(z.enum(['devdax', 'fsdax']))
        .min(1)
        .default(['devdax', 'fsdax']),
      /** The ndctl namespace the suite reconfigures (the seed: namespace0.0). */
      namespace: z
        .string()
        .regex(/^namespace\d+\.\d+$/)
        .default('namespace0.0'),
      /** Mount point of the fsdax filesystem (mounted with -o dax). */
      fsdaxMount: z.string().startsWith('/').default('/mnt/labrig-pmem'),
      /** The installed kernel to kexec into (`uname -r` form); default: an installed one other than the running kernel. */
      targetKernel: z.string().min(1).optional(),
      /** The QEMU that starts and saves the guest; a bare name runs from components.qemuDir when there is one. */
      qemu: z.string().min(1).default('qemu-system-x86_64'),
      /**
       * The QEMU that restores it after the kexec — seed 003's point is to upgrade QEMU across the
       * cycle: a binary, or a directory holding one named like `qemu`. Default: the same QEMU.
       */
      restoreQemu: z.string().min(1).optional(),
      /** Machine type (seed 003: q35); an alias is pinned to the saving QEMU's versioned type (q35 → pc-q35-7.2) for both QEMUs. */
      machine: z
        .string()
        .regex(/^[a-z0-9][a-z0-9._-]*$/, 'a QEMU machine type such as q35 or pc-q35-7.2')
        .default('q35'),
      /** pmem=on on the backend (seed 003): a QEMU built without libpmem then fails the run loudly instead of silently dropping it. */
      pmemOn: z.boolean().default(true),
      guest: z
        .strictObject({
          /** Guest RAM, all of it on pmem; it must hold the pattern and 256 MiB for the kernel and init. */
          memoryMiB: z.number().int().min(64).default(768),
          /** Size of the memory pattern the guest writes before the save and verifies after the restore (issue 15: at least 512 MiB). */
          patternMiB: z.number().int().min(1).default(512),
          /** Milliseconds of each second the guest spends verifying the pattern (the rest it sleeps: the host's SSH needs CPU too). */
          verifyMsPerSecond: z.number().int().min(50).max(1000).default(500),
          /** Guest kernel on the host; default: /boot/vmlinuz-<kernel running when the guest cold-boots>. */
          kernel: z.string().startsWith('/').optional(),
          /** Guest kernel command line; the suite appends its marker parameters (labrig.seed=, labrig.pattern_mib=, labrig.verify_ms=). */
          append: z.string().default('console=ttyS0'),
        })
        .refine((g) => g.memoryMiB >= g.patternMiB + 256, {
          message: 'guest.memoryMiB must be at least guest.patternMiB + 256 (the kernel and init need room beside the pattern)',
          path: ['memoryMiB'],
        })
        .default({ memoryMiB: 768, patternMiB: 512, verifyMsPerSecond: 500, append: 'console=ttyS0' }),
      timeoutsMs: z
        .strictObject({
          /** QEMU start to the guest's first marker line (a cold boot). */
          guestBoot: z.number().int().positive().default(300_000),
          /** cont after loadvm to the first marker line after it. */
          restore: z.number().int().positive().default(120_000),
          /** kexec -e to SSH with a new boot_id; default: the host's returnTimeoutMs. */
          kexec: z.number().int().positive().optional(),
        })
        .default({ guestBoot: 300_000, restore: 120_000 }),
    })
    .optional(),
});

/**
 * What this run uses of the host's components (version validation), applied before the run:
 * packages at exact versions, and a QEMU build the suites use instead of the host's QEMU.
 * `expect.versions` then checks that the host runs what was asked.
 */
export const componentsSchema = z.strictObject({
  packages: z.array(z.strictObject({ name: z.string().min(1), version: z.string().min(1) })).default([]),
  /** Installs one package at one version; {name} and {version} are replaced (shell-quoted). */
  installCommand: z
    .string()
    .default('DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades --no-install-recommends {name}={version}'),
  /** Prints the installed version of {name}, nothing (or a failure) when it is not installed. */
  versionCommand: z.string().default("dpkg-query -W -f '${Version}' {name}"),
  /** A QEMU build on the host: the directory of its qemu-system-* binaries (e.g. /opt/qemu-9.2/bin). */
  qemuDir: z.string().startsWith('/').optional(),
  /**
   * A libvirt build on the host: the directory of its libvirtd, virtlogd and virsh (a `components
   * fetch` build's bin/). The suites then talk to a libvirtd started from it with its own sockets,
   * state, config and logs (targets/components-libvirtd.ts); the host's installed libvirt is untouched.
   */
  libvirtDir: z.string().startsWith('/').optional(),
  /** Where that libvirtd keeps its config, sockets, state and logs on the host (libvirt's QEMU user must reach it). */
  libvirtStateDir: z.string().startsWith('/').default('/var/tmp/labrig-libvirtd'),
});
export type ComponentsConfig = z.output<typeof componentsSchema>;

export const hostSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'a host name: lower case, digits and dashes'),
  /** One role, or several when one machine stands in for more (emu-arm64 is both arm64 hosts). */
  role: z.union([z.enum(roles), z.array(z.enum(roles)).min(1)]).transform((r) => (Array.isArray(r) ? r : [r])),
  description: z.string().optional(),
  /** The OS family (`uname -s`); default: asked of the host. Reboot proof, the lease's lock and the Xen checks follow it. */
  os: z.enum(osFamilies, { error: oneOf('an OS family: linux or freebsd (uname -s: Linux or FreeBSD)') }).optional(),
  // each driver owns the options of its kind (drivers/*-options.ts); the lab composes them
  ssh: sshOptionsSchema,
  console: consoleOptionsSchema.optional(),
  power: powerOptionsSchema.optional(),
  expect: expectSchema,
  /** What the host's VMs run under: kvm, tcg, or auto (kvm when the host has a usable /dev/kvm). */
  accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  /** How long a reboot or kexec may take before the host counts as lost. */
  returnTimeoutMs: z.number().int().positive().default(300_000),
  components: componentsSchema.prefault({}),
  suites: suiteParamsSchema.default({}),
});

export const labSchema = z
  .strictObject({
    name: z.string().min(1),
    /** Where results, report and logs go, relative to the config file (default reports/out of the checkout; LABRIG_OUT_DIR overrides, e.g. one per shard). */
    outDir: z.string().min(1).optional(),
    lease: z
      .strictObject({
        /** A lease whose heartbeat is older than this may be broken. */
        ttlMs: z.number().int().positive().default(120_000),
        heartbeatMs: z.number().int().positive().default(20_000),
        /** How long to wait for a held lease before failing. */
        waitMs: z.number().int().min(0).default(60_000),
        path: z.string().startsWith('/', 'an absolute path on the host').default('/var/lock/labrig.lease'),
      })
      .default({ ttlMs: 120_000, heartbeatMs: 20_000, waitMs: 60_000, path: '/var/lock/labrig.lease' }),
    /** Where `labrig lock` and `labrig state` keep each host's reservation and state, on the host: a directory that survives reboots. */
    hostStateDir: z.string().startsWith('/').default('/var/lib/labrig'),
    /** How often a test that failed for a lab reason (unreachable, lease held, …) is run again. Product failures never are. */
    labRetries: z.number().int().min(0).max(5).default(1),
    /** How many hosts are tested at once, one worker each (default: every host; LABRIG_WORKERS overrides). */
    parallelHosts: z.number().int().min(1).optional(),
    hosts: z.array(hostSchema).min(1),
  })
  .superRefine((lab, ctx) => {
    if (lab.lease.ttlMs <= lab.lease.heartbeatMs)
      ctx.addIssue({
        code: 'custom',
        path: ['lease', 'ttlMs'],
        message: `must be more than lease.heartbeatMs (${lab.lease.heartbeatMs}): a live lease would look stale between two heartbeats`,
      });
    const seen = new Set<string>();
    lab.hosts.forEach((h, i) => {
      if (seen.has(h.name)) ctx.addIssue({ code: 'custom', path: ['hosts', i, 'name'], message: `duplicate host name "${h.name}"` });
      seen.add(h.name);
      if (!h.ssh.identityFile && !h.ssh.identityEnv && !h.ssh.passwordEnv)
        ctx.addIssue({ code: 'custom', path: ['hosts', i, 'ssh'], message: 'one of identityFile, identityEnv or passwordEnv is required' });
    });
  });

export type LabInput = z.input<typeof labSchema>;
export type Lab = z.output<typeof labSchema>;
export type HostConfig = z.output<typeof hostSchema>;
export type Role = (typeof roles)[number];
export type Feature = (typeof features)[number];
