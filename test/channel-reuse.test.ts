/**
 * Fewer channels and connections per probe. The kept SFTP channel on a real sshd: many file
 * operations and a followed file share one subsystem start (each new channel costs a login
 * shell on many hosts); a followed file is read like `tail -c +1 -F`; a domain is defined
 * through it and the persistent shell; a domain is removed in one virsh connection.
 */

import { randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { DefineRejected, Virsh } from '../drivers/libvirt.js';
import { SshSession } from '../drivers/ssh.js';
import { Host } from '../targets/host.js';
import { hostSchema } from '../targets/schema.js';
import { childrenOf, testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial' });

let env: Awaited<ReturnType<typeof testSshd>>;
let dir: string;

test.beforeAll(async () => {
  env = await testSshd();
  dir = await mkdtemp(join(tmpdir(), 'labrig-follow-'));
  // Each SFTP channel the server starts leaves a line: the external sftp-server, as many hosts run it.
  const wrapper = join(dir, 'sftp-counting');
  await writeFile(wrapper, `#!/bin/sh\necho "$$" >> ${join(dir, 'sftp-starts')}\nexec /usr/lib/openssh/sftp-server\n`);
  await chmod(wrapper, 0o755);
  const configFile = join(env.sshd.dir, 'sshd_config');
  await writeFile(configFile, (await readFile(configFile, 'utf8')).replace('Subsystem sftp internal-sftp', `Subsystem sftp ${wrapper}`));
  process.kill(env.sshd.pid, 'SIGHUP');
  await expect
    .poll(
      () =>
        new SshSession('probe', env.config).exec('true').then(
          (r) => r.code,
          () => -1,
        ),
      { timeout: 20_000 },
    )
    .toBe(0);
});
test.afterAll(async () => {
  await env?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sftpStarts = async () => (await readFile(join(dir, 'sftp-starts'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

function collect(stream: Readable): { text: () => string; error: Promise<Error | undefined> } {
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('latin1')));
  const error = new Promise<Error | undefined>((resolve) => {
    stream.once('error', resolve);
    stream.once('close', () => resolve(undefined));
  });
  return { text: () => text, error };
}

test('SFTP operations and followed files of one connection share one channel', async () => {
  const ssh = new SshSession('local', env.config);
  try {
    const before = await sftpStarts();
    const path = join(dir, 'shared.txt');
    for (let i = 0; i < 5; i++) {
      await ssh.writeFile(path, `round ${i}`);
      expect((await ssh.readFile(path)).toString()).toBe(`round ${i}`);
    }
    const followed = ssh.followFile(path, { intervalMs: 20 });
    const got = collect(followed);
    await expect.poll(got.text, { timeout: 10_000 }).toBe('round 4');
    followed.destroy();
    await expect.poll(sftpStarts, { timeout: 5_000 }).toBe(before + 1);
  } finally {
    ssh.close();
  }
});

test('a followed file: waits for it to appear, every byte in order, read again when replaced, nothing after destroy', async () => {
  const ssh = new SshSession('local', env.config);
  try {
    const path = join(dir, `serial-${randomBytes(3).toString('hex')}.log`);
    const followed = ssh.followFile(path, { intervalMs: 20 });
    const got = collect(followed);
    await new Promise((r) => setTimeout(r, 200));
    const binary = Buffer.from([0, 1, 0xff, 0x0d, 0x0a]).toString('latin1');
    await writeFile(path, `UEFI ${binary}`, 'latin1');
    await expect.poll(got.text, { timeout: 10_000 }).toBe(`UEFI ${binary}`);
    const big = 'x'.repeat(200_000);
    await appendFile(path, `\nBooting Linux\n${big}\n`);
    await expect.poll(() => got.text().length, { timeout: 10_000 }).toBe(`UEFI ${binary}\nBooting Linux\n${big}\n`.length);
    // A rotation: a new, shorter file under the same path is followed from its start.
    await writeFile(`${path}.new`, 'after rotation\n');
    await rename(`${path}.new`, path);
    await expect.poll(got.text, { timeout: 10_000 }).toMatch(/\nafter rotation\n$/);
    followed.destroy();
    const length = got.text().length;
    await appendFile(path, 'late\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(got.text().length).toBe(length);
  } finally {
    ssh.close();
  }
});

test('a followed file whose connection is lost ends with an error that names the file', async () => {
  const ssh = new SshSession('local', env.config);
  try {
    const path = join(dir, 'lost.log');
    await writeFile(path, 'first\n');
    const followed = ssh.followFile(path, { intervalMs: 20 });
    const got = collect(followed);
    await expect.poll(got.text, { timeout: 10_000 }).toBe('first\n');
    for (const pid of await childrenOf(env.sshd.pid)) process.kill(pid, 'SIGKILL');
    const err = await got.error;
    expect(err?.message).toContain(path);
  } finally {
    ssh.close();
  }
});

test('virsh define: the XML travels over SFTP and is defined through the shell; a refusal keeps libvirt words, not the temporary path', async () => {
  // A stand-in for virsh (libvirtd is not part of this test): it records the file it was given.
  const bin = join(dir, 'bin');
  const record = join(dir, 'defined.xml');
  await rm(bin, { recursive: true, force: true });
  await mkdir(bin);
  await writeFile(
    join(bin, 'virsh'),
    `#!/bin/sh\ncase "$*" in\n*dumpxml*) cat ${record};;\n*define*) f=$(eval echo "\\$$#"); cp "$f" ${record}; echo "$f" > ${record}.path; grep -q reject-me "$f" && { echo "error: Failed to define domain from $f" >&2; echo "error: unsupported configuration: nope" >&2; exit 1; }; echo "Domain defined from $f";;\nesac\n`,
  );
  await chmod(join(bin, 'virsh'), 0o755);
  const host = new Host(hostSchema.parse({ name: 'local', role: 'local', ssh: env.config, expect: { arch: 'x86_64' } }), {
    logDir: join(dir, 'logs'),
  });
  try {
    const before = await sftpStarts();
    const runner = {
      name: host.name,
      ssh: host.ssh,
      run: (command: string, opts?: { timeoutMs?: number; check?: boolean }) => host.run(`PATH=${bin}:$PATH; ${command}`, opts),
      exec: () => Promise.reject(new Error('define must not open a channel of its own')),
    };
    const virsh = new Virsh(runner);
    const spec = {
      name: 'labrig-define-test',
      type: 'qemu',
      arch: 'aarch64',
      machine: 'virt',
      memoryMiB: 256,
      vcpus: 1,
      serialLog: '/tmp/x.log',
    } as const;
    const { xml } = await virsh.define(spec);
    expect(xml).toContain('<name>labrig-define-test</name>');
    const sent = (await readFile(`${record}.path`, 'utf8')).trim();
    expect(sent).toMatch(/^\/tmp\/labrig-define-[0-9a-f]{16}\.xml$/);
    expect((await stat(sent).catch(() => undefined))?.isFile(), `${sent} is removed after the define`).toBeUndefined();
    const rejected = await virsh.define({ ...spec, name: 'reject-me' }).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(DefineRejected);
    expect((rejected as DefineRejected).libvirtMessage).toBe(
      'Failed to define domain from the domain XML\nunsupported configuration: nope',
    );
    expect(await sftpStarts()).toBe(before + 1);
  } finally {
    await host.close();
  }
});

test('virsh remove: destroy and undefine in one virsh batch that names the domain exactly, whatever its name', async () => {
  // Real virsh on its test driver (no daemon); the runner is a local sh that keeps what virsh says.
  const err = join(dir, 'virsh.err');
  const commands: string[] = [];
  const run = async (command: string) => {
    commands.push(command);
    const r = await execa('sh', ['-c', command.replaceAll('>/dev/null 2>&1', `2>>${err}`)], { reject: false });
    return { stdout: r.stdout, stderr: r.stderr, code: r.exitCode ?? null, signal: null, ms: 0 };
  };
  const virsh = new Virsh({ name: 'local', run, exec: run }, { uri: 'test:///default', virsh: 'virsh' });
  await virsh.remove("it's odd; list");
  expect(commands).toHaveLength(1);
  expect(await readFile(err, 'utf8')).toBe(`${"error: failed to get domain 'it's odd; list'\n".repeat(3)}`);
});
