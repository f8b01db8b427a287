/**
 * Keeps the report self-contained: nothing it renders may be fetched from another site. The
 * stock Allure 3 page carries a Google Analytics tag (googletagmanager + inline gtag()); a lab's
 * report is opened inside the lab network and must not call out. We strip what the generator
 * adds, then scan every page for anything a browser would still load from elsewhere.
 *
 * URL strings inside JavaScript (bundled or inline) are not loads by themselves — the bundle
 * names w3.org namespaces and a trace-viewer link opened only on click — so script bodies are
 * not scanned for URLs, only for the known tracker markers.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

export interface ExternalLoad {
  /** Path relative to the report directory. */
  file: string;
  line: number;
  what: string;
}

const EXTERNAL_URL = /^\s*(?:https?:)?\/\//i;
const TRACKER = /googletagmanager|google-analytics|\bgtag\s*\(/i;
const SCRIPT_BLOCK = /(<script\b([^>]*)>)([\s\S]*?)(<\/script\s*>)/gi;
const COMMENT = /<!--[\s\S]*?-->/g;
const TAG = /<([a-z][a-z0-9-]*)\b((?:[^>"']|"[^"]*"|'[^']*')*)>/gi;
const ATTRIBUTE = /([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g;
const STYLE_BLOCK = /<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi;
const CSS_LOAD = /@import\s+(?:url\(\s*)?["']?\s*(?:https?:)?\/\/[^\s"')]*|url\(\s*["']?\s*(?:https?:)?\/\/[^\s"')]*/gi;

// Attributes through which a tag makes the browser fetch something by itself.
const LOADING_ATTRIBUTES = new Set(['src', 'srcset', 'data', 'poster', 'background', 'action', 'formaction']);
const HREF_LOADS = new Set(['link', 'image', 'feimage', 'use']);

function unquote(v: string): string {
  return v.startsWith('"') || v.startsWith("'") ? v.slice(1, -1) : v;
}

function attributesOf(body: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const m of body.matchAll(ATTRIBUTE)) attrs.set(m[1]!.toLowerCase(), m[2] === undefined ? '' : unquote(m[2]));
  return attrs;
}

function isExternalAttribute(name: string, value: string): boolean {
  if (name === 'srcset') return value.split(',').some((part) => EXTERNAL_URL.test(part));
  return EXTERNAL_URL.test(value);
}

/** Same length, same line breaks: keeps the line numbers of what is scanned after blanking. */
function blank(text: string): string {
  return text.replace(/[^\n]/g, ' ');
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Removes the analytics tag and any script, stylesheet or frame the page would fetch from elsewhere. */
export function stripExternalLoads(html: string): string {
  return html
    .replace(SCRIPT_BLOCK, (whole, _open: string, attrs: string, body: string) => {
      const src = attributesOf(attrs).get('src');
      if (src !== undefined && EXTERNAL_URL.test(src)) return '';
      return TRACKER.test(body) ? '' : whole;
    })
    .replace(/<noscript\b[^>]*>[\s\S]*?<\/noscript\s*>/gi, (whole) => (TRACKER.test(whole) ? '' : whole))
    .replace(TAG, (whole, name: string, attrs: string) => {
      const tag = name.toLowerCase();
      if (tag !== 'link' && tag !== 'iframe') return whole;
      const a = attributesOf(attrs);
      const url = tag === 'link' ? a.get('href') : a.get('src');
      return url !== undefined && EXTERNAL_URL.test(url) ? '' : whole;
    });
}

/** Everything in one HTML page that a browser would load from another site. */
export function findExternalLoadsInHtml(html: string, file: string): ExternalLoad[] {
  const found: ExternalLoad[] = [];
  const withoutComments = html.replace(COMMENT, blank);
  for (const m of withoutComments.matchAll(SCRIPT_BLOCK)) {
    if (TRACKER.test(m[3]!)) found.push({ file, line: lineAt(html, m.index!), what: 'inline analytics script' });
  }
  // Scan markup with script bodies blanked: a URL in JavaScript is not a load by itself.
  const markup = withoutComments.replace(
    SCRIPT_BLOCK,
    (_whole, open: string, _attrs: string, body: string, close: string) => open + blank(body) + close,
  );
  for (const m of markup.matchAll(TAG)) {
    const tag = m[1]!.toLowerCase();
    for (const [name, value] of attributesOf(m[2]!)) {
      const loads = LOADING_ATTRIBUTES.has(name) || (HREF_LOADS.has(tag) && (name === 'href' || name === 'xlink:href'));
      if (loads && isExternalAttribute(name, value)) {
        found.push({ file, line: lineAt(html, m.index!), what: `<${tag} ${name}="${value}">` });
      }
      if (name === 'style') found.push(...findExternalLoadsInCss(value, file, lineAt(html, m.index!) - 1));
    }
  }
  for (const m of markup.matchAll(STYLE_BLOCK)) {
    found.push(...findExternalLoadsInCss(m[1]!, file, lineAt(html, m.index!) - 1));
  }
  return found.sort((a, b) => a.line - b.line);
}

export function findExternalLoadsInCss(css: string, file: string, lineOffset = 0): ExternalLoad[] {
  return [...css.matchAll(CSS_LOAD)].map((m) => ({ file, line: lineOffset + lineAt(css, m.index!), what: m[0] }));
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/**
 * Rewrites the report's own pages (not attached evidence, which stays as recorded) and
 * returns what still loads from outside anywhere in the report: pages, attachments (the trend
 * page among them), CSS, SVG.
 */
export async function makeReportSelfContained(reportDir: string): Promise<{ rewritten: string[]; remaining: ExternalLoad[] }> {
  const rewritten: string[] = [];
  const remaining: ExternalLoad[] = [];
  for (const path of await filesUnder(reportDir)) {
    const rel = relative(reportDir, path);
    const isHtml = /\.html?$/i.test(path);
    const isCss = /\.css$/i.test(path);
    // An SVG (a chart, an attached image) is markup too: <image href>, <use href>, CSS inside.
    const isSvg = /\.svg$/i.test(path);
    if (!isHtml && !isCss && !isSvg) continue;
    let text = await readFile(path, 'utf8');
    const isEvidence = rel.split(sep).slice(0, 2).join('/') === 'data/attachments';
    if (isHtml && !isEvidence) {
      const stripped = stripExternalLoads(text);
      if (stripped !== text) {
        await writeFile(path, stripped);
        rewritten.push(rel);
        text = stripped;
      }
    }
    remaining.push(...(isHtml || isSvg ? findExternalLoadsInHtml(text, rel) : findExternalLoadsInCss(text, rel)));
  }
  return { rewritten, remaining };
}
