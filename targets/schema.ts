/**
 * The one schema of a lab. lab.config.ts (or the file named by LABRIG_CONFIG) exports a
 * `lab` checked against it; every type used elsewhere is inferred from here.
 * Secrets never appear in a config: only the NAME of the environment variable holding them.
 */
import { z } from 'zod';

const envVarName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable NAME (A-Z, 0-9, _), not a secret');
const port = z.number().int().min(1).max(65535);
const argv = z.array(z.string().min(1)).min(1);

export const roles = ['arm64-armhf', 'arm64-kunpeng', 'x86-pmem', 'x86-xen', 'local'] as const;
export const features = ['libvirt', 'kvm', 'uefi', 'pmem', 'xen', 'qemu', 'kexec'] as const;

export const sshSchema = z.strictObject({
  address: z.string().min(1),
  port: port.default(22),
  user: z.string().min(1).default('root'),
  /** Path of a private key file (a path is not a secret; the file must not be in the repo). */
  identityFile: z.string().min(1).optional(),
  /** Name of an env var holding the private key itself (CI secrets). */
  identityEnv: envVarName.optional(),
  passwordEnv: envVarName.optional(),
  /** Pinned host key, as `ssh-keygen -lf` prints it: SHA256:<base64, 43 chars>. */
  hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a pinned host-key fingerprint "SHA256:…" (ssh-keygen -lf)'),
  /** sshd MaxSessions: channels open at once on one connection. */
  maxChannels: z.number().int().min(1).max(64).default(10),
  keepaliveMs: z.number().int().min(0).default(10_000),
  connectTimeoutMs: z.number().int().min(100).default(15_000),
});

/** A root or user prompt, possibly followed by terminal queries (busybox's line editor asks ESC[6n). */
export const DEFAULT_PROMPT = '[#$] ?(?:\\x1b\\[[0-9;?]*[A-Za-z])*$';

const loginSchema = z.strictObject({
  user: z.string().min(1).default('root'),
  passwordEnv: envVarName.optional(),
  /** Regex source of the shell prompt seen before normalisation. */
  prompt: z.string().default(DEFAULT_PROMPT),
});

export const consoleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('serial'), path: z.string().min(1), baud: z.number().int().positive().default(115200) }),
  z.strictObject({ kind: z.literal('tcp'), address: z.string().min(1), port, telnet: z.boolean().default(false) }),
  z.strictObject({ kind: z.literal('unix'), path: z.string().min(1) }),
  /** A command whose stdio is the console: ipmitool sol activate (on the runner), virsh/xl console (over SSH). */
  z.strictObject({ kind: z.literal('command'), argv, on: z.enum(['runner', 'ssh']).default('runner') }),
]);

const consoleWithLogin = z.intersection(consoleSchema, z.object({ login: loginSchema.optional() }));

export const powerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('ipmi'),
    address: z.string().min(1),
    user: z.string().min(1),
    passwordEnv: envVarName,
    interface: z.enum(['lanplus', 'lan']).default('lanplus'),
    minOffMs: z.number().int().min(0).default(5000),
  }),
  z.strictObject({
    kind: z.literal('redfish'),
    url: z.url(),
    systemId: z.string().default('1'),
    user: z.string().min(1),
    passwordEnv: envVarName,
    /** PEM file of the BMC's CA; a BMC's self-signed certificate is pinned this way, never ignored. */
    caFile: z.string().optional(),
    minOffMs: z.number().int().min(0).default(5000),
  }),
  z.strictObject({
    kind: z.literal('command'),
    on: argv,
    off: argv,
    /** Prints on/off (case-insensitive) on stdout. */
    status: argv,
    minOffMs: z.number().int().min(0).default(5000),
  }),
  z.strictObject({
    kind: z.literal('qmp'),
    socket: z.string().min(1),
    /** Powers the VM on again after `quit` (must return once QEMU runs); without it, on() can only `cont`. */
    start: argv.optional(),
    minOffMs: z.number().int().min(0).default(0),
  }),
]);

export const expectSchema = z.strictObject({
  arch: z.enum(['x86_64', 'aarch64', 'armv7l']),
  /** Features the host must have; anything not listed is not required. */
  features: z.array(z.enum(features)).default([]),
  /** Features the host must NOT have (e.g. kvm on the emulated lab). */
  absent: z.array(z.enum(features)).default([]),
  cpuMhz: z.number().int().positive().optional(),
});

/** Per-suite parameters. Each suite owns its block; unknown keys are an error. */
export const suiteParamsSchema = z.strictObject({
  hostFacts: z.strictObject({ domcapsArch: z.enum(['x86_64', 'aarch64', 'armv7l']).optional() }).optional(),
  pcieRootPorts: z.looseObject({}).optional(),
  armhfKernelUpgrade: z.looseObject({}).optional(),
  /** The Xen host's boot settings (checked on its serial console and in `xl info`) and its test guests. */
  xen: z
    .strictObject({
      /** As on the Xen command line: `512M,max:512M`. */
      dom0Mem: z.string().regex(/^(?:(?:min|max):)?\d+[kKmMgGtT]?(?:,(?:(?:min|max):)?\d+[kKmMgGtT]?)*$/, 'a dom0_mem value: 512M,max:512M'),
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
  snapshotKexec: z.looseObject({}).optional(),
});

export const hostSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'a host name: lower case, digits and dashes'),
  /** One role, or several when one machine stands in for more (emu-arm64 is both arm64 hosts). */
  role: z.union([z.enum(roles), z.array(z.enum(roles)).min(1)]).transform((r) => (Array.isArray(r) ? r : [r])),
  description: z.string().optional(),
  ssh: sshSchema,
  console: consoleWithLogin.optional(),
  power: powerSchema.optional(),
  expect: expectSchema,
  /** How long a reboot or kexec may take before the host counts as lost. */
  returnTimeoutMs: z.number().int().positive().default(300_000),
  suites: suiteParamsSchema.default({}),
});

export const labSchema = z
  .strictObject({
    name: z.string().min(1),
    /** Where console logs, leases' local copies and results go. */
    outDir: z.string().default('reports/out'),
    lease: z
      .strictObject({
        /** A lease whose heartbeat is older than this may be broken. */
        ttlMs: z.number().int().positive().default(120_000),
        heartbeatMs: z.number().int().positive().default(20_000),
        /** How long to wait for a held lease before failing. */
        waitMs: z.number().int().min(0).default(60_000),
        path: z.string().default('/var/lock/labrig.lease'),
      })
      .default({ ttlMs: 120_000, heartbeatMs: 20_000, waitMs: 60_000, path: '/var/lock/labrig.lease' }),
    hosts: z.array(hostSchema).min(1),
  })
  .superRefine((lab, ctx) => {
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
export type SshConfig = z.output<typeof sshSchema>;
export type ConsoleConfig = z.output<typeof consoleWithLogin>;
export type PowerConfig = z.output<typeof powerSchema>;
export type Role = (typeof roles)[number];
export type Feature = (typeof features)[number];
