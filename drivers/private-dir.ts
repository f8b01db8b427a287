/**
 * A directory only we can change. The emulated lab keeps key pairs (one becomes root's
 * authorized_keys for a root sshd with StrictModes no) and state.json (whose startArgv QMP power
 * executes) in its run directory: a directory another user made or can write is refused, and so
 * is one under a parent another user could swap it in (OpenSSH's StrictModes rule: every parent
 * owned by us or root, and writable by others only if sticky, like /tmp).
 */
import { chmodSync, lstatSync, mkdirSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LabError } from './errors.js';

const uid = () => process.getuid?.() ?? 0;
const S_ISVTX = 0o1000;

function refuse(what: string, path: string, why: string): never {
  throw new LabError(
    'lab-setup',
    `refusing ${what} ${path}: ${why}. Remove it, or point LABRIG_RUN_DIR at a directory of your own (mode 0700)`,
  );
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Why `st` (the directory itself) is not ours alone, if it is not. */
export function notPrivate(st: Stats, me = uid()): string | undefined {
  if (st.isSymbolicLink()) return 'it is a symbolic link';
  if (!st.isDirectory()) return 'it is not a directory';
  if (st.uid !== me) return `it is owned by uid ${st.uid}, not by us (uid ${me})`;
  if (st.mode & 0o022)
    return `its mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')} lets ${st.mode & 0o002 ? 'anyone' : 'its group'} write in it`;
  return undefined;
}

/** Every ancestor of `abs` that exists, symbolic links resolved: ours or root's, and not writable by others unless sticky. */
function checkParents(abs: string, what: string, me: number): void {
  let p = dirname(abs);
  while (!statOrUndefined(p)) p = dirname(p);
  for (let q = realpathSync(p); ; q = dirname(q)) {
    const st = statSync(q);
    if (st.uid !== me && st.uid !== 0) refuse(what, abs, `its parent ${q} is owned by uid ${st.uid}`);
    if (st.mode & 0o022 && !(st.mode & S_ISVTX)) refuse(what, abs, `its parent ${q} is writable by others and not sticky`);
    if (q === dirname(q)) return;
  }
}

/**
 * Makes `path` (mode 0700, parents as needed) or checks the one there: ours, a real directory,
 * writable by nobody else, under parents nobody else can swap. Returns the absolute path.
 */
export function ensurePrivateDir(path: string, what = 'the emulated lab run directory'): string {
  const abs = resolve(path);
  const me = uid();
  checkParents(abs, what, me);
  if (!statOrUndefined(abs)) mkdirSync(abs, { recursive: true, mode: 0o700 });
  const st = lstatSync(abs);
  const why = notPrivate(st, me);
  if (why) refuse(what, abs, why);
  if ((st.mode & 0o777) !== 0o700) chmodSync(abs, 0o700);
  return abs;
}

/** Checks a directory that must already be private, without creating it; false when it does not exist. */
export function checkPrivateDir(path: string, what = 'the emulated lab run directory'): boolean {
  const abs = resolve(path);
  const st = statOrUndefined(abs);
  if (!st) return false;
  checkParents(abs, what, uid());
  const why = notPrivate(st);
  if (why) refuse(what, abs, why);
  return true;
}
