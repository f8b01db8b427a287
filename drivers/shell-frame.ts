/**
 * The shell protocol's framing, as text: what is written to a remote POSIX sh (dash,
 * busybox ash, FreeBSD sh) and how its answer is read back. Pure: no I/O.
 *
 * A command never reaches the shell's parser as code: it travels as one single-quoted
 * word and runs as `(eval "$c")` in a subshell. An unbalanced quote, a here-document or a
 * trailing backslash is then eval's syntax error, in that subshell, with its exit code;
 * the framing around it is parsed the same whatever the command says.
 *
 * Markers carry a fresh nonce and are printed by `printf '%s:X' NONCE`, so neither the
 * command line nor its echo on a tty ever contains a marker whole (labgrid's trick).
 */

/** POSIX single quotes: the only character that needs care is the quote itself. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A NUL cannot be passed through any shell; every other byte can. */
export function assertShellText(command: string, host: string): void {
  if (command.includes('\0'))
    throw new TypeError(`host ${host}: a shell command cannot contain a NUL byte: ${JSON.stringify(command.slice(0, 80))}`);
}

/*
 * Pipe (an SSH channel running sh). Each command's stdout and stderr go to files of its
 * own in a private directory, and are sent once it has ended: a background job that
 * prints later writes into a file nobody reads again, never into the next command's
 * output. Empty files cost no exec; they are removed in batches (pipeCleanup).
 * Without any writable temporary directory the shell falls back to sharing the channel.
 */
const PIPE_FUNCTIONS = [
  `__lrmk() { __lrd=$(umask 077; for __t in "\${TMPDIR:-/tmp}" /dev/shm /var/tmp; do mktemp -d "$__t/labrig-sh.$$.XXXXXX" 2>/dev/null && break; done); [ -n "$__lrd" ] || __lrdirect=1; }`,
  `__lrgc() { [ -n "$__lrd" ] && rm -f "$__lrd"/*.o "$__lrd"/*.e 2>/dev/null; }`,
  `__lrx() { __n=$1; __c=$2; shift 2; [ -n "$__lrdirect" ] || [ -d "$__lrd" ] || __lrmk; ` +
    `if [ -n "$__lrd" ]; then (eval "$__c") >"$__lrd/$__n.o" 2>"$__lrd/$__n.e" </dev/null & else (eval "$__c") </dev/null & fi; ` +
    `__lr=$!; printf '%s:P:%d\\n' "$__n" "$__lr" >&2; wait "$__lr"; __rc=$?; ` +
    `[ -s "$__lrd/$__n.o" ] && cat "$__lrd/$__n.o"; printf '\\n%s:E:%d\\n' "$__n" "$__rc"; ` +
    `[ -s "$__lrd/$__n.e" ] && cat "$__lrd/$__n.e" >&2; printf '\\n%s:E:0\\n' "$__n" >&2; }`,
];

/**
 * Directories of shells that are gone (their pid in the name no longer runs) are removed
 * at the next start; a symlink planted under that name is never followed.
 */
const PIPE_STALE =
  `for __d in "\${TMPDIR:-/tmp}"/labrig-sh.*; do __p=\${__d##*/labrig-sh.}; __p=\${__p%%.*}; ` +
  `case $__p in ''|*[!0-9]*) continue;; esac; [ -d "$__d" ] && [ ! -h "$__d" ] && ! kill -0 "$__p" 2>/dev/null && rm -rf "$__d"; done`;

/** Sent once: defines the functions, prepares the directory, answers `NONCE:I:files|direct`. */
export function pipeInit(nonce: string): string {
  return `${[...PIPE_FUNCTIONS, PIPE_STALE, `__lrmk; printf '%s:I:%s\\n' ${nonce} "\${__lrd:+files}\${__lrdirect:+direct}"`].join('\n')}\n`;
}

export const pipeReady = (nonce: string): RegExp => new RegExp(`${nonce}:I:(files|direct)\\n`);

export function pipeCommand(nonce: string, command: string, cleanupFirst: boolean): string {
  return `${cleanupFirst ? '__lrgc; ' : ''}__lrx ${nonce} ${shellQuote(command)}\n`;
}

/** The end marker on stdout (the exit code) and on stderr (always 0); nothing strips a CR the command printed. */
export const pipeEnd = (nonce: string): RegExp => new RegExp(`\\n${nonce}:E:(\\d+)\\n`);
export const pipePid = (nonce: string): RegExp => new RegExp(`${nonce}:P:(\\d+)\\n`);

export const pipeClose = 'rm -rf "$__lrd" 2>/dev/null; exit 0\n';

/*
 * Tty (a console). The command's output (stdout and stderr together, as a tty has one
 * stream) is read line by line and each line is printed as `NONCE:O:line`: whatever
 * else writes to the console (a getty, a daemon, the kernel) is dropped, not taken as
 * output. Its stdin is /dev/null, so it cannot eat the next line typed. After the exit
 * code the reader hands the rest of the pipe to a background drain, so a background job
 * that prints later neither blocks the command nor lands in the next one.
 */
const TTY_FUNCTIONS = [
  `__lrt() { while IFS= read -r __l; do case $__l in "$1:Z:"*) printf '%s:E:%s\\n' "$1" "\${__l#"$1:Z:"}"; break;; esac; ` +
    `printf '%s:O:%s\\n' "$1" "$__l"; done; (while IFS= read -r __l; do :; done) & }`,
  `__lr() { __n=$1; __c=$2; shift 2; printf '%s:S\\n' "$__n"; ` +
    `{ (eval "$__c") </dev/null 2>&1; printf '\\n%s:Z:%d\\n' "$__n" "$?"; } | __lrt "$__n"; }`,
  // A newline to splice into a command typed in several lines.
  `__lnl='\n'`,
];

/** Normalises a freshly logged-in console shell and answers `NONCE:K`. */
export function ttyInit(nonce: string): string {
  return `${[
    "stty -echo -onlcr 2>/dev/null || stty -echo 2>/dev/null; stty -tostop cols 512 2>/dev/null; PS1=''; PS2=''; unset PROMPT_COMMAND; set +o emacs +o vi 2>/dev/null; dmesg -n 1 2>/dev/null",
    ...TTY_FUNCTIONS,
    ttyPing(nonce),
  ].join('\n')}\n`;
}

export const ttyPing = (nonce: string): string => `printf '%s:K\\n' ${nonce}`;
export const ttyPong = (nonce: string): RegExp => new RegExp(`${nonce}:K\\r?\\n`);
export const ttyStart = (nonce: string): RegExp => new RegExp(`${nonce}:S\\r?\\n`);
export const ttyEnd = (nonce: string): RegExp => new RegExp(`${nonce}:E:(\\d+)\\r?\\n`);

/*
 * A tty line discipline acts on control characters (^C, ^D, ^U, DEL, CR → NL) and a
 * canonical line has a length limit (4095 bytes on Linux, less elsewhere). So a command
 * that is long, spans lines or holds control characters is typed as short assignments
 * that rebuild it: plain text quoted, newlines from $__lnl, control bytes from printf.
 */
const TTY_LINE_BYTES = 240;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

function ttyPieces(command: string): string[] {
  const pieces: string[] = [];
  let text = '';
  let bytes = 0;
  const flush = (): void => {
    if (text) pieces.push(shellQuote(text));
    text = '';
    bytes = 0;
  };
  for (const ch of command) {
    if (ch === '\n') {
      flush();
      pieces.push('$__lnl');
    } else if (CONTROL.test(ch)) {
      flush();
      pieces.push(`"$(printf '\\${ch.charCodeAt(0).toString(8).padStart(3, '0')}')"`);
    } else {
      const b = Buffer.byteLength(ch) * (ch === "'" ? 4 : 1);
      if (bytes + b > TTY_LINE_BYTES / 2) flush();
      text += ch;
      bytes += b;
    }
  }
  flush();
  return pieces;
}

/** The lines to type for one command, ending with the call that runs it. */
export function ttyCommand(nonce: string, command: string): string {
  const quoted = shellQuote(command);
  if (!/[\n]/.test(command) && !CONTROL.test(command) && Buffer.byteLength(quoted) <= TTY_LINE_BYTES) return `__lr ${nonce} ${quoted}\n`;
  const lines = ['__lc='];
  let line = '';
  for (const piece of ttyPieces(command)) {
    if (line && line.length + piece.length > TTY_LINE_BYTES) {
      lines.push(`__lc=$__lc${line}`);
      line = '';
    }
    line += piece;
  }
  if (line) lines.push(`__lc=$__lc${line}`);
  lines.push(`__lr ${nonce} "$__lc"`);
  return `${lines.join('\n')}\n`;
}

/**
 * The command's own output from the console text between its start and end markers:
 * only lines tagged with its nonce, so foreign lines are dropped. The framed stream was
 * the output followed by "\n" and the exit-code line, so joining the tagged lines with
 * "\n" gives the output back exactly (with or without its final newline).
 */
export function ttyOutput(nonce: string, between: string): string {
  const lines: string[] = [];
  for (const m of between.matchAll(new RegExp(`${nonce}:O:([^\\n]*)\\n`, 'g'))) lines.push(m[1]!.replace(/\r$/, ''));
  return lines.join('\n');
}

/** On a tty, a death string on a line that carries this nonce is the command's own output. */
export const ttyOwnLine = (nonce: string): RegExp => new RegExp(nonce);
