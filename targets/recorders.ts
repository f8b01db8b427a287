/** The Recorder that turns driver steps into Allure steps and attachments (with secrets redacted). */
import * as allure from 'allure-js-commons';
import type { Recorder } from '../drivers/recorder.js';
import type { Lab } from './schema.js';

/** Values of every env var the lab names as a secret; they are masked in everything attached. */
export function secretValues(lab: Lab): string[] {
  const names = new Set<string>();
  for (const h of lab.hosts) {
    for (const n of [h.ssh.identityEnv, h.ssh.passwordEnv, h.console?.login?.passwordEnv, h.power && 'passwordEnv' in h.power ? h.power.passwordEnv : undefined])
      if (n) names.add(n);
  }
  return [...names].map((n) => process.env[n]).filter((v): v is string => !!v && v.length >= 4);
}

export function redactor(secrets: string[]): (text: string) => string {
  return (text) => secrets.reduce((t, s) => t.split(s).join('***'), text);
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
      const body = typeof content === 'string' ? redact(content) : content;
      await allure.attachment(name, body, contentType);
    },
    log: (line) => void allure.logStep(redact(line)),
  };
}
