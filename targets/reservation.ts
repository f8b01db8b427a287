/**
 * What a lab engineer says about a host, kept ON the host so every runner sees it without a
 * coordinator (the same reason the lease lives there): a reservation (`labrig lock`: who,
 * since when, why) and a persistent state (`labrig state`: good, maintenance, retired).
 * Both live in the lab's `hostStateDir`, a directory that survives reboots — unlike the lease,
 * whose /var/lock is a tmpfs on Debian: an engineer who power-cycles the host they reserved
 * keeps the reservation. Every change is appended to <dir>/log.
 * Whatever is read from the host is parsed as data; what we write travels on stdin or quoted.
 */
import { hostname, userInfo } from 'node:os';
import { z } from 'zod';
import type { HostCommands } from '../drivers/command.js';
import { LabError } from '../drivers/errors.js';
import { shellQuote } from '../drivers/ssh.js';

export const hostStates = ['good', 'maintenance', 'retired'] as const;
export type HostStateName = (typeof hostStates)[number];

const reservationSchema = z.object({ holder: z.string().min(1), since: z.string().min(1), reason: z.string() });
const hostStateSchema = z.object({ state: z.enum(hostStates), by: z.string().min(1), since: z.string().min(1), reason: z.string() });
export type Reservation = z.infer<typeof reservationSchema>;
export type HostState = z.infer<typeof hostStateSchema>;

/** A file that is there but does not parse: treated as a reservation (fail safe), never as free. */
export interface Unreadable {
  unreadable: string;
}

export interface HostMarks {
  reservation: Reservation | Unreadable | undefined;
  state: HostState | Unreadable | undefined;
}

/** What this module needs of a host's commands (SshSession and Host both fit). */
export type RemoteExec = Pick<HostCommands, 'name' | 'exec'>;

// generous: an emulated host under TCG on a loaded runner answers a `cat` in seconds, not milliseconds
const TIMEOUT_MS = 60_000;

/** user@runner; LABRIG_USER names the person when everybody logs in to a shared runner as root. */
export function whoAmI(env: NodeJS.ProcessEnv = process.env): string {
  return `${env.LABRIG_USER || userInfo().username}@${hostname()}`;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export const isUnreadable = (m: object | undefined): m is Unreadable => m !== undefined && 'unreadable' in m;

export function describeReservation(r: Reservation): string {
  return `reserved by ${r.holder} since ${r.since}: ${r.reason}`;
}

export function describeState(s: HostState): string {
  return `${s.state} since ${s.since} (set by ${s.by})${s.reason ? `: ${s.reason}` : ''}`;
}

async function run(ssh: RemoteExec, what: string, command: string, input?: string): Promise<string> {
  const r = await ssh.exec(command, { timeoutMs: TIMEOUT_MS, input });
  if (r.code !== 0)
    throw new LabError(
      'lab-setup',
      `${what}: exit ${r.code ?? r.signal ?? 'status missing (channel closed)'}: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`,
      { host: ssh.name },
    );
  return r.stdout;
}

function parseMark<T>(schema: z.ZodType<T>, text: string, path: string): T | Unreadable {
  try {
    return schema.parse(JSON.parse(text));
  } catch {
    return { unreadable: `${path} is not a labrig record: ${JSON.stringify(text.slice(0, 80))}` };
  }
}

/** Parses the output of the read script: `@@<name> present|absent` then the file's text. */
export function parseMarks(output: string, dir: string): HostMarks {
  const sections = new Map<string, string | undefined>();
  for (const part of output.split(/^@@/m).slice(1)) {
    const nl = part.indexOf('\n');
    const [name, presence] = (nl < 0 ? part : part.slice(0, nl)).trim().split(' ');
    sections.set(name ?? '', presence === 'present' ? part.slice(nl + 1).trim() : undefined);
  }
  if (!sections.has('reservation') || !sections.has('state'))
    throw new LabError('lab-setup', `cannot read ${dir}: unexpected answer ${JSON.stringify(output.slice(0, 200))}`);
  const r = sections.get('reservation');
  const s = sections.get('state');
  return {
    reservation: r === undefined ? undefined : parseMark(reservationSchema, r, `${dir}/reservation`),
    state: s === undefined ? undefined : parseMark(hostStateSchema, s, `${dir}/state`),
  };
}

export async function readMarks(ssh: RemoteExec, dir: string): Promise<HostMarks> {
  const d = shellQuote(dir);
  const out = await run(
    ssh,
    `read ${dir}`,
    `for f in reservation state; do if [ -e ${d}/$f ]; then echo "@@$f present"; cat ${d}/$f; echo; else echo "@@$f absent"; fi; done`,
  );
  return parseMarks(out, dir);
}

export type LockResult = { taken: true; renewed: boolean; reservation: Reservation } | { taken: false; heldBy: Reservation | Unreadable };

/**
 * Takes the reservation: a hard link of a complete temporary file, so two engineers locking at
 * once cannot both win, and a reader never sees half a file. Your own reservation is renewed
 * with the new reason (its `since` kept).
 */
export async function lockHost(ssh: RemoteExec, dir: string, who: string, reason: string): Promise<LockResult> {
  const d = shellQuote(dir);
  const mine: Reservation = { holder: who, since: now(), reason };
  const script = [
    `mkdir -p ${d} && t=${d}/.reservation.$$ && cat > "$t" || exit 1`,
    `if ln "$t" ${d}/reservation 2>/dev/null; then rm -f "$t"; printf '%s lock %s\\n' "$(date -u +%FT%TZ)" "$(cat ${d}/reservation)" >> ${d}/log; echo LOCKED;`,
    `else rm -f "$t"; echo HELD; cat ${d}/reservation; fi`,
  ].join('\n');
  const out = await run(ssh, `lock ${dir}/reservation`, script, JSON.stringify(mine));
  if (out.startsWith('LOCKED')) return { taken: true, renewed: false, reservation: mine };
  const heldText = out.replace(/^HELD\n/, '').trim();
  if (!heldText) throw new LabError('lab-setup', `could not create ${dir}/reservation (and no reservation is there)`, { host: ssh.name });
  const held = parseMark(reservationSchema, heldText, `${dir}/reservation`);
  if (isUnreadable(held) || held.holder !== who) return { taken: false, heldBy: held };
  const renewed: Reservation = { ...held, reason };
  await run(
    ssh,
    `renew ${dir}/reservation`,
    `t=${d}/.reservation.$$ && cat > "$t" && mv "$t" ${d}/reservation && printf '%s renew %s\\n' "$(date -u +%FT%TZ)" "$(cat ${d}/reservation)" >> ${d}/log`,
    JSON.stringify(renewed),
  );
  return { taken: true, renewed: true, reservation: renewed };
}

export type UnlockResult = { released: Reservation | Unreadable | undefined } | { refused: Reservation | Unreadable };

/** Releases the reservation; someone else's (or an unreadable one) only with `force`, logged on the host as such. */
export async function unlockHost(ssh: RemoteExec, dir: string, who: string, force: boolean): Promise<UnlockResult> {
  const { reservation } = await readMarks(ssh, dir);
  if (!reservation) return { released: undefined };
  const theirs = isUnreadable(reservation) || reservation.holder !== who;
  if (theirs && !force) return { refused: reservation };
  const d = shellQuote(dir);
  const entry = theirs ? `force-unlock by ${who} of` : 'unlock';
  await run(
    ssh,
    `unlock ${dir}/reservation`,
    `[ -e ${d}/reservation ] || exit 0; printf '%s %s %s\\n' "$(date -u +%FT%TZ)" ${shellQuote(entry)} "$(cat ${d}/reservation)" >> ${d}/log && rm -f ${d}/reservation`,
  );
  return { released: reservation };
}

export async function setHostState(ssh: RemoteExec, dir: string, state: HostStateName, who: string, reason: string): Promise<HostState> {
  const d = shellQuote(dir);
  const record: HostState = { state, by: who, since: now(), reason };
  await run(
    ssh,
    `write ${dir}/state`,
    `mkdir -p ${d} && t=${d}/.state.$$ && cat > "$t" && mv "$t" ${d}/state && printf '%s state %s\\n' "$(date -u +%FT%TZ)" "$(cat ${d}/state)" >> ${d}/log`,
    JSON.stringify(record),
  );
  return record;
}

export interface MarkCheck {
  check: string;
  ok: boolean;
  detail: string;
}

/**
 * doctor's view: a host reserved by someone else, or in a state other than good, fails — so
 * `labrig run` quarantines it and its tests are skipped with this reason. Your own
 * reservation passes: the engineer who reserved a host may run on it.
 */
export async function markChecks(ssh: RemoteExec, dir: string, who = whoAmI()): Promise<MarkCheck[]> {
  let marks: HostMarks;
  try {
    marks = await readMarks(ssh, dir);
  } catch (e) {
    const detail = `cannot read the reservation and state in ${dir}: ${(e as Error).message.split('\n')[0]}`;
    return [{ check: 'lock', ok: false, detail }];
  }
  const { reservation: r, state: s } = marks;
  const lock: MarkCheck = !r
    ? { check: 'lock', ok: true, detail: 'not reserved' }
    : isUnreadable(r)
      ? { check: 'lock', ok: false, detail: r.unreadable }
      : { check: 'lock', ok: r.holder === who, detail: r.holder === who ? `${describeReservation(r)} (you)` : describeReservation(r) };
  const state: MarkCheck = !s
    ? { check: 'state', ok: true, detail: 'good (never set)' }
    : isUnreadable(s)
      ? { check: 'state', ok: false, detail: s.unreadable }
      : { check: 'state', ok: s.state === 'good', detail: describeState(s) };
  return [lock, state];
}
