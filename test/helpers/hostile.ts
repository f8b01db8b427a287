/**
 * Commands that once broke the shell protocol's framing, and what a shell says to each.
 * The expected result comes from the same shell running the same text with `-c` and
 * stdin from /dev/null (the oracle), except where a background job prints after the
 * command returned: that late output is exactly what must not be seen.
 */
import { execa } from 'execa';

export interface HostileCase {
  name: string;
  command: string;
  /** Set for cases the oracle cannot answer (late output of a background job). */
  expected?: { code: number; stdout: string };
  /** Output that is not text a tty can carry (NUL bytes, lone CRs): exact only over a pipe. */
  binary?: boolean;
}

const oneMiB = 1024 * 1024;
const cases: HostileCase[] = [
  { name: 'unbalanced single quote', command: "echo 'oops" },
  { name: 'unbalanced double quote', command: 'echo "oops' },
  { name: 'trailing backslash', command: 'echo oops\\' },
  { name: 'lone backslash', command: 'echo \\' },
  { name: 'backslashes', command: "printf '%s\\n' 'a\\' b\\\\ \"c\\\\d\" 'e\\\\\\\\f'" },
  { name: 'quote in a comment', command: "echo a # it's" },
  { name: 'quote inside a quote', command: "a='x'\\''y'; echo \"$a\" '\"'" },
  { name: 'here-document', command: 'x=1; cat <<EOF\nx=$x\n$(echo sub) `echo bq`\nEOF' },
  { name: 'quoted here-document', command: "cat <<'EOF'\n$(not run) 'unbalanced \"too\n)\nEOF\necho after" },
  { name: 'unterminated here-document', command: 'cat <<EOF\nno terminator' },
  { name: 'tab-stripped here-document', command: 'cat <<-EOF\n\tindented\n\tEOF' },
  { name: 'here-document to a stdin reader', command: 'while read l; do echo "got $l"; done <<EOF\none\ntwo\nEOF' },
  { name: 'closing parenthesis', command: ')' },
  { name: 'unclosed subshell', command: '( echo in' },
  { name: 'unclosed if', command: 'if true; then echo x' },
  { name: 'unclosed case', command: 'case x in' },
  { name: 'stray brace', command: '}' },
  { name: 'stray done', command: 'done' },
  { name: 'unclosed command substitution', command: 'echo $(' },
  { name: 'eval of an unbalanced quote', command: 'eval "echo \'unbalanced"' },
  { name: 'exit code', command: 'echo a; exit 7' },
  { name: 'exit 255', command: 'exit 255' },
  { name: 'exit 300', command: 'exit 300' },
  { name: 'stderr and exit', command: 'echo to-stderr >&2; exit 3' },
  { name: 'command not found', command: 'nosuchcommand-labrig' },
  { name: 'killed by a signal', command: "sh -c 'kill -TERM $$'" },
  { name: 'set -e', command: 'set -e; false; echo unreachable' },
  { name: 'cd into nothing', command: 'cd /nonexistent-labrig-dir' },
  { name: 'EXIT trap', command: "trap 'echo trapped' EXIT; echo body" },
  { name: 'empty command', command: '' },
  { name: 'comment only', command: '# nothing to run' },
  { name: 'stdin reader: cat', command: 'cat' },
  { name: 'stdin reader: read', command: 'read x; echo "rc=$? x=$x"' },
  { name: 'stdin reader: head', command: 'head -c 5; echo "[$?]"' },
  { name: 'stdin reader loop', command: 'while read l; do echo "$l"; done; echo loop-done' },
  { name: 'no final newline', command: "printf 'no newline'" },
  { name: 'blank lines', command: "printf '\\n\\n\\n'" },
  { name: 'marker look-alikes', command: "echo ':E:0'; printf '\\n%s:E:%d\\n' deadbeef 0; echo ':S'" },
  { name: 'substitution text stays text', command: "echo '$(whoami)' \"\\$(id)\" '`id`'" },
  { name: 'unicode', command: "echo 'héllo ✓ 日本'" },
  { name: 'long command (5000 chars)', command: `x='${'A'.repeat(5000)}'; echo \${#x}` },
  { name: 'control characters in the command', command: "printf '%s' '<\x01\x03\x04\x15\x17\x7f\x1b[0m>' | od -An -c | tr -s ' '" },
  { name: 'carriage return in the command', command: "echo 'x\ry' | od -An -c | tr -s ' '" },
  { name: 'stdout closed', command: 'exec 1>&-; echo gone; exit 4' },
  {
    name: '1 MiB of output',
    command: `yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde 2>/dev/null | head -c ${oneMiB}`,
  },
  { name: 'binary output', command: "printf '\\000\\001\\002\\377\\376\\200abc\\r\\n\\r'", binary: true },
  { name: 'background writer (stdout)', command: '(sleep 0.3; echo late-out) & echo early', expected: { code: 0, stdout: 'early\n' } },
  {
    name: 'background writer (stderr)',
    command: '(sleep 0.2; echo late-err >&2) & echo ok; exit 5',
    expected: { code: 5, stdout: 'ok\n' },
  },
  { name: 'background job that keeps stdout', command: '(sleep 2; echo very-late) & echo quick', expected: { code: 0, stdout: 'quick\n' } },
  { name: 'background writer, then a syntax error', command: "(sleep 0.1; echo late) &\necho 'oops", expected: { code: 2, stdout: '' } },
];

/** `count` cases, cycling through the list. */
export function hostileCases(count: number): HostileCase[] {
  return Array.from({ length: count }, (_, i) => cases[i % cases.length]!);
}

export interface Oracle {
  code: number;
  stdout: Buffer;
}

/** What `shell -c command </dev/null` says, on the runner. */
export async function oracle(shell: readonly string[], c: HostileCase): Promise<Oracle> {
  if (c.expected) return { code: c.expected.code, stdout: Buffer.from(c.expected.stdout) };
  const [file, ...args] = shell;
  const r = await execa(file!, [...args, '-c', c.command], {
    stdin: 'ignore',
    reject: false,
    encoding: 'buffer',
    stripFinalNewline: false,
    timeout: 20_000,
  });
  return { code: r.exitCode ?? 128 + 15, stdout: Buffer.from(r.stdout) };
}

/**
 * For a console, where stdout and stderr share the tty: what the same shell prints for
 * the command run in a subshell with both streams merged, named as the console's shell is.
 */
export async function ttyOracle(shell: readonly string[], c: HostileCase): Promise<{ code: number; stdout: string }> {
  if (c.expected) return c.expected;
  const [file, ...args] = shell;
  const r = await execa(file!, [...args, '-c', '(eval "$1") </dev/null 2>&1', file!, c.command], {
    stdin: 'ignore',
    reject: false,
    stripFinalNewline: false,
    timeout: 20_000,
  });
  return { code: r.exitCode ?? 128 + 15, stdout: String(r.stdout) };
}

/**
 * A shell names itself in its messages as it was started (`sh: 1: eval: …`, `busybox: eval:
 * line 0: …`): on a console, where they share the command's output, compare without them.
 */
export function withoutShellMessages(text: string): string {
  return text.replace(/^-?(?:\/[\w/.-]*\/)?(?:sh|dash|bash|ash|busybox): .*\n?/gm, '');
}
