import { expect, test } from '@playwright/test';
import { LabError } from '../drivers/errors.js';
import { loadLab, parseLab } from '../targets/config.js';
import { labRedactor } from '../targets/recorders.js';
import { secretEnvNames } from '../targets/secrets.js';

const key = `SHA256:${'x'.repeat(43)}`;
const host = (over: Record<string, unknown> = {}) => ({
  name: 'h1',
  role: 'local',
  ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: key },
  expect: { arch: 'x86_64' },
  ...over,
});
const lab = (hosts: unknown[], over: Record<string, unknown> = {}) => ({ name: 'l', hosts, ...over });

const malformed: Array<[string, unknown, string]> = [
  ['no hosts', lab([]), 'hosts:'],
  ['unknown role', lab([host({ role: 'arm32' })]), 'hosts[0].role'],
  [
    'host key not a fingerprint',
    lab([host({ ssh: { address: 'a', identityFile: '/k', hostKey: 'ssh-ed25519 AAAA' } })]),
    'hosts[0].ssh.hostKey: a pinned host-key fingerprint',
  ],
  ['no credentials', lab([host({ ssh: { address: 'a', hostKey: key } })]), 'hosts[0].ssh: one of identityFile, identityEnv or passwordEnv'],
  [
    'a secret where an env-var name belongs',
    lab([host({ ssh: { address: 'a', hostKey: key, passwordEnv: 'hunter2!' } })]),
    'hosts[0].ssh.passwordEnv: an environment variable NAME',
  ],
  ['port out of range', lab([host({ ssh: { address: 'a', port: 70000, identityFile: '/k', hostKey: key } })]), 'hosts[0].ssh.port:'],
  ['unknown console kind', lab([host({ console: { kind: 'usb', path: '/dev/x' } })]), 'hosts[0].console.kind:'],
  ['serial console without a path', lab([host({ console: { kind: 'serial' } })]), 'hosts[0].console.path:'],
  [
    'redfish without https url',
    lab([host({ power: { kind: 'redfish', url: 'nope', user: 'u', passwordEnv: 'P' } })]),
    'hosts[0].power.url:',
  ],
  ['ipmi without a password env var', lab([host({ power: { kind: 'ipmi', address: 'b', user: 'u' } })]), 'hosts[0].power.passwordEnv:'],
  ['unknown expected feature', lab([host({ expect: { arch: 'x86_64', features: ['gpu'] } })]), 'hosts[0].expect.features[0]:'],
  ['typo in a field', lab([host({ sshh: {} })]), 'hosts[0]: Unrecognized key'],
  ['duplicate host names', lab([host(), host()]), 'hosts[1].name: duplicate host name "h1"'],
  ['bad host name', lab([host({ name: 'Kunpeng 920' })]), 'hosts[0].name: a host name'],
  ['lease ttl negative', lab([host()], { lease: { ttlMs: -1 } }), 'lease.ttlMs:'],
  [
    'typo in a serial console (buad)',
    lab([host({ console: { kind: 'serial', path: '/dev/ttyS0', buad: 9600 } })]),
    'hosts[0].console: Unrecognized key: "buad"',
  ],
  [
    'typo in a tcp console (telent)',
    lab([host({ console: { kind: 'tcp', address: 'ser2net', port: 7001, telent: true } })]),
    'hosts[0].console: Unrecognized key: "telent"',
  ],
  [
    'typo in a command console',
    lab([host({ console: { kind: 'command', argv: ['ipmitool'], onn: 'ssh' } })]),
    'hosts[0].console: Unrecognized key: "onn"',
  ],
  [
    'typo in a console login',
    lab([host({ console: { kind: 'unix', path: '/s', login: { user: 'root', pasword: 'x' } } })]),
    'hosts[0].console.login: Unrecognized key: "pasword"',
  ],
  [
    'a secret where a secretEnv name belongs',
    lab([host({ console: { kind: 'command', argv: ['ipmitool'], secretEnv: ['hunter2!'] } })]),
    'hosts[0].console.secretEnv[0]: an environment variable NAME',
  ],
  [
    'power command secretEnv not a list',
    lab([host({ power: { kind: 'command', on: ['a'], off: ['b'], status: ['c'], secretEnv: 'BMC_PASS' } })]),
    'hosts[0].power.secretEnv:',
  ],
  [
    'lease ttl not above the heartbeat',
    lab([host()], { lease: { ttlMs: 20_000, heartbeatMs: 20_000 } }),
    'lease.ttlMs: must be more than lease.heartbeatMs (20000)',
  ],
  ['lease path relative', lab([host()], { lease: { path: 'var/lock/labrig.lease' } }), 'lease.path: an absolute path on the host'],
  [
    'ssh keepalive zero',
    lab([host({ ssh: { address: 'a', identityFile: '/k', hostKey: key, keepaliveMs: 0 } })]),
    'hosts[0].ssh.keepaliveMs:',
  ],
];

for (const [what, input, path] of malformed) {
  test(`malformed config is refused with the field path: ${what}`, () => {
    let err: unknown;
    try {
      parseLab(input, 'test.config.ts');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('config');
    expect((err as Error).message).toContain('test.config.ts is not valid');
    expect((err as Error).message).toContain(path);
  });
}

test('a command console and command power name their secrets by env var; logins keep their defaults', () => {
  const parsed = parseLab(
    lab([
      host({
        console: {
          kind: 'command',
          argv: ['ipmitool', '-E', 'sol', 'activate'],
          secretEnv: ['BMC_PASSWORD'],
          login: { passwordEnv: 'CONSOLE_PASSWORD' },
        },
        power: { kind: 'command', on: ['pdu', 'on'], off: ['pdu', 'off'], status: ['pdu', 'status'], secretEnv: ['PDU_TOKEN'] },
      }),
    ]),
  );
  expect(parsed.hosts[0]!.console).toMatchObject({
    kind: 'command',
    on: 'runner',
    secretEnv: ['BMC_PASSWORD'],
    login: { user: 'root', passwordEnv: 'CONSOLE_PASSWORD' },
  });
  expect(parsed.hosts[0]!.power).toMatchObject({ kind: 'command', secretEnv: ['PDU_TOKEN'] });
  expect(parseLab(lab([host({ console: { kind: 'serial', path: '/dev/ttyS0' } })])).hosts[0]!.console).toEqual({
    kind: 'serial',
    path: '/dev/ttyS0',
    baud: 115200,
  });
});

test("every secret a config names is one: ssh, console login, power, secretEnv lists, a suite guest's login", () => {
  const parsed = parseLab(
    lab([
      host({
        ssh: { address: 'a', identityEnv: 'SSH_KEY', hostKey: key },
        console: { kind: 'command', argv: ['ipmitool'], secretEnv: ['SOL_TOKEN'], login: { passwordEnv: 'CONSOLE_PASSWORD' } },
        power: { kind: 'ipmi', address: 'bmc', user: 'u', passwordEnv: 'IPMI_PASSWORD' },
        suites: {
          armhfKernelUpgrade: {
            vm: 'g',
            restartLibvirtd: 'true',
            guest: {
              kind: 'prepared',
              disk: '/d',
              installKernel: '/k',
              installInitrd: '/i',
              installCommand: 'x',
              upgradeCommand: 'y',
              login: { passwordEnv: 'GUEST_PASSWORD' },
            },
          },
        },
      }),
      host({ name: 'h2', power: { kind: 'command', on: ['a'], off: ['b'], status: ['c'], secretEnv: ['PDU_TOKEN', 'PDU_USER'] } }),
    ]),
  );
  expect(secretEnvNames(parsed)).toEqual([
    'CONSOLE_PASSWORD',
    'GUEST_PASSWORD',
    'IPMI_PASSWORD',
    'PDU_TOKEN',
    'PDU_USER',
    'SOL_TOKEN',
    'SSH_KEY',
  ]);
  const env = { GUEST_PASSWORD: 'guest-pw-1234', PDU_TOKEN: 'tok<en>&9', SOL_TOKEN: 'abc' };
  expect(labRedactor(parsed, env)(`login guest-pw-1234 then <t v="tok&lt;en&gt;&amp;9"/> abc`)).toBe('login *** then <t v="***"/> abc');
});

test('a valid config gets its defaults', () => {
  const parsed = parseLab(lab([host()]));
  expect(parsed.hosts[0]!.ssh).toMatchObject({ port: 22, user: 'root', maxChannels: 10 });
  expect(parsed.lease.path).toBe('/var/lock/labrig.lease');
  expect(parsed.hosts[0]!.role).toEqual(['local']);
  expect(parseLab(lab([host({ role: ['arm64-armhf', 'arm64-kunpeng'] })])).hosts[0]!.role).toEqual(['arm64-armhf', 'arm64-kunpeng']);
});

test('the seed lab example is valid, describes every role, and each seed host carries the suite blocks its seed implies', async () => {
  const seed = await loadLab('labs/seed-lab.config.ts');
  expect(seed.hosts.flatMap((h) => h.role).sort()).toEqual(['arm64-armhf', 'arm64-kunpeng', 'x86-pmem', 'x86-xen', 'x86-xen']);
  expect(seed.hosts.map((h) => h.console?.kind).sort()).toEqual(['command', 'serial', 'tcp', 'tcp', 'tcp']);
  expect(seed.hosts.map((h) => h.power?.kind).sort()).toEqual(['command', 'command', 'command', 'ipmi', 'redfish']);
  const by = (name: string) => seed.hosts.find((h) => h.name === name)!;
  expect(by('mp30-ar1')).toMatchObject({ accel: 'kvm', suites: { armhfKernelUpgrade: { guest: { kind: 'prepared' } } } });
  expect(by('kunpeng920').suites.pcieRootPorts).toMatchObject({
    machineTypes: ['virt-2.12'],
    expectCeiling: { 'virt-2.12': 15 },
    portDevices: ['xhci', 'video'],
  });
  expect(by('kunpeng920').suites.pcieRootPorts?.firmware.loader).toMatch(/^\/usr\/share\/edk2\.git\/aarch64\//);
  expect(by('x86-pmem').suites.snapshotKexec).toMatchObject({ modes: ['devdax', 'fsdax'], machine: 'q35' });
  // FreeBSD's uname -m (amd64) is x86_64.
  expect(by('xen-freebsd')).toMatchObject({
    os: 'freebsd',
    expect: { arch: 'x86_64' },
    suites: { xen: { dom0Mem: '8192M', dom0MaxVcpus: 4 } },
  });
  expect(by('xen-arch').suites.xen?.pvGuest).toMatchObject({
    kernel: '/boot/vmlinuz-linux',
    ramdisk: '/boot/initramfs-linux.img',
    bridge: 'xenbr0',
  });
});

test('a config file that does not load names the file', async () => {
  const err = await loadLab('labs/does-not-exist.config.ts').catch((e: unknown) => e);
  expect((err as Error).message).toMatch(/\[lab:config\] cannot load .*does-not-exist\.config\.ts/);
});
