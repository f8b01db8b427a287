/**
 * The minimum of telnet (RFC 854/855) a console needs from ser2net in telnet mode:
 * strip IAC sequences from what the host sends, answer option negotiation so the server
 * stops asking, and escape 0xFF in what we send. Pure: bytes in, bytes out.
 *
 * We accept the options a serial console benefits from (BINARY both ways, the server's
 * ECHO and SUPPRESS-GO-AHEAD) and refuse every other one; ser2net's RFC 2217 (COM port
 * control) is refused, so the line settings stay those configured on the ser2net side.
 */
const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const SE = 240;
const OPT_BINARY = 0;
const OPT_ECHO = 1;
const OPT_SGA = 3;

const ACCEPT_REMOTE = new Set([OPT_BINARY, OPT_ECHO, OPT_SGA]); // server WILL → we DO
const ACCEPT_LOCAL = new Set([OPT_BINARY, OPT_SGA]); // server DO → we WILL

type State = 'data' | 'iac' | 'option' | 'sb' | 'sb-iac';

export interface TelnetOutput {
  /** Console bytes with every telnet sequence removed. */
  data: Buffer;
  /** Negotiation answers to send back to the server (may be empty). */
  reply: Buffer;
}

export class TelnetFilter {
  private state: State = 'data';
  private verb = 0;
  private afterCr = false;
  private readonly remoteOn = new Set<number>();
  private readonly localOn = new Set<number>();

  feed(chunk: Buffer): TelnetOutput {
    const data: number[] = [];
    const reply: number[] = [];
    for (const b of chunk) {
      switch (this.state) {
        case 'data':
          if (b === IAC) this.state = 'iac';
          else if (b === 0 && this.afterCr && !this.remoteOn.has(OPT_BINARY))
            this.afterCr = false; // NVT: CR NUL is a bare CR
          else {
            data.push(b);
            this.afterCr = b === 13;
          }
          break;
        case 'iac':
          if (b === IAC) {
            data.push(IAC);
            this.afterCr = false;
            this.state = 'data';
          } else if (b === WILL || b === WONT || b === DO || b === DONT) {
            this.verb = b;
            this.state = 'option';
          } else if (b === SB) this.state = 'sb';
          else this.state = 'data'; // NOP, GA, DM, AYT…: one byte, nothing to do
          break;
        case 'option':
          this.negotiate(this.verb, b, reply);
          this.state = 'data';
          break;
        case 'sb':
          if (b === IAC) this.state = 'sb-iac';
          break;
        case 'sb-iac':
          this.state = b === SE ? 'data' : 'sb';
          break;
      }
    }
    return { data: Buffer.from(data), reply: Buffer.from(reply) };
  }

  /** Answer only on a change of state, so two peers cannot loop (RFC 854's rule). */
  private negotiate(verb: number, opt: number, reply: number[]): void {
    if (verb === WILL) {
      if (this.remoteOn.has(opt)) return;
      if (ACCEPT_REMOTE.has(opt)) {
        this.remoteOn.add(opt);
        reply.push(IAC, DO, opt);
      } else reply.push(IAC, DONT, opt);
    } else if (verb === WONT) {
      if (this.remoteOn.delete(opt)) reply.push(IAC, DONT, opt);
    } else if (verb === DO) {
      if (this.localOn.has(opt)) return;
      if (ACCEPT_LOCAL.has(opt)) {
        this.localOn.add(opt);
        reply.push(IAC, WILL, opt);
      } else reply.push(IAC, WONT, opt);
    } else if (verb === DONT) {
      if (this.localOn.delete(opt)) reply.push(IAC, WONT, opt);
    }
  }
}

/** Data to the server: a literal 0xFF must be doubled. */
export function telnetEscape(data: Buffer): Buffer {
  if (!data.includes(IAC)) return data;
  const out: number[] = [];
  for (const b of data) {
    out.push(b);
    if (b === IAC) out.push(IAC);
  }
  return Buffer.from(out);
}
