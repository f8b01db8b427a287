/**
 * A lab engineer's everyday commands (labgrid-client and LAVA habits): power, ssh, lock,
 * unlock, who, state. Each takes a host of the lab config by name; see host-args.ts for the
 * exit codes.
 */
import { Argument, type Command } from 'commander';
import { LabError } from '../drivers/errors.js';
import { createPower } from '../drivers/power.js';
import { SshSession } from '../drivers/ssh.js';
import { loadLab } from '../targets/config.js';
import {
  describeReservation,
  describeState,
  type HostMarks,
  type HostStateName,
  hostStates,
  isUnreadable,
  lockHost,
  readMarks,
  setHostState,
  unlockHost,
  whoAmI,
} from '../targets/reservation.js';
import type { HostConfig, Lab } from '../targets/schema.js';
import { commandAction, pickHost, pickHosts, UsageError } from './host-args.js';
import { sshCommand } from './ssh.js';

const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (command: string, line: string) => process.stderr.write(`labrig ${command}: ${line}\n`);

async function withSsh<T>(config: HostConfig, body: (ssh: SshSession) => Promise<T>): Promise<T> {
  const ssh = new SshSession(config.name, config.ssh);
  try {
    return await body(ssh);
  } finally {
    ssh.close();
  }
}

async function power(lab: Lab, action: 'on' | 'off' | 'cycle' | 'status', name: string): Promise<number> {
  const config = pickHost(lab, name);
  if (!config.power) throw new LabError('lab-setup', `host ${name} has no power controller in the lab config (hosts.${name}.power)`);
  const controller = createPower(config.power, undefined, { host: name });
  if (action === 'status') {
    const state = await controller.status();
    out(`${name}: ${state}`);
    if (state === 'unknown') note('power', `${name}: the ${config.power.kind} controller cannot tell whether the host is on`);
    return state === 'unknown' ? 3 : 0;
  }
  const t0 = performance.now();
  await controller[action]();
  out(`${name}: power ${action} done (${config.power.kind}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return 0;
}

async function lock(lab: Lab, name: string, reason: string): Promise<number> {
  const config = pickHost(lab, name);
  if (!reason.trim()) throw new UsageError('--reason must say why (it is what the nightly reports for the skipped tests)');
  const who = whoAmI();
  const r = await withSsh(config, (ssh) => lockHost(ssh, lab.hostStateDir, who, reason));
  if (!r.taken) {
    const held = isUnreadable(r.heldBy) ? `reserved, but ${r.heldBy.unreadable}` : describeReservation(r.heldBy);
    throw new LabError('lease-held', `${name} is ${held}`);
  }
  out(`${name}: ${describeReservation(r.reservation)}${r.renewed ? ' (renewed)' : ''}`);
  return 0;
}

async function unlock(lab: Lab, name: string, force: boolean): Promise<number> {
  const config = pickHost(lab, name);
  const who = whoAmI();
  const r = await withSsh(config, (ssh) => unlockHost(ssh, lab.hostStateDir, who, force));
  if ('refused' in r) {
    const held = isUnreadable(r.refused) ? `reserved, but ${r.refused.unreadable}` : describeReservation(r.refused);
    throw new LabError('lease-held', `${name} is ${held}; --force releases someone else's reservation (logged on the host)`);
  }
  if (!r.released) {
    note('unlock', `${name} was not reserved; nothing changed`);
    return 0;
  }
  const theirs = isUnreadable(r.released) || r.released.holder !== who;
  const what = isUnreadable(r.released) ? 'an unreadable reservation' : `the reservation of ${r.released.holder} (${r.released.reason})`;
  if (theirs) note('unlock', `--force: released ${what} on ${name}; logged in ${lab.hostStateDir}/log as force-unlock by ${who}`);
  out(`${name}: not reserved`);
  return 0;
}

async function state(lab: Lab, name: string, wanted: HostStateName | undefined, reason: string): Promise<number> {
  const config = pickHost(lab, name);
  if (!wanted) {
    if (reason) throw new UsageError(`--reason goes with a new state: labrig state ${name} <${hostStates.join('|')}> --reason …`);
    const marks = await withSsh(config, (ssh) => readMarks(ssh, lab.hostStateDir));
    out(`${name}: ${stateText(marks)}`);
    return 0;
  }
  const s = await withSsh(config, (ssh) => setHostState(ssh, lab.hostStateDir, wanted, whoAmI(), reason));
  out(`${name}: ${describeState(s)}`);
  return 0;
}

function stateText(m: HostMarks): string {
  if (!m.state) return 'good (never set)';
  return isUnreadable(m.state) ? `unknown: ${m.state.unreadable}` : describeState(m.state);
}

function reservationText(m: HostMarks): string {
  if (!m.reservation) return 'not reserved';
  return isUnreadable(m.reservation) ? `reserved? ${m.reservation.unreadable}` : describeReservation(m.reservation);
}

async function who(lab: Lab, names: string[], json: boolean): Promise<number> {
  const hosts = pickHosts(lab, names);
  const rows = await Promise.all(
    hosts.map(async (h) => {
      try {
        return { host: h.name, ...(await withSsh(h, (ssh) => readMarks(ssh, lab.hostStateDir))) };
      } catch (e) {
        return { host: h.name, error: (e as Error).message.split('\n')[0] ?? String(e) };
      }
    }),
  );
  if (json) out(JSON.stringify(rows, null, 2));
  else {
    const width = Math.max(4, ...rows.map((r) => r.host.length));
    for (const r of rows)
      out(`${r.host.padEnd(width)}  ${'error' in r ? `cannot tell: ${r.error}` : `${reservationText(r)}; state ${stateText(r)}`}`);
  }
  return rows.some((r) => 'error' in r) ? 3 : 0;
}

/** Registers power, ssh, lock, unlock, who and state; `setCode` receives each command's exit code. */
export function registerHostCommands(program: Command, setCode: (code: number) => void): void {
  const act = (name: string, body: () => Promise<number>) => commandAction(name, body).then(setCode);

  program
    .command('power')
    .description("switch a host's power through its configured controller (ipmi, redfish, command, qmp)")
    .addArgument(new Argument('<action>').choices(['on', 'off', 'cycle', 'status']))
    .argument('<host>')
    .action((action: 'on' | 'off' | 'cycle' | 'status', host: string) => act('power', async () => power(await loadLab(), action, host)));

  program
    .command('ssh')
    .description('a shell on a host (or one command, exiting with its code) with the pinned host key')
    .argument('<host>')
    .argument('[command...]', 'run this instead of a login shell')
    .option('-t, --tty', 'give the command a pty (top, vi, …)')
    .passThroughOptions()
    .action((host: string, command: string[], opts: { tty?: boolean }) =>
      act('ssh', async () => sshCommand(pickHost(await loadLab(), host), command, opts)),
    );

  program
    .command('lock')
    .description('reserve a host: the nightly quarantines it (its tests are skipped with your reason) until you unlock it')
    .argument('<host>')
    .requiredOption('--reason <text>', 'why: shown to everyone, and on the skipped tests')
    .action((host: string, opts: { reason: string }) => act('lock', async () => lock(await loadLab(), host, opts.reason)));

  program
    .command('unlock')
    .description("release your reservation of a host (someone else's: --force, logged on the host)")
    .argument('<host>')
    .option('--force', "release someone else's reservation")
    .action((host: string, opts: { force?: boolean }) => act('unlock', async () => unlock(await loadLab(), host, opts.force ?? false)));

  program
    .command('who')
    .description("who reserved which host, since when and why, and each host's state")
    .argument('[hosts...]', 'only these hosts')
    .option('--json', 'as JSON')
    .action((hosts: string[], opts: { json?: boolean }) => act('who', async () => who(await loadLab(), hosts, opts.json ?? false)));

  program
    .command('state')
    .description('show or set the persistent state of a host; doctor fails (and the nightly quarantines) a host that is not good')
    .argument('<host>')
    .addArgument(new Argument('[state]').choices(hostStates))
    .option('--reason <text>', 'why (shown by doctor and on the skipped tests)', '')
    .action((host: string, wanted: HostStateName | undefined, opts: { reason: string }) =>
      act('state', async () => state(await loadLab(), host, wanted, opts.reason)),
    );
}
