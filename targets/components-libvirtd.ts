/**
 * A libvirt build's own libvirtd on a host (`components.libvirtDir`), beside the host's installed
 * libvirt and without touching it. A packaged libvirt (Debian's .debs) has /etc/libvirt, /run/libvirt,
 * /var/lib/libvirt and /var/cache/libvirt compiled in, and a privileged libvirtd has no option or
 * variable that moves its QEMU driver's state; two daemons on the same dirs would adopt each other's
 * domains. So the build's virtlogd and libvirtd run in a private mount namespace (`unshare -m`) in
 * which those dirs are bind mounts of a state dir of ours; nothing is mounted outside it. The
 * socket is reached from outside by its path in the state dir (`qemu:///system?socket=…`), with the
 * build's own virsh. A prefix build (/opt/libvirt-11) runs the same way: the mounts are then unused.
 *
 * One shell script on the host does start, stop and restart (the armhf suite restarts libvirtd),
 * stopping only a process whose command line names our pid file.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostCommands } from '../drivers/command.js';
import { LabError } from '../drivers/errors.js';
import { type LibvirtEndpoint, SYSTEM_LIBVIRT, Virsh } from '../drivers/libvirt.js';
import { shellQuote } from '../drivers/ssh.js';
import { parseHarnessName, runTag } from './harness-name.js';
import type { HostConfig } from './schema.js';

export interface BuildLibvirtd {
  /** components.libvirtDir. */
  binDir: string;
  stateDir: string;
  /** The control script on the host: start | stop | restart | status. */
  script: string;
  socket: string;
  pidFile: string;
  log: string;
  endpoint: LibvirtEndpoint;
}

/** The system paths the namespace gives the build (inside it: the system path; outside: `stateDir/<sub>`). */
export const PRIVATE_DIRS: ReadonlyArray<{ system: string; sub: string }> = [
  { system: '/etc/libvirt', sub: 'etc' },
  { system: '/run/libvirt', sub: 'run' },
  { system: '/var/lib/libvirt/qemu', sub: 'lib-qemu' },
  { system: '/var/log/libvirt/qemu', sub: 'log-qemu' },
  { system: '/var/cache/libvirt', sub: 'cache' },
];

const trim = (d: string) => d.replace(/\/+$/, '');

export function buildLibvirtd(config: HostConfig): BuildLibvirtd | undefined {
  const dir = config.components.libvirtDir;
  if (!dir) return undefined;
  const stateDir = trim(config.components.libvirtStateDir);
  const socket = `${stateDir}/run/libvirt-sock`;
  return {
    binDir: trim(dir),
    stateDir,
    script: `${stateDir}/libvirtd.sh`,
    socket,
    pidFile: `${stateDir}/libvirtd.pid`,
    log: `${stateDir}/libvirtd.log`,
    endpoint: { uri: `qemu:///system?socket=${socket}`, virsh: `${trim(dir)}/virsh` },
  };
}

/** What virsh talks to on this host: the build's libvirtd when components.libvirtDir is set, else the host's. */
export const libvirtEndpoint = (config: HostConfig): LibvirtEndpoint => buildLibvirtd(config)?.endpoint ?? SYSTEM_LIBVIRT;

/** A system libvirt path as the host's shell sees the build's libvirtd's one (a hook under /etc/libvirt/hooks). */
export function buildLibvirtdPath(config: HostConfig, path: string): string {
  const b = buildLibvirtd(config);
  if (!b) return path;
  for (const d of PRIVATE_DIRS)
    if (path === d.system || path.startsWith(`${d.system}/`)) return `${b.stateDir}/${d.sub}${path.slice(d.system.length)}`;
  return path;
}

/** The control script (typed in, text out). */
export function libvirtdScript(b: BuildLibvirtd): string {
  const q = shellQuote;
  // inside the single-quoted sh -c: the system paths are plain words
  const binds = PRIVATE_DIRS.map((d) => `mkdir -p ${d.system} && mount --bind "$S/${d.sub}" ${d.system}`);
  return `#!/bin/sh
# labrig components.libvirtDir: the build's libvirtd in a private mount namespace (targets/components-libvirtd.ts)
S=${q(b.stateDir)}
B=${q(b.binDir)}
URI=${q(b.endpoint.uri)}
# the build's unpacked tree (a components fetch wrapper names its binary): its default config, data and helpers
R=$(sed -n 's|^# binary: \\(.*\\)/usr/sbin/libvirtd$|\\1|p' "$B/libvirtd" 2>/dev/null | head -1)
alive() { [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*[ZX]' "/proc/$1/status" && tr '\\000' '\\n' < "/proc/$1/cmdline" | grep -qxF "$2"; }
pid_of() { p=$(cat "$S/$1.pid" 2>/dev/null); alive "$p" "$S/$1.pid" && echo "$p"; }
stop_one() {
  p=$(pid_of "$1") || return 0
  kill "$p" 2>/dev/null; i=0
  while alive "$p" "$S/$1.pid"; do
    [ $i -eq 150 ] && kill -9 "$p" 2>/dev/null
    [ $i -lt 250 ] || { echo "$1 $p (from $B) survived SIGKILL" >&2; return 1; }
    sleep 0.1; i=$((i+1))
  done
  rm -f "$S/$1.pid"
}
# what the daemons logged since this start: the last line says why
new_log() { tail -c +$((OFF + 1)) "$S/libvirtd.log" 2>/dev/null | grep -v '^[[:space:]]*$'; }
failed() { echo "libvirtd from $B $1: $(new_log | tail -n 1)" >&2; new_log | tail -n 6 | head -n 5 | sed 's/^/  /' >&2; return 1; }
start() {
  [ -x "$B/libvirtd" ] && [ -x "$B/virtlogd" ] && [ -x "$B/virsh" ] || { echo "libvirtd from $B did not start: $B lacks libvirtd, virtlogd or virsh" >&2; return 1; }
  OFF=$(stat -c %s "$S/libvirtd.log" 2>/dev/null || echo 0)
  mkdir -p ${PRIVATE_DIRS.map((d) => `"$S/${d.sub}"`).join(' ')} && chmod 0755 "$S"
  # the build's own defaults, once (domains defined later stay)
  [ -e "$S/etc/qemu.conf" ] || { [ -n "$R" ] && [ -d "$R/etc/libvirt" ] && cp -a "$R/etc/libvirt/." "$S/etc/"; } || true
  printf 'log_outputs = "3:file:%s"\\n' "$S/libvirtd.log" > "$S/libvirtd.conf"
  export S B R
  unshare --mount --propagation private sh -ec '
    ${binds.join('\n    ')}
    for d in share/libvirt lib/libvirt; do
      if [ -n "$R" ] && [ -d "$R/usr/$d" ]; then mkdir -p "/usr/$d" && mount --bind "$R/usr/$d" "/usr/$d"; fi
    done
    if [ "$1" = all ]; then "$B/virtlogd" -d -p "$S/virtlogd.pid"; fi
    exec "$B/libvirtd" -d -p "$S/libvirtd.pid" -f "$S/libvirtd.conf"' sh "$1" >>"$S/libvirtd.log" 2>&1 || { failed "did not start (exit $?)"; return 1; }
  i=0
  until "$B/virsh" -q -c "$URI" version >/dev/null 2>&1; do
    [ $i -lt 1200 ] && pid_of libvirtd >/dev/null || { failed "did not answer on $S/run/libvirt-sock"; return 1; }
    sleep 0.1; i=$((i+1))
  done
  echo "libvirtd $(pid_of libvirtd) virtlogd $(pid_of virtlogd)"
}
case "$1" in
  # a start that fails leaves nothing of ours running
  start) stop_one libvirtd && stop_one virtlogd && { start all || { stop_one libvirtd; stop_one virtlogd; exit 1; }; } ;;
  restart) stop_one libvirtd && { if pid_of virtlogd >/dev/null; then start libvirtd; else start all; fi || { stop_one libvirtd; stop_one virtlogd; exit 1; }; } ;;
  stop) stop_one libvirtd && stop_one virtlogd ;;
  status) echo "libvirtd $(pid_of libvirtd) virtlogd $(pid_of virtlogd)" ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
`;
}

export interface RunningLibvirtd {
  pid: number;
  virtlogdPid: number;
  log: string;
}

/** Writes the control script and starts the build's daemons; one that does not start is one line naming the component. */
export async function startBuildLibvirtd(host: HostCommands, b: BuildLibvirtd): Promise<RunningLibvirtd> {
  const q = shellQuote;
  await host.exec(
    `mkdir -p ${q(b.stateDir)} && cat > ${q(`${b.script}.new`)} && chmod 0755 ${q(`${b.script}.new`)} && mv -f ${q(`${b.script}.new`)} ${q(b.script)}`,
    {
      input: libvirtdScript(b),
      check: true,
      timeoutMs: 30_000,
    },
  );
  // the first connection probes every QEMU it finds (≈12 s each on TCG): generous
  const r = await host.run(`${q(b.script)} start`, { timeoutMs: 300_000 });
  const m = /libvirtd (\d+) virtlogd (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !m)
    throw new LabError('config', `components.libvirtDir: ${(r.stderr || r.stdout).trim() || `libvirtd from ${b.binDir} did not start`}`, {
      host: host.name,
    });
  return { pid: Number(m[1]), virtlogdPid: Number(m[2]), log: b.log };
}

/** Stops the build's daemons (by their pid files, our processes only). */
export async function stopBuildLibvirtd(host: HostCommands, b: BuildLibvirtd): Promise<void> {
  const r = await host.run(`[ -x ${shellQuote(b.script)} ] || exit 0; ${shellQuote(b.script)} stop`, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new LabError('lab-setup', `components.libvirtDir: stopping libvirtd from ${b.binDir}: ${r.stderr.trim()}`, { host: host.name });
}

/** Where a run keeps the record of a host's build libvirtd (PIDs, the log on the host) and a copy of its log. */
const recordFile = (logDir: string, host: string) => join(logDir, `${host}-build-libvirtd.json`);

/**
 * The harness's domains that another run left defined in the build's libvirtd (a run that
 * crashed before its teardown): removed, and their names returned. The host's sweep (sweep.ts)
 * ends their QEMUs but reads only the host's own libvirtd; a persistent domain in the build's
 * state would come back with each start of it. The caller holds the host's lease.
 */
export async function sweepBuildLibvirtd(host: HostCommands, b: BuildLibvirtd, runId: string): Promise<string[]> {
  const virsh = new Virsh(host, b.endpoint);
  const mine = runTag(runId);
  const left = (await virsh.run('list --all --name', 60_000))
    .split('\n')
    .map((n) => n.trim())
    .filter((n) => {
      const parsed = parseHarnessName(n);
      return parsed !== undefined && parsed.runTag !== mine;
    });
  for (const name of left) await virsh.remove(name);
  const still = (await virsh.run('list --all --name', 60_000)).split('\n').map((n) => n.trim());
  const failed = left.filter((n) => still.includes(n));
  if (failed.length)
    throw new LabError(
      'lab-setup',
      `components.libvirtDir: could not remove what an earlier run left in libvirtd from ${b.binDir}: ${failed.join(', ')}`,
      {
        host: host.name,
      },
    );
  return left;
}

/** For a worker: starts the build's libvirtd, sweeps what earlier runs left in it, and records it in the run's logs. */
export async function startedLibvirtd(host: HostCommands, b: BuildLibvirtd, logDir: string, runId: string): Promise<RunningLibvirtd> {
  const t0 = performance.now();
  const running = await startBuildLibvirtd(host, b);
  const swept = await sweepBuildLibvirtd(host, b, runId);
  if (swept.length) process.stderr.write(`[${host.name}] libvirtd from ${b.binDir}: removed what earlier runs left: ${swept.join(', ')}\n`);
  const record = { binDir: b.binDir, uri: b.endpoint.uri, ...running, swept, startSeconds: Math.round(performance.now() - t0) / 1000 };
  await writeFile(recordFile(logDir, host.name), `${JSON.stringify({ ...record, startedAt: new Date().toISOString() }, null, 2)}\n`);
  process.stderr.write(
    `[${host.name}] libvirtd from ${b.binDir}: pid ${running.pid} (virtlogd ${running.virtlogdPid}), log ${running.log}\n`,
  );
  return running;
}

/** For a worker's teardown: stops the build's daemons and copies the tail of their log into the run's logs; never throws. */
export async function stoppedLibvirtd(host: HostCommands, b: BuildLibvirtd, logDir: string): Promise<void> {
  const say = (line: string) => process.stderr.write(`[${host.name}] ${line}\n`);
  await stopBuildLibvirtd(host, b).catch((e: Error) => say(e.message));
  const tail = await host.run(`tail -c 262144 ${shellQuote(b.log)} 2>/dev/null`, { timeoutMs: 60_000 }).catch(() => undefined);
  if (tail?.stdout) await writeFile(join(logDir, `${host.name}-build-libvirtd.log`), tail.stdout).catch(() => undefined);
}

/** The armhf suite's parameters on a host with a libvirt build: the hook where that libvirtd looks, its restart. */
export function buildLibvirtdParams<P extends { hookPath: string; hookLog: string; restartLibvirtd: string }>(config: HostConfig, p: P): P {
  const b = buildLibvirtd(config);
  if (!b) return p;
  return {
    ...p,
    hookPath: buildLibvirtdPath(config, p.hookPath),
    hookLog: buildLibvirtdPath(config, p.hookLog),
    restartLibvirtd: `${shellQuote(b.script)} restart >/dev/null`,
  };
}
