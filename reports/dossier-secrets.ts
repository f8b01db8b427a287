/**
 * The last gate before evidence leaves the lab. A lab config names its secrets only by env-var
 * (`identityEnv`, `passwordEnv`, … — targets/schema.ts), so lab.json holds no secret by
 * construction; this checks that it stayed so, and that no log or attachment picked one up: no
 * private key, and no value of an env var a `*Env` field names. Findings never print the value.
 */

export interface NamedSecret {
  /** The env var, e.g. IPMI_PASSWORD. */
  name: string;
  /** Strings whose presence means the secret leaked (the value, and long lines of a multi-line one). */
  needles: string[];
}

export interface SecretHit {
  file: string;
  what: string;
}

/** Shorter values would match by chance all over a console log; they are named, not scanned for. */
export const MIN_SCANNABLE_SECRET = 4;

const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----|PuTTY-User-Key-File-\d/;
const ARMOR = /^-----(?:BEGIN|END) /;

/** Every env-var name held by a field whose name ends in `Env`, anywhere in the config. */
export function envNamesIn(config: unknown): string[] {
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (/Env$/.test(k) && typeof v === 'string') names.add(v);
        else walk(v);
      }
    }
  };
  walk(config);
  return [...names].sort();
}

/** The secrets of a config as they are set in `env`; unset or too short ones are reported apart. */
export function secretsOf(config: unknown, env: NodeJS.ProcessEnv): { secrets: NamedSecret[]; unscanned: string[] } {
  const secrets: NamedSecret[] = [];
  const unscanned: string[] = [];
  for (const name of envNamesIn(config)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    if (value.trim().length < MIN_SCANNABLE_SECRET) {
      unscanned.push(name);
      continue;
    }
    // A key pasted into a log may be cut or re-wrapped: each of its long lines is a leak by itself.
    const lines = value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length >= 16 && !ARMOR.test(l));
    secrets.push({ name, needles: [...new Set([value.trim(), ...lines])] });
  }
  return { secrets, unscanned };
}

export function findSecrets(text: string, file: string, secrets: NamedSecret[]): SecretHit[] {
  const hits: SecretHit[] = [];
  if (PRIVATE_KEY.test(text)) hits.push({ file, what: 'a private key' });
  for (const s of secrets) if (s.needles.some((n) => text.includes(n))) hits.push({ file, what: `the value of $${s.name}` });
  return hits;
}
