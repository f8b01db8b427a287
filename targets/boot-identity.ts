/**
 * Which boot a host is in, read the host's way: Linux's random boot_id, or on FreeBSD (no
 * /proc) `sysctl kern.boottime` with the host clock. Pure: the commands and their parsing.
 */
import type { OsFamily } from './platform.js';

export interface BootReading {
  /** Differs from one boot to the next. */
  id: string;
  /** Seconds since this boot, when the id alone cannot prove a new boot (FreeBSD). */
  uptimeS?: number;
}

export function bootIdentityCommand(os: OsFamily): string {
  return os === 'freebsd' ? 'sysctl -n kern.boottime && date +%s' : 'cat /proc/sys/kernel/random/boot_id';
}

/** `{ sec = 1700000000, usec = 123456 } Mon Nov 13 …`: sysctl(8) prints the timeval, then the date. */
export function parseBoottime(text: string): { sec: number; usec: number } | undefined {
  const m = /\{\s*sec\s*=\s*(\d+),\s*usec\s*=\s*(\d+)\s*\}/.exec(text);
  return m ? { sec: Number(m[1]), usec: Number(m[2]) } : undefined;
}

/** The id of a FreeBSD boot: its boottime to the microsecond. */
export const boottimeId = (b: { sec: number; usec: number }) => `kern.boottime=${b.sec}.${String(b.usec).padStart(6, '0')}`;

/** What the command printed, or undefined when it is not a boot identity (the host is half up). */
export function parseBootIdentity(os: OsFamily, stdout: string): BootReading | undefined {
  if (os === 'linux') {
    const id = stdout.trim();
    return /^[0-9a-f-]{8,}$/i.test(id) ? { id } : undefined;
  }
  const [first = '', second = ''] = stdout.trim().split('\n');
  const boot = parseBoottime(first);
  const now = /^\d+$/.test(second.trim()) ? Number(second.trim()) : undefined;
  if (!boot || now === undefined) return undefined;
  return { id: boottimeId(boot), uptimeS: Math.max(0, now - boot.sec) };
}

/**
 * A reading that proves the host booted again since `previousId` was read. FreeBSD recomputes
 * kern.boottime whenever the clock is stepped (time(9)), so a changed boottime alone could be
 * ntpd; the boot must also be younger than the wait (its uptime is the clock minus boottime,
 * which a step does not change). `waitedMs`: since the host was sent away.
 */
export function isNewBoot(previousId: string, now: BootReading, waitedMs: number, slackS = 30): boolean {
  if (now.id === previousId) return false;
  return now.uptimeS === undefined || now.uptimeS <= waitedMs / 1000 + slackS;
}
