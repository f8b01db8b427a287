import { expect, test } from '@playwright/test';
import { LabError } from '../drivers/errors.js';
import { loadLab, parseLab } from '../targets/config.js';

const key = 'SHA256:' + 'x'.repeat(43);
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
  ['host key not a fingerprint', lab([host({ ssh: { address: 'a', identityFile: '/k', hostKey: 'ssh-ed25519 AAAA' } })]), 'hosts[0].ssh.hostKey: a pinned host-key fingerprint'],
  ['no credentials', lab([host({ ssh: { address: 'a', hostKey: key } })]), 'hosts[0].ssh: one of identityFile, identityEnv or passwordEnv'],
  ['a secret where an env-var name belongs', lab([host({ ssh: { address: 'a', hostKey: key, passwordEnv: 'hunter2!' } })]), 'hosts[0].ssh.passwordEnv: an environment variable NAME'],
  ['port out of range', lab([host({ ssh: { address: 'a', port: 70000, identityFile: '/k', hostKey: key } })]), 'hosts[0].ssh.port:'],
  ['unknown console kind', lab([host({ console: { kind: 'usb', path: '/dev/x' } })]), 'hosts[0].console.kind:'],
  ['serial console without a path', lab([host({ console: { kind: 'serial' } })]), 'hosts[0].console.path:'],
  ['redfish without https url', lab([host({ power: { kind: 'redfish', url: 'nope', user: 'u', passwordEnv: 'P' } })]), 'hosts[0].power.url:'],
  ['ipmi without a password env var', lab([host({ power: { kind: 'ipmi', address: 'b', user: 'u' } })]), 'hosts[0].power.passwordEnv:'],
  ['unknown expected feature', lab([host({ expect: { arch: 'x86_64', features: ['gpu'] } })]), 'hosts[0].expect.features[0]:'],
  ['typo in a field', lab([host({ sshh: {} })]), 'hosts[0]: Unrecognized key'],
  ['duplicate host names', lab([host(), host()]), 'hosts[1].name: duplicate host name "h1"'],
  ['bad host name', lab([host({ name: 'Kunpeng 920' })]), 'hosts[0].name: a host name'],
  ['lease ttl negative', lab([host()], { lease: { ttlMs: -1 } }), 'lease.ttlMs:'],
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

test('a valid config gets its defaults', () => {
  const parsed = parseLab(lab([host()]));
  expect(parsed.hosts[0]!.ssh).toMatchObject({ port: 22, user: 'root', maxChannels: 10 });
  expect(parsed.lease.path).toBe('/var/lock/labrig.lease');
  expect(parsed.hosts[0]!.role).toEqual(['local']);
  expect(parseLab(lab([host({ role: ['arm64-armhf', 'arm64-kunpeng'] })])).hosts[0]!.role).toEqual(['arm64-armhf', 'arm64-kunpeng']);
});

test('the seed lab example is valid and describes every role', async () => {
  const seed = await loadLab('labs/seed-lab.config.ts');
  expect(seed.hosts.flatMap((h) => h.role).sort()).toEqual(['arm64-armhf', 'arm64-kunpeng', 'x86-pmem', 'x86-xen']);
  expect(seed.hosts.map((h) => h.console?.kind).sort()).toEqual(['command', 'serial', 'tcp', 'tcp']);
  expect(seed.hosts.map((h) => h.power?.kind).sort()).toEqual(['command', 'command', 'ipmi', 'redfish']);
});

test('a config file that does not load names the file', async () => {
  const err = await loadLab('labs/does-not-exist.config.ts').catch((e: unknown) => e);
  expect((err as Error).message).toMatch(/\[lab:config\] cannot load .*does-not-exist\.config\.ts/);
});
