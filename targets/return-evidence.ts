/**
 * A host that did not come back after a reboot or kexec: did the kernel under test start and
 * then hang or die (a product failure), or did nothing happen at all (the lab's)? The console
 * since the transition decides. Pure: the Host hands it the text and the quiet time.
 */
import { cleanForHumans } from '../drivers/console-text.js';

export interface NoReturnVerdict {
  kind: 'did-not-boot' | 'did-not-return';
  /** Which evidence decided, in words for the error message. */
  evidence: string;
  /** The console's last lines since the transition ('' when it printed nothing). */
  tail: string;
}

/** The kernel's banner: `Linux version 6.1.0-56-amd64 (debian-kernel@…) …`. */
const BANNER = /Linux version \S+/;
/** Later boot output, for a console opened after the banner or a kernel booted with a low loglevel. */
const BOOTING =
  /Kernel command line:|Booting Linux on physical CPU|Run \S+ as init process|Freeing unused kernel (image )?memory|Unpacking initramfs/;

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
const quiet = (ms: number) => (ms < 1000 ? 'still printing at the deadline' : `then nothing for ${seconds(ms)}`);

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines[lines.length - 1] ?? '';
  return line.length > 160 ? `${line.slice(0, 160)}…` : line;
}

/**
 * `since`: everything the console received since the host was sent away (undefined: the host
 * has no console open); `quietMs`: how long the console has printed nothing.
 */
export function judgeNoReturn(since: string | undefined, quietMs: number): NoReturnVerdict {
  if (since === undefined)
    return { kind: 'did-not-return', evidence: 'no console was open to tell a kernel that hung from a host that never left', tail: '' };
  const text = cleanForHumans(since);
  const tail = text.split('\n').slice(-30).join('\n').trim();
  const banner = BANNER.exec(text) ?? BOOTING.exec(text);
  if (banner) {
    const line = lastLine(text);
    const said = banner[0] === line ? '' : `, the last line '${line}'`;
    return {
      kind: 'did-not-boot',
      evidence: `console shows '${banner[0]} …'${said}, ${quiet(quietMs)}: the kernel started booting and never answered SSH`,
      tail,
    };
  }
  if (text.trim())
    return {
      kind: 'did-not-return',
      evidence: `console printed ${text.trim().length} characters since the transition but no kernel banner (last line '${lastLine(text)}'), ${quiet(quietMs)}`,
      tail,
    };
  return { kind: 'did-not-return', evidence: `console silent since the transition (nothing for ${seconds(quietMs)})`, tail: '' };
}
