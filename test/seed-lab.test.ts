/**
 * The seeds' lab config (labs/seed-lab.config.ts, written for real hardware) tried as a new user
 * would on a runner that has none of that lab's files, keys or tools: `labrig localize` moves
 * every address to 127.0.0.x first, and doctor runs in a network namespace of its own with no
 * route anywhere (`unshare -n`), so nothing can connect outside this machine.
 */

import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { parseLab } from '../targets/config.js';
import { assertLoopbackOnly } from '../targets/localize.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const labrig = join(repoRoot, 'bin/labrig.mjs');
let work: string;
test.beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'labrig-seed-'));
});
test.afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function localized(): Promise<string> {
  const out = join(work, 'seed-local.json');
  const r = await execa(process.execPath, [labrig, 'localize', join(repoRoot, 'labs/seed-lab.config.ts'), '--out', out], {
    reject: false,
    all: true,
  });
  expect(r.exitCode, r.all).toBe(0);
  return out;
}

test('localize: every address of the seed lab moves to its own 127.0.0.x; an address left outside is refused, naming the field', async () => {
  const file = await localized();
  const text = await readFile(file, 'utf8');
  expect(text).not.toMatch(/\b10\.20\./);
  const lab = parseLab(JSON.parse(text), file);
  expect(() => assertLoopbackOnly(lab)).not.toThrow();
  const addresses = lab.hosts.map((h) => h.ssh.address);
  expect(new Set(addresses).size).toBe(addresses.length);
  const power = lab.hosts[2]!.power;
  expect(power?.kind === 'redfish' && new URL(power.url).hostname).toMatch(/^127\.0\.0\.\d+$/);

  const leaked = JSON.parse(text);
  leaked.hosts[1].console.argv[4] = '10.20.1.12';
  expect(() => assertLoopbackOnly(parseLab(leaked))).toThrow(/hosts\[1\]\.console\.argv\[4\]: 10\.20\.1\.12/);
});

async function doctor(env: Record<string, string>) {
  const file = await localized();
  const r = await execa('unshare', ['-n', process.execPath, labrig, 'doctor'], {
    reject: false,
    all: true,
    cwd: work,
    extendEnv: false,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME!, LABRIG_CONFIG: file, ...env },
  });
  return { code: r.exitCode, lines: r.all.split('\n').filter(Boolean) };
}

test('doctor on a runner without the lab: each missing file, tool, env var or key format is one FAIL line naming the field; nothing is ok', async () => {
  const pkcs8 = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const { code, lines } = await doctor({ LAB_SSH_KEY: pkcs8 });
  expect(code, lines.join('\n')).toBe(3);
  expect(
    lines.every((l) => l.startsWith('FAIL ')),
    lines.join('\n'),
  ).toBe(true);
  const text = lines.join('\n');
  expect(text).toContain('hosts[0].ssh.identityEnv (LAB_SSH_KEY): a PKCS#8 private key');
  expect(text).toContain('ssh-keygen -p');
  expect(text).toContain('hosts[0].console.path: /dev/serial/by-id/');
  expect(text).toContain('hosts[0].console.login.passwordEnv: env var LAB_CONSOLE_PASSWORD is not set');
  expect(text).toMatch(
    /hosts\[0\]\.power\.on\[0\], hosts\[0\]\.power\.off\[0\], hosts\[0\]\.power\.status\[0\]: \/usr\/local\/bin\/pdu is not an executable/,
  );
  expect(text).toContain('hosts[1].power.passwordEnv: env var IPMI_PASSWORD is not set');
  expect(text).toContain('hosts[2].power.caFile: /etc/labrig/bmc-ca.pem does not exist');
  expect(text).toContain('hosts[2].power.passwordEnv: env var REDFISH_PASSWORD is not set');
  expect(text).not.toMatch(/ENOENT/);
  // Every host is named, each with its ssh line.
  for (const host of ['mp30-ar1', 'kunpeng920', 'x86-pmem', 'xen-freebsd', 'xen-arch'])
    expect(text).toMatch(new RegExp(`FAIL ${host}\\s+ssh `));
});

test('doctor with a usable key and the secrets set: every host is unreachable, a lab failure naming the 127.0.0.x address', async () => {
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // ssh2 cannot read PKCS#8: convert a copy as the doctor line says.
  const keyFile = join(work, 'id');
  await execa('sh', ['-c', 'umask 077; cat > "$1" && ssh-keygen -q -p -N "" -f "$1" >/dev/null', 'sh', keyFile], { input: key });
  const { code, lines } = await doctor({
    LAB_SSH_KEY: await readFile(keyFile, 'utf8'),
    IPMI_PASSWORD: 'x',
    REDFISH_PASSWORD: 'x',
    LAB_CONSOLE_PASSWORD: 'x',
  });
  expect(code, lines.join('\n')).toBe(3);
  const text = lines.join('\n');
  expect(text).toMatch(/FAIL kunpeng920\s+ssh\s+\[lab:unreachable\] host kunpeng920: cannot connect to 127\.0\.0\.\d+:22/);
  expect(text).toMatch(/FAIL xen-arch\s+console\s+not typed into without the host's lease: SSH is down/);
  expect(text).not.toMatch(/^ok /m);
});
