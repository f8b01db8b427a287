/**
 * junit.xml as CI servers read it: a lab failure (the product was not tested) is an `<error>`, a
 * product failure a `<failure>`, so Jenkins and GitLab show infrastructure apart from product.
 * Playwright writes `<error>` for any thrown error and `<failure>` for a failed expect; the
 * message decides instead. The per-suite and total counts follow.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { isLabFailure } from './results.js';

type Node = Record<string, unknown> & { ':@'?: Record<string, string> };

const options = {
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  cdataPropName: '#cdata',
  commentPropName: '#comment',
} as const;

const tagOf = (n: Node) => Object.keys(n).find((k) => k !== ':@')!;
const children = (n: Node) => n[tagOf(n)] as Node[];

function messageOf(n: Node): string {
  const attr = n[':@']?.message ?? '';
  const body = children(n)
    .map((c) => (c['#cdata'] ? (c['#cdata'] as Node[]).map((t) => String(t['#text'] ?? '')).join('') : String(c['#text'] ?? '')))
    .join('');
  return `${attr}\n${body}`;
}

/** Reclassifies one testcase's outcome; returns what it now is. */
function classify(testcase: Node): 'error' | 'failure' | null {
  let outcome: 'error' | 'failure' | null = null;
  for (const child of children(testcase)) {
    const tag = tagOf(child);
    if (tag !== 'error' && tag !== 'failure') continue;
    const message = messageOf(child);
    // The message attribute or the error line in the body carries the [lab:…] prefix.
    const lab = isLabFailure(child[':@']?.message) || /^\s*(?:\w+: )?\[lab:[a-z-]+\]/m.test(message.replace(/^.*?\n/, ''));
    outcome = lab ? 'error' : 'failure';
    if (tag !== outcome) {
      child[outcome] = child[tag];
      delete child[tag];
    }
  }
  return outcome;
}

export function junitWithLabErrors(xml: string): string {
  const doc = new XMLParser(options).parse(xml) as Node[];
  const root = doc.find((n) => tagOf(n) === 'testsuites');
  if (!root) return xml;
  let errors = 0;
  let failures = 0;
  for (const suite of children(root).filter((n) => tagOf(n) === 'testsuite')) {
    let e = 0;
    let f = 0;
    for (const tc of children(suite).filter((n) => tagOf(n) === 'testcase')) {
      const o = classify(tc);
      if (o === 'error') e++;
      if (o === 'failure') f++;
    }
    Object.assign(suite[':@'] ?? (suite[':@'] = {}), { errors: String(e), failures: String(f) });
    errors += e;
    failures += f;
  }
  Object.assign(root[':@'] ?? (root[':@'] = {}), { errors: String(errors), failures: String(failures) });
  return new XMLBuilder({ ...options, format: true, suppressEmptyNode: true }).build(doc) as string;
}

export async function rewriteJunit(path: string): Promise<void> {
  await writeFile(path, junitWithLabErrors(await readFile(path, 'utf8')));
}
