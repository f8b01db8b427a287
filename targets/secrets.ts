/**
 * The lab's secrets and how to find them in text. A config names its secrets only by env var
 * (`identityEnv`, `passwordEnv`, `secretEnv: [...]` — schema.ts), so the secrets of a run are the
 * values of those variables. A value rarely appears as typed: a JSON writer escapes `"` and `\`
 * (twice, when JSON sits in a JSON string), an XML writer turns `<` into `&lt;`, and a file read
 * byte for byte shows `é` as its two UTF-8 bytes. One pattern per secret matches all of those.
 */

export interface NamedSecret {
  /** The env var, e.g. IPMI_PASSWORD. */
  name: string;
  /** Strings whose presence means the secret leaked (the value, and long lines of a multi-line one). */
  needles: string[];
}

/** Shorter values would match by chance all over a console log; they are named, not scanned for. */
export const MIN_SCANNABLE_SECRET = 4;

export const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----|PuTTY-User-Key-File-\d/;
const PRIVATE_KEY_BLOCK = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g;
const ARMOR = /^-----(?:BEGIN|END) /;
export const REDACTED = '***';

/** Every env-var name held by a field whose name ends in `Env` (a name, or a list of names), anywhere in the config. */
export function secretEnvNames(config: unknown): string[] {
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (!/Env$/.test(k)) walk(v);
        else if (typeof v === 'string') names.add(v);
        else if (Array.isArray(v)) v.filter((n): n is string => typeof n === 'string').forEach((n) => names.add(n));
      }
    }
  };
  walk(config);
  return [...names].sort();
}

/** The secrets of a config as they are set in `env`; unset ones are skipped, too short ones reported apart. */
export function secretsOf(config: unknown, env: NodeJS.ProcessEnv = process.env): { secrets: NamedSecret[]; unscanned: string[] } {
  const secrets: NamedSecret[] = [];
  const unscanned: string[] = [];
  for (const name of secretEnvNames(config)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    if (value.trim().length < MIN_SCANNABLE_SECRET) {
      unscanned.push(name);
      continue;
    }
    // A key pasted into a log may be cut or re-wrapped: each of its long lines is a leak by itself.
    const lines = value
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.length >= 16 && !ARMOR.test(l));
    secrets.push({ name, needles: [...new Set([value.trim(), ...lines])] });
  }
  return { secrets, unscanned };
}

const literal = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
/** Hex digits of n, letters in either case: `&#xE9;` and `\u00e9` are both written. */
const hex = (n: number, width = 0) =>
  [...n.toString(16).padStart(width, '0')].map((d) => (/[a-f]/.test(d) ? `[${d}${d.toUpperCase()}]` : d)).join('');
const NAMED: Record<string, string> = { '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' };
const JSON_SHORT: Record<string, string> = { '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f' };

/** One character of a secret as any writer here may have put it. */
function charPattern(ch: string): string {
  const cp = ch.codePointAt(0)!;
  // As the character itself, or an XML/HTML character reference.
  const plain = [literal(ch), `&#0*${cp};`, `&#[xX]0*${hex(cp)};`];
  if (cp > 0x7f) plain.push(literal(Buffer.from(ch, 'utf8').toString('latin1')));
  if (NAMED[ch]) plain.push(`&${NAMED[ch]};`);
  const units = ch.length === 2 ? [ch.charCodeAt(0), ch.charCodeAt(1)] : [cp];
  // JSON escapes, once or nested (a JSON document inside a JSON string doubles the backslashes).
  const escaped = [units.map((u) => `\\\\+u${hex(u, 4)}`).join('')];
  if (JSON_SHORT[ch]) escaped.push(`\\\\+${JSON_SHORT[ch]}`);
  if (ch === '\\') return `(?:\\\\+|${plain.slice(1).join('|')}|${escaped.join('|')})`;
  if (ch === '"' || ch === '/') return `(?:\\\\*(?:${plain.join('|')})|${escaped.join('|')})`;
  return `(?:${plain.join('|')}|${escaped.join('|')})`;
}

/** Regex source matching `needle` raw, as UTF-8 bytes read as latin1, JSON-escaped (nested too) and XML-escaped. */
export function needlePattern(needle: string): string {
  return [...needle].map(charPattern).join('');
}

export interface SecretMatcher {
  /** Names of the secrets `text` holds (`a private key` for a PEM private key), each once. */
  find(text: string): string[];
  /** `text` with every secret and every PEM private key replaced by ***. */
  redact(text: string): string;
  /** The same on bytes, byte-exact outside the secrets (files of any encoding, binary attachments). */
  redactBytes(data: Buffer): Buffer;
}

export function secretMatcher(secrets: readonly NamedSecret[]): SecretMatcher {
  const each = secrets.map((s) => ({
    name: s.name,
    re: new RegExp(
      [...s.needles]
        .sort((a, b) => b.length - a.length)
        .map(needlePattern)
        .join('|'),
    ),
  }));
  const all = secrets.flatMap((s) => s.needles).sort((a, b) => b.length - a.length);
  const anyRe = all.length ? new RegExp(all.map(needlePattern).join('|'), 'g') : undefined;
  const redact = (text: string): string => {
    const noKeys = text.replace(PRIVATE_KEY_BLOCK, `${REDACTED} private key ${REDACTED}`);
    return anyRe ? noKeys.replace(anyRe, REDACTED) : noKeys;
  };
  return {
    find(text) {
      const hits = each.filter((s) => s.re.test(text)).map((s) => `$${s.name}`);
      return PRIVATE_KEY.test(text) ? ['a private key', ...hits] : hits;
    },
    redact,
    redactBytes(data) {
      const text = data.toString('latin1');
      const out = redact(text);
      return out === text ? data : Buffer.from(out, 'latin1');
    },
  };
}

/** The redactor of a config's secrets as the environment holds them now. */
export function redactorOf(config: unknown, env: NodeJS.ProcessEnv = process.env): (text: string) => string {
  return secretMatcher(secretsOf(config, env).secrets).redact;
}
