/**
 * What drivers tell the outside world. Drivers never import the test runner; the fixtures
 * turn these calls into Playwright/Allure steps and attachments, a CLI into log lines.
 */
export type StepParams = Record<string, string | number | boolean | undefined>;

export interface Recorder {
  step<T>(title: string, params: StepParams, body: () => Promise<T>): Promise<T>;
  attach(name: string, content: string | Buffer, contentType?: string): Promise<void>;
  log(line: string): void;
}

export const silentRecorder: Recorder = {
  step: (_title, _params, body) => body(),
  attach: async () => {},
  log: () => {},
};

/** For CLIs and benchmarks: one line per step on stderr. */
export function consoleRecorder(prefix = ''): Recorder {
  return {
    async step(title, params, body) {
      const shown = Object.entries(params)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      const t0 = performance.now();
      try {
        const result = await body();
        process.stderr.write(`${prefix}✓ ${title} ${shown} (${Math.round(performance.now() - t0)} ms)\n`);
        return result;
      } catch (e) {
        process.stderr.write(`${prefix}✗ ${title} ${shown} (${Math.round(performance.now() - t0)} ms)\n`);
        throw e;
      }
    },
    attach: async () => {},
    log: (line) => process.stderr.write(`${prefix}${line}\n`),
  };
}
