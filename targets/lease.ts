/**
 * An exclusive lease held ON the host, so runs from different machines never share it.
 * A process started over our SSH connection takes `flock` on <path>.lock and keeps it while it
 * lives; it writes a heartbeat every few seconds and dies with the connection (its next
 * heartbeat write to the closed channel raises SIGPIPE). <path> says who holds it; <path>.log
 * keeps every acquire, release and break. A holder whose heartbeat is older than the TTL
 * (a hung connection) may be broken; that is logged on both sides.
 */
import { hostname, userInfo } from 'node:os';
import { LabError } from '../drivers/errors.js';
import type { Recorder } from '../drivers/recorder.js';
import { shellQuote, type CommandStream, type SshSession } from '../drivers/ssh.js';

export interface LeaseOptions {
  path: string;
  runId: string;
  ttlMs: number;
  heartbeatMs: number;
  waitMs: number;
  recorder: Recorder;
}

export interface LeaseHolder {
  holder: string;
  runId: string;
  since: number;
  pid: number;
  heartbeatAgeS: number | null;
}

export interface Lease {
  holder: LeaseHolder;
  release(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function holderScript(o: LeaseOptions, who: string): string {
  const p = shellQuote(o.path);
  const hb = Math.max(1, Math.round(o.heartbeatMs / 1000));
  const info = `{"holder":${JSON.stringify(who)},"runId":${JSON.stringify(o.runId)},"since":%s,"pid":%s}`;
  return [
    `mkdir -p "$(dirname ${p})"`,
    `exec 9>>${p}.lock`,
    `if ! flock -n 9; then now=$(date +%s); hb=$(cat ${p}.heartbeat 2>/dev/null || echo ''); echo "HELD now=$now hb=$hb"; cat ${p} 2>/dev/null; echo; exit 75; fi`,
    `now=$(date +%s); printf ${shellQuote(info)} "$now" "$$" > ${p}.tmp && mv ${p}.tmp ${p}`,
    `echo "$now" > ${p}.heartbeat`,
    `echo "$(date -u +%FT%TZ) acquired $(cat ${p})" >> ${p}.log`,
    `echo "ACQUIRED $(cat ${p})"`,
    `while :; do sleep ${hb} 9>&-; date +%s > ${p}.heartbeat 9>&-; echo hb || exit 0; done`,
  ].join('\n');
}

export function parseHeld(text: string): LeaseHolder | undefined {
  const m = /HELD now=(\d+) hb=(\d*)\n(\{.*\})?/.exec(text);
  if (!m) return undefined;
  const info = m[3] ? (JSON.parse(m[3]) as Omit<LeaseHolder, 'heartbeatAgeS'>) : { holder: 'unknown', runId: 'unknown', since: 0, pid: 0 };
  return { ...info, heartbeatAgeS: m[2] ? Number(m[1]) - Number(m[2]) : null };
}

async function readUntil(stream: CommandStream, done: (text: string) => boolean, timeoutMs: number): Promise<string> {
  let text = '';
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      stream.stdout.removeListener('data', onData);
      stream.stdout.removeListener('close', finish);
      resolve(text);
    };
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      if (done(text)) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    stream.stdout.on('data', onData);
    stream.stdout.once('close', finish);
  });
}

export async function acquireLease(ssh: SshSession, o: LeaseOptions): Promise<Lease> {
  const who = `${userInfo().username}@${hostname()} pid ${process.pid}`;
  const deadline = Date.now() + o.waitMs;
  for (;;) {
    const stream = await ssh.openCommand(`sh -c ${shellQuote(holderScript(o, who))}`);
    const text = await readUntil(stream, (t) => /ACQUIRED .*\n/.test(t) || /HELD[^]*\n[^]*\n/.test(t), 30_000);
    const acquired = /ACQUIRED (\{.*\})/.exec(text);
    if (acquired) {
      stream.stdout.on('data', () => undefined); // keep draining heartbeats
      const holder = { ...(JSON.parse(acquired[1]!) as Omit<LeaseHolder, 'heartbeatAgeS'>), heartbeatAgeS: 0 };
      o.recorder.log(`lease on ${ssh.host} acquired by ${who} (run ${o.runId})`);
      return {
        holder,
        async release() {
          const p = shellQuote(o.path);
          await ssh
            .exec(`echo "$(date -u +%FT%TZ) released $(cat ${p})" >> ${p}.log; grep -q '"pid":${holder.pid}}' ${p} && rm -f ${p}; kill ${holder.pid}`, { timeoutMs: 10_000 })
            .catch(() => undefined);
          await stream.close();
          o.recorder.log(`lease on ${ssh.host} released`);
        },
      };
    }
    await stream.close();
    const held = parseHeld(text);
    if (!held) throw new LabError('lease-held', `could not take the lease at ${o.path}: ${text.trim() || 'no answer'}`, { host: ssh.host });
    if (held.heartbeatAgeS !== null && held.heartbeatAgeS * 1000 > o.ttlMs && held.pid > 1) {
      const msg = `breaking stale lease of ${held.holder} (run ${held.runId}): heartbeat ${held.heartbeatAgeS} s old > TTL ${o.ttlMs / 1000} s`;
      o.recorder.log(`${ssh.host}: ${msg}`);
      const p = shellQuote(o.path);
      await ssh.exec(`echo "$(date -u +%FT%TZ) broken by ${who}: ${msg}" >> ${p}.log; kill -KILL ${held.pid}`, { timeoutMs: 10_000 });
      continue;
    }
    if (Date.now() >= deadline)
      throw new LabError('lease-held', `held by ${held.holder} (run ${held.runId}) since ${new Date(held.since * 1000).toISOString()}, heartbeat ${held.heartbeatAgeS ?? '?'} s ago; waited ${o.waitMs} ms`, { host: ssh.host });
    await sleep(Math.min(2000, Math.max(100, deadline - Date.now())));
  }
}
