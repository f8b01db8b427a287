/**
 * The machine-readable result of a run, built from the merged Allure results: every finding
 * (`labrig-findings.json` attachments) with the test it came from, and the manifest — run id,
 * revision, per-host facts (`labrig-facts.json`), counts by status and the SHA-256 of every
 * attachment, so a dossier can prove which evidence it was built from.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { type AllureResult, attachmentFiles, attachmentsOf, finalAttempts, sha256File } from './results.js';

export const FINDINGS_ATTACHMENT = 'labrig-findings.json';
export const FACTS_ATTACHMENT = 'labrig-facts.json';

const findingSchema = z.object({
  suite: z.string().min(1),
  host: z.string().min(1),
  key: z.string().min(1),
  value: z.union([z.string(), z.number(), z.boolean()]),
  unit: z.string().optional(),
});
const findingsSchema = z.array(findingSchema);
const factsSchema = z.object({
  host: z.string().min(1),
  facts: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
});

export type Finding = z.infer<typeof findingSchema>;
export type HostFacts = z.infer<typeof factsSchema>['facts'];

export interface RecordedFinding extends Finding {
  /** Full name of the test that recorded it, as Allure shows it. */
  test: string;
  status: string;
}

export interface Evidence {
  findings: RecordedFinding[];
  hosts: Record<string, { facts: HostFacts; test: string }>;
  countsByStatus: Record<string, number>;
  tests: number;
  attempts: number;
  /** File name in the results directory → SHA-256. */
  attachments: Record<string, string>;
  /** Evidence that could not be used, said plainly; the run's report is still produced. */
  warnings: string[];
}

async function readJsonAttachment(dir: string, source: string): Promise<unknown> {
  return JSON.parse(await readFile(join(dir, source), 'utf8'));
}

function testName(r: AllureResult): string {
  return r.fullName ?? r.name;
}

export async function collectEvidence(resultsDir: string, all: AllureResult[]): Promise<Evidence> {
  const warnings: string[] = [];
  // Retries leave several attempts per test; only the outcome counts, and its findings.
  const finals = finalAttempts(all).sort((a, b) => (a.start ?? 0) - (b.start ?? 0));
  const findings: RecordedFinding[] = [];
  const hosts: Evidence['hosts'] = {};
  const countsByStatus: Record<string, number> = {};

  for (const r of finals) {
    const status = r.status ?? 'unknown';
    countsByStatus[status] = (countsByStatus[status] ?? 0) + 1;
    for (const a of attachmentsOf(r)) {
      if (a.name !== FINDINGS_ATTACHMENT && a.name !== FACTS_ATTACHMENT) continue;
      let body: unknown;
      try {
        body = await readJsonAttachment(resultsDir, a.source);
      } catch (e) {
        warnings.push(`${a.name} of "${testName(r)}" (${a.source}) unreadable: ${(e as Error).message}`);
        continue;
      }
      if (a.name === FINDINGS_ATTACHMENT) {
        const parsed = findingsSchema.safeParse(body);
        if (!parsed.success) {
          warnings.push(`${a.name} of "${testName(r)}" (${a.source}) ignored: ${z.prettifyError(parsed.error)}`);
          continue;
        }
        for (const f of parsed.data) findings.push({ ...f, test: testName(r), status });
      } else {
        const parsed = factsSchema.safeParse(body);
        if (!parsed.success) {
          warnings.push(`${a.name} of "${testName(r)}" (${a.source}) ignored: ${z.prettifyError(parsed.error)}`);
          continue;
        }
        const { host, facts } = parsed.data;
        const earlier = hosts[host];
        // The first test on a host records its facts; a shard's first test records them again.
        if (!earlier) hosts[host] = { facts, test: testName(r) };
        else if (JSON.stringify(earlier.facts) !== JSON.stringify(facts)) {
          warnings.push(`facts of ${host} from "${testName(r)}" differ from those of "${earlier.test}"; kept the first`);
        }
      }
    }
  }

  const attachments: Record<string, string> = {};
  for (const name of await attachmentFiles(resultsDir, all)) {
    try {
      attachments[name] = await sha256File(join(resultsDir, name));
    } catch (e) {
      warnings.push(`attachment ${name} referenced but unreadable: ${(e as Error).message}`);
    }
  }
  return { findings, hosts, countsByStatus, tests: finals.length, attempts: all.length, attachments, warnings };
}
