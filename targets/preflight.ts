/**
 * What each part of a host needs on the runner before anything connects: the key and its
 * format, the env vars that hold secrets, the files (a BMC's CA, a serial device) and the
 * tools (ipmitool, a PDU script), the guest images on the runner the config names. Each problem is one line naming the field
 * and the fix; a part with a problem is not tried (and never reported ok).
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import ssh2 from 'ssh2';
import { imagePaths, missingImageLine } from './image-paths.js';
import type { HostConfig } from './schema.js';

export type Part = 'ssh' | 'console' | 'power' | 'images';
export interface Problem {
  part: Part;
  line: string;
}

async function exists(path: string, mode = constants.R_OK): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}

/** A runner command: an absolute path that is executable, or a name found on PATH. */
export async function findTool(name: string): Promise<boolean> {
  if (isAbsolute(name) || name.includes('/')) return exists(name, constants.X_OK);
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean))
    if (await exists(join(dir, name), constants.X_OK)) return true;
  return false;
}

/** ssh2 reads OpenSSH and PEM (PKCS#1) keys; a PKCS#8 or encrypted key gets the command that converts it. */
function keyProblem(key: string | Buffer, field: string): string | undefined {
  const parsed = ssh2.utils.parseKey(key);
  if (!(parsed instanceof Error)) return undefined;
  const text = key.toString();
  if (/-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(text))
    return `${field}: a PKCS#8 private key, which ssh2 cannot read: convert a copy of an RSA or ECDSA key with \`ssh-keygen -p -N '' -f <copy>\` (rewrites it in OpenSSH format)`;
  return `${field}: not a private key ssh2 can read (${parsed.message}); OpenSSH ("BEGIN OPENSSH PRIVATE KEY") or PEM RSA/EC keys are`;
}

const unset = (name: string, field: string) =>
  process.env[name] ? undefined : `${field}: env var ${name} is not set (export it on the runner, or as a CI secret)`;

export async function preflight(h: HostConfig, index: number): Promise<Problem[]> {
  const at = `hosts[${index}]`;
  const problems: Problem[] = [];
  const add = (part: Part, line: string | undefined) => line && problems.push({ part, line });

  const s = h.ssh;
  if (s.identityEnv) {
    const key = process.env[s.identityEnv];
    add('ssh', key ? keyProblem(key, `${at}.ssh.identityEnv (${s.identityEnv})`) : unset(s.identityEnv, `${at}.ssh.identityEnv`));
  } else if (s.identityFile) {
    const key = await readFile(s.identityFile).catch((e: NodeJS.ErrnoException) => e);
    add(
      'ssh',
      key instanceof Error
        ? `${at}.ssh.identityFile: cannot read ${s.identityFile} (${key.code ?? key.message})`
        : keyProblem(key, `${at}.ssh.identityFile (${s.identityFile})`),
    );
  } else if (s.passwordEnv) add('ssh', unset(s.passwordEnv, `${at}.ssh.passwordEnv`));

  const c = h.console;
  if (c?.login?.passwordEnv) add('console', unset(c.login.passwordEnv, `${at}.console.login.passwordEnv`));
  if (c?.kind === 'serial' && !(await exists(c.path, constants.R_OK | constants.W_OK)))
    add(
      'console',
      `${at}.console.path: ${c.path} does not exist or is not read-writable on the runner (plug the adapter in; use its /dev/serial/by-id name)`,
    );
  if (c?.kind === 'unix' && !(await exists(c.path))) add('console', `${at}.console.path: no socket ${c.path} on the runner`);
  if (c?.kind === 'command' && c.on === 'runner' && !(await findTool(c.argv[0]!)))
    add(
      'console',
      `${at}.console.argv[0]: ${c.argv[0]} is not installed on the runner${c.argv[0] === 'ipmitool' ? ' (apt-get install ipmitool)' : ''}`,
    );
  for (const name of c?.kind === 'command' ? (c.secretEnv ?? []) : []) add('console', unset(name, `${at}.console.secretEnv`));

  const p = h.power;
  if (p?.kind === 'ipmi') {
    if (!(await findTool('ipmitool'))) add('power', `${at}.power: ipmitool is not installed on the runner (apt-get install ipmitool)`);
    add('power', unset(p.passwordEnv, `${at}.power.passwordEnv`));
  }
  if (p?.kind === 'redfish') {
    add('power', unset(p.passwordEnv, `${at}.power.passwordEnv`));
    if (p.caFile && !(await exists(p.caFile)))
      add(
        'power',
        `${at}.power.caFile: ${p.caFile} does not exist on the runner (the BMC's CA certificate, PEM; its self-signed certificate is pinned this way)`,
      );
  }
  if (p?.kind === 'command') {
    for (const tool of new Set([p.on[0]!, p.off[0]!, p.status[0]!])) {
      const fields = (['on', 'off', 'status'] as const).filter((a) => p[a][0] === tool).map((a) => `${at}.power.${a}[0]`);
      if (!(await findTool(tool))) add('power', `${fields.join(', ')}: ${tool} is not an executable on the runner`);
    }
    for (const name of p.secretEnv ?? []) add('power', unset(name, `${at}.power.secretEnv`));
  }
  for (const image of imagePaths(h)) if (image.on === 'runner' && !(await exists(image.path))) add('images', missingImageLine(at, image));
  return problems;
}
