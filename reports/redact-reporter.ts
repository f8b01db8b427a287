/**
 * A Playwright reporter listed FIRST in a config's reporters: it masks the lab's secrets in what
 * every later reporter (list, junit, allure-playwright) receives — test and step errors with their
 * console tails, the worker's stdout/stderr, attachment bodies and files, annotations — by
 * rewriting those objects in place, since Playwright hands the same objects to each reporter.
 * Options: `{ envNames: string[] }`, the config's secret env-var names (targets/secrets.ts
 * `secretEnvNames(lab)`); the values are read here, in the runner process.
 */
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import type { Reporter, TestCase, TestError, TestResult, TestStep } from '@playwright/test/reporter';
import { type SecretMatcher, secretMatcher, secretsOf } from '../targets/secrets.js';
import { BINARY_FILE } from './redact.js';

type Attachment = TestResult['attachments'][number];
const BINARY_TYPE = /^(?:image|video|audio)\/|^application\/(?:zip|gzip|x-gzip|x-xz|pdf)$/;

export default class RedactReporter implements Reporter {
  private readonly matcher: SecretMatcher;
  private readonly done = new WeakSet<object>();

  constructor(options: { envNames?: string[]; env?: NodeJS.ProcessEnv } = {}) {
    const config = { secretEnv: options.envNames ?? [] };
    this.matcher = secretMatcher(secretsOf(config, options.env ?? process.env).secrets);
  }

  private error(e: TestError | undefined): void {
    if (!e || this.done.has(e)) return;
    this.done.add(e);
    const r = this.matcher.redact;
    if (e.message !== undefined) e.message = r(e.message);
    if (e.stack !== undefined) e.stack = r(e.stack);
    if (e.value !== undefined) e.value = r(e.value);
    if (e.snippet !== undefined) e.snippet = r(e.snippet);
    this.error(e.cause);
  }

  private attachment(a: Attachment): void {
    if (this.done.has(a)) return;
    this.done.add(a);
    if (BINARY_TYPE.test(a.contentType)) return;
    if (a.body) (a as { body?: Buffer }).body = this.matcher.redactBytes(a.body);
    else if (a.path && !BINARY_FILE.test(a.path)) this.file(a.path);
  }

  /** Synchronous: the next reporter may read the file as soon as this call returns. */
  private file(path: string): void {
    try {
      if (!lstatSync(path).isFile()) return;
    } catch {
      return;
    }
    const data = readFileSync(path);
    const clean = this.matcher.redactBytes(data);
    if (clean !== data) writeFileSync(path, clean);
  }

  private stdio(chunks: Array<string | Buffer>): void {
    chunks.forEach((c, i) => (chunks[i] = typeof c === 'string' ? this.matcher.redact(c) : this.matcher.redactBytes(c)));
  }

  onStepEnd(_test: TestCase, _result: TestResult, step: TestStep): void {
    this.error(step.error);
    for (const a of step.attachments ?? []) this.attachment(a);
  }

  onTestEnd(test: TestCase, result: TestResult): void {
    this.error(result.error);
    result.errors.forEach((e) => this.error(e));
    this.stdio(result.stdout);
    this.stdio(result.stderr);
    result.attachments.forEach((a) => this.attachment(a));
    for (const a of [...result.annotations, ...test.annotations]) if (a.description) a.description = this.matcher.redact(a.description);
  }

  onError(error: TestError): void {
    this.error(error);
  }

  printsToStdio(): boolean {
    return false;
  }
}
