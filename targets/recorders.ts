/** The Recorder that turns driver steps into Allure steps and attachments (with secrets redacted). */
import * as allure from 'allure-js-commons';
import type { Recorder } from '../drivers/recorder.js';
import type { Lab } from './schema.js';
import { MIN_SCANNABLE_SECRET, secretMatcher, secretsOf } from './secrets.js';

/** Values of every env var the lab names as a secret (any `*Env` field: ssh, console and guest logins, power, `secretEnv` lists). */
export function secretValues(lab: Lab, env: NodeJS.ProcessEnv = process.env): string[] {
  return secretsOf(lab, env).secrets.flatMap((s) => s.needles);
}

/** Masks the lab's secrets in text, however it was escaped (JSON, XML, UTF-8 read as bytes), and any PEM private key. */
export function labRedactor(lab: Lab, env: NodeJS.ProcessEnv = process.env): (text: string) => string {
  return secretMatcher(secretsOf(lab, env).secrets).redact;
}

/** Masks the given values (kept for callers that hold the values, not the lab). */
export function redactor(secrets: string[]): (text: string) => string {
  const usable = secrets.filter((s) => s.trim().length >= MIN_SCANNABLE_SECRET);
  return secretMatcher(usable.map((s, i) => ({ name: `secret${i}`, needles: [s.trim()] }))).redact;
}

/**
 * A finding shown on its test in the report. Excluded from the test's historyId: a boot time or
 * a QEMU version that changes must not make the test a new one in the history.
 */
export async function showFinding(key: string, value: string | number | boolean, unit?: string): Promise<void> {
  await allure.parameter(key, `${value}${unit ? ` ${unit}` : ''}`, { excluded: true });
}

export function allureRecorder(redact: (text: string) => string): Recorder {
  return {
    step: (title, params, body) =>
      allure.step(redact(title), async (ctx) => {
        for (const [k, v] of Object.entries(params)) if (v !== undefined) await ctx.parameter(k, redact(String(v)));
        return body();
      }) as Promise<never>,
    attach: async (name, content, contentType = 'text/plain') => {
      // Bytes are read as latin1, which the secret patterns also match (UTF-8 bytes of a non-ASCII secret included).
      const body = typeof content === 'string' ? redact(content) : Buffer.from(redact(content.toString('latin1')), 'latin1');
      await allure.attachment(name, body, contentType);
    },
    log: (line) => void allure.logStep(redact(line)),
  };
}

/**
 * Masks secrets in everything this process writes to stdout and stderr from now on: in a test
 * worker that is what Playwright captures as a test's stdout/stderr (the live terminal lines, the
 * junit system-out/err, the Allure stdout/stderr attachments), the driver log lines included.
 * One write is matched at a time (console.log writes whole lines). Returns the undo.
 */
export function maskStdio(redact: (text: string) => string): () => void {
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((s) => s.write);
  for (const stream of streams) {
    const write = stream.write.bind(stream) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
      write(
        typeof chunk === 'string' ? redact(chunk) : Buffer.from(redact(Buffer.from(chunk).toString('latin1')), 'latin1'),
        ...rest,
      )) as typeof stream.write;
  }
  return () => streams.forEach((s, i) => (s.write = originals[i]!));
}
