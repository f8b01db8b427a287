/**
 * The lease's protocol with its holder process on the host, and the decisions taken on what
 * the host reports: pure functions. The holder script gets everything as positional arguments
 * or on stdin; what it reads from the host comes back framed by a nonce the host cannot see
 * (it arrives on stdin) and is parsed here as data — no host-written text ever reaches a
 * command line. On the host, for a lease at <path>:
 *   <path>            who holds it (one JSON line, written by the holder)
 *   <path>.lock       flock(1) held by the holder process for as long as it lives, or lockf(1)
 *                     around it where there is no flock (FreeBSD): lease-scripts.ts
 *   <path>.heartbeat  epoch seconds, rewritten on every heartbeat the runner sends
 *   <path>.log        every acquire, reclaim, release, reservation and break
 *   <reserve>         "<token> <deadline> <holder JSON>": the lease is ours across a reboot or
 *                     kexec until <deadline> (host clock); kept on persistent storage, because
 *                     the reboot clears /var/lock (tmpfs) and kills the holder.
 */
import { z } from 'zod';

const holderSchema = z.object({
  holder: z.string(),
  runId: z.string(),
  token: z.string().optional(),
  since: z.number(),
  pid: z.number().int(),
});
export type HolderRecord = z.infer<typeof holderSchema>;

export interface Reservation {
  token: string;
  /** Host clock, epoch seconds. */
  deadline: number;
  holder: HolderRecord | undefined;
}

export interface LeaseState {
  /** The probe took the flock: nobody holds the lease right now. */
  free: boolean;
  /** Host clock, epoch seconds. */
  now: number;
  holder: HolderRecord | undefined;
  /** The holder file as read, for messages when it does not parse. */
  holderText: string;
  heartbeat: number | undefined;
  reserved: Reservation | undefined;
  log: string[];
}

/** Host text made safe to show: control characters replaced, length capped. */
export function printable(s: string, max = 160): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

export function parseHolder(text: string): HolderRecord | undefined {
  try {
    const r = holderSchema.safeParse(JSON.parse(text.trim()));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export function parseReservation(text: string): Reservation | undefined {
  const m = /^(\S+) (\d{1,12}) (.*)$/.exec(text.trim());
  return m ? { token: m[1]!, deadline: Number(m[2]), holder: parseHolder(m[3]!) } : undefined;
}

/** The sections the holder script printed, each framed by `\n<nonce> <name>\n`. */
export function sections(text: string, nonce: string): Map<string, string> {
  const out = new Map<string, string>();
  const parts = text.split(`\n${nonce} `);
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n');
    if (nl < 0) out.set(part, '');
    else out.set(part.slice(0, nl), part.slice(nl + 1));
  }
  return out;
}

export function parseState(text: string, nonce: string): LeaseState | undefined {
  const s = sections(text, nonce);
  const state = /^(free|held) (\d+)$/.exec((s.get('state') ?? '').trim());
  if (!state || !s.has('ask')) return undefined;
  const holderText = (s.get('holder') ?? '').trim();
  const hb = (s.get('heartbeat') ?? '').trim();
  return {
    free: state[1] === 'free',
    now: Number(state[2]),
    holder: holderText ? parseHolder(holderText) : undefined,
    holderText,
    heartbeat: /^\d{1,12}$/.test(hb) ? Number(hb) : undefined,
    reserved: parseReservation(s.get('reserved') ?? ''),
    log: (s.get('log') ?? '').split('\n').filter(Boolean),
  };
}

export function describeHolder(h: HolderRecord | undefined, text = ''): string {
  if (h) return `${printable(h.holder)} (run ${printable(h.runId)})`;
  return text ? `an unknown holder (holder file: ${JSON.stringify(printable(text, 200))})` : 'an unknown holder';
}

const iso = (epochS: number) => new Date(epochS * 1000).toISOString();

export type AcquireDecision =
  | { action: 'take'; notes: string[] }
  | { action: 'wait'; why: string; holder: HolderRecord | undefined; heartbeatAgeS: number | null };

/** A fresh acquire: free and not reserved by someone away on a reboot → take it. */
export function decideAcquire(s: LeaseState): AcquireDecision {
  if (!s.free) {
    const age = s.heartbeat === undefined ? null : s.now - s.heartbeat;
    const since = s.holder ? ` since ${iso(s.holder.since)}` : '';
    return {
      action: 'wait',
      why: `held by ${describeHolder(s.holder, s.holderText)}${since}, heartbeat ${age ?? '?'} s ago`,
      holder: s.holder,
      heartbeatAgeS: age,
    };
  }
  const r = s.reserved;
  if (r && r.deadline > s.now)
    return {
      action: 'wait',
      why: `reserved by ${describeHolder(r.holder)} across a reboot or kexec until ${iso(r.deadline)}`,
      holder: r.holder,
      heartbeatAgeS: null,
    };
  return { action: 'take', notes: r ? [`the reservation of ${describeHolder(r.holder)} expired at ${iso(r.deadline)}`] : [] };
}

export type ReclaimDecision =
  /** Take it; `lost` says why it was not ours meanwhile (someone else had it), if so. */
  | { action: 'take'; lost: string | undefined }
  /** Our own earlier holder still runs (its connection is not yet seen closed): end it, then retry. */
  | { action: 'end-own'; pid: number }
  | { action: 'lost'; why: string };

/** Lines of the log written after the last one that names `token` (all of them if none does). */
export function logSince(log: readonly string[], token: string): string[] {
  const needle = `"token":${JSON.stringify(token)}`;
  let last = -1;
  log.forEach((l, i) => l.includes(needle) && (last = i));
  return log.slice(last + 1);
}

/**
 * Taking the lease again after the host was away (reboot, kexec, a dropped connection): it is
 * still ours only if nobody else holds it, reserved it, or took it in between.
 */
export function decideReclaim(s: LeaseState, token: string): ReclaimDecision {
  if (!s.free) {
    if (s.holder?.token === token) return { action: 'end-own', pid: s.holder.pid };
    return { action: 'lost', why: `held by ${describeHolder(s.holder, s.holderText)}` };
  }
  const since = logSince(s.log, token);
  // Someone broke our holder as stale: the lease is theirs to take, not ours to take back.
  const broken = since.find((l) => /^\S+ broken by /.test(l));
  if (broken) return { action: 'lost', why: `broken by another runner: ${JSON.stringify(printable(broken, 300))}` };
  const lost: string[] = [];
  if (s.reserved && s.reserved.token !== token) lost.push(`reserved by ${describeHolder(s.reserved.holder)}`);
  if (s.holder && s.holder.token !== token) lost.push(`taken by ${describeHolder(s.holder)} meanwhile`);
  else if (!s.holder && s.holderText) lost.push(`the holder file was rewritten: ${describeHolder(undefined, s.holderText)}`);
  for (const line of since) {
    const m = /^\S+ (acquired|reclaimed) (.*)$/.exec(line);
    if (m) lost.push(`the lease log shows it ${m[1]} by ${describeHolder(parseHolder(m[2]!), m[2])}`);
  }
  return { action: 'take', lost: lost.length ? [...new Set(lost)].join('; ') : undefined };
}
