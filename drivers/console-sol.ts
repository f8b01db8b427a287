/**
 * A console through IPMI Serial-over-LAN: `ipmitool -I lanplus … sol activate` on the runner,
 * its stdio the serial line. The BMC lets one session hold the SOL payload; a second one is
 * refused with "SOL payload already active on another session", which is console-busy
 * (naming the holder's session when the BMC says), or, with `takeOver`, ended with
 * `sol deactivate` and the console taken.
 */
import { PassThrough } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import type { Transport } from './console-transport.js';
import { LabError } from './errors.js';
import { type IpmiAccess, ipmiEnv, ipmitoolBase } from './ipmi.js';
import { runLocal } from './local.js';

export interface SolConfig extends IpmiAccess {
  takeOver: boolean;
}

export interface SolOptions {
  host?: string;
  env?: NodeJS.ProcessEnv;
  /** How long activation may take before it counts as a BMC that does not answer (default 30 s). */
  activateTimeoutMs?: number;
}

/**
 * ipmitool's escape character starts a command only right after a newline: Ctrl-] is one
 * no shell command line holds, where the default `~` would end the session on `~.`.
 */
export const SOL_ESCAPE = '\x1d';
const OPERATIONAL = /\[SOL Session operational/;
export const SOL_BUSY = /SOL payload already active on another session/i;

export function solArgv(c: IpmiAccess, action: 'activate' | 'deactivate'): string[] {
  const base = ipmitoolBase({ ...c, interface: 'lanplus' });
  return action === 'activate' ? [...base, '-e', SOL_ESCAPE, 'sol', 'activate'] : [...base, 'sol', 'deactivate'];
}

export const describeSol = (c: IpmiAccess): string => `IPMI SOL ${c.address}:${c.port} (user ${c.user})`;

/** `raw 0x06 0x4b 0x01 0x01` (Get Payload Instance Info, SOL instance 1): the holder's session ID, little-endian. */
export function parsePayloadHolder(rawOut: string): string | undefined {
  const bytes = rawOut
    .trim()
    .split(/\s+/)
    .filter((b) => /^[0-9a-f]{2}$/i.test(b));
  if (bytes.length < 4) return undefined;
  const id = bytes.slice(0, 4).reverse().join('').toLowerCase();
  return /^0+$/.test(id) ? undefined : `0x${id}`;
}

/** "user id : 2", "console ip : 10.0.0.9" out of `session info id …`. */
export function parseSessionInfo(text: string): { userId?: string; consoleIp?: string } {
  const field = (name: string) => text.match(new RegExp(`^${name}\\s*:\\s*(\\S.*)$`, 'mi'))?.[1]?.trim();
  return { userId: field('user id'), consoleIp: field('console ip') };
}

interface Attempt {
  sub: ResultPromise<{ stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; buffer: false; reject: false }>;
  out: PassThrough;
  stderr: () => string;
}

async function activate(
  c: SolConfig,
  env: Record<string, string>,
  timeoutMs: number,
  host: string | undefined,
): Promise<Attempt | { ended: string }> {
  // ipmitool's stdout is a pipe here, so stdio would hold console bytes (and the banner) in its buffer: unbuffered.
  const sub = execa('stdbuf', ['-o0', ...solArgv(c, 'activate')], {
    env,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    forceKillAfterDelay: 2000,
  });
  const out = new PassThrough();
  sub.stdout.pipe(out);
  let seen = '';
  let stderr = '';
  sub.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4096)));
  const ready = await new Promise<boolean | 'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    const onData = (b: Buffer) => {
      seen = (seen + b.toString('latin1')).slice(-4096);
      if (OPERATIONAL.test(seen)) {
        clearTimeout(timer);
        sub.stdout.off('data', onData);
        resolve(true);
      }
    };
    sub.stdout.on('data', onData);
    void sub.then(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (ready === true) return { sub, out, stderr: () => stderr };
  if (ready === 'timeout') {
    sub.kill('SIGTERM');
    await sub;
    throw new LabError(
      'unreachable',
      `${describeSol(c)}: no SOL session within ${timeoutMs} ms${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
      { host },
    );
  }
  const r = await sub;
  const status = r.exitCode !== undefined ? `exit ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
  if (r.exitCode === undefined && r.failed && !r.signal)
    throw new LabError('runner-tool', `cannot run ipmitool: ${r.shortMessage}`, { host });
  return { ended: `${status}: ${`${stderr}\n${seen}`.trim()}` };
}

/** Who holds the SOL payload, as far as the BMC tells (not every BMC answers these). */
async function holderOf(c: SolConfig, env: Record<string, string>): Promise<string> {
  const base = ipmitoolBase(c);
  const raw = await runLocal([...base, 'raw', '0x06', '0x4b', '0x01', '0x01'], { env, timeoutMs: 15_000, check: false }).catch(
    () => undefined,
  );
  const id = raw?.code === 0 ? parsePayloadHolder(raw.stdout) : undefined;
  if (!id) return 'held by another session (the BMC did not say which)';
  const info = await runLocal([...base, 'session', 'info', 'id', id], { env, timeoutMs: 15_000, check: false }).catch(() => undefined);
  const s = info?.code === 0 ? parseSessionInfo(info.stdout) : {};
  return `held by session ${id}${s.userId ? `, user id ${s.userId}` : ''}${s.consoleIp ? `, from ${s.consoleIp}` : ''}`;
}

export async function openSol(c: SolConfig, opts: SolOptions = {}): Promise<Transport> {
  const env = ipmiEnv(c, opts.env ?? process.env, opts.host, 'SOL console');
  const timeoutMs = opts.activateTimeoutMs ?? 30_000;
  const where = describeSol(c);
  let attempt = await activate(c, env, timeoutMs, opts.host);
  if ('ended' in attempt && SOL_BUSY.test(attempt.ended) && c.takeOver) {
    const d = await runLocal(solArgv(c, 'deactivate'), { env, timeoutMs: 15_000, check: false });
    if (d.code !== 0)
      throw new LabError('console-busy', `${where}: SOL busy, and sol deactivate failed: ${d.stderr.trim()}`, { host: opts.host });
    attempt = await activate(c, env, timeoutMs, opts.host);
  }
  if ('ended' in attempt) {
    if (SOL_BUSY.test(attempt.ended))
      throw new LabError('console-busy', `${where}: SOL payload already active, ${await holderOf(c, env)}`, { host: opts.host });
    throw new LabError('unreachable', `${where}: ipmitool sol activate ended (${attempt.ended})`, { host: opts.host });
  }
  const { sub, out, stderr } = attempt;
  return {
    readable: out,
    writable: sub.stdin,
    where,
    async close() {
      // The escape sequence ends the session at the BMC too; a killed ipmitool would leave the payload active until the BMC times it out.
      if (sub.exitCode === null && sub.signalCode === null && !sub.stdin.destroyed) sub.stdin.write(`\r${SOL_ESCAPE}.`);
      const timer = setTimeout(() => sub.kill('SIGTERM'), 3000);
      await sub;
      clearTimeout(timer);
    },
    async endReason() {
      const r = await sub;
      const status = r.exitCode !== undefined ? `exit code ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
      return `ipmitool sol activate ended with ${status}${stderr().trim() ? `: ${stderr().trim()}` : ''}`;
    },
  };
}
