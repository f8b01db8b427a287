/**
 * The shell the lease runs on its host (protocol and decisions: lease-protocol.ts). The lock
 * on <path>.lock lives exactly as long as the holder: Linux's flock(1) on the holder's own
 * fd 9; where there is no flock(1) — FreeBSD, whose base system has lockf(1) instead — lockf
 * holds it while the holder runs as its command, and releases it when the holder ends.
 * Everything the holder gets is a positional argument or a stdin line, never pasted code.
 */

/**
 * The holder proper: sh -c HOLDER_BODY labrig-lease <mode> <path> <reserve> <info> <token>
 * <nonce> <free|held> (under lockf the nonce comes in LABRIG_LEASE_NONCE: an argument would
 * show in ps to every local user, and the nonce is what keeps host text from forging replies). It reports the lease's state, and when it is free and asked to take
 * it, writes the holder file and serves heartbeats and reservations until released.
 */
export const HOLDER_BODY = String.raw`mode=$1 p=$2 r=$3 info=$4 token=$5 n=$6 st=$7
[ -n "$n" ] || n=$LABRIG_LEASE_NONCE
unset LABRIG_LEASE_NONCE
sect() { printf '\n%s %s\n' "$n" "$1"; }
now=$(date +%s)
sect state; echo "$st $now"
sect holder; head -c 4096 "$p" 2>/dev/null
sect heartbeat; head -c 64 "$p.heartbeat" 2>/dev/null
sect reserved; head -c 4096 "$r" 2>/dev/null
sect log; tail -n 400 "$p.log" 2>/dev/null | head -c 200000
sect ask
[ "$st" = free ] || exit 0
IFS= read -r answer || exit 0
[ "$answer" = take ] || exit 0
me=$(printf '%s"since":%s,"pid":%s}' "$info" "$now" "$$")
log() { printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$me" >> "$p.log"; }
unreserve() { [ -f "$r" ] && IFS=' ' read -r rt _ < "$r" && [ "$rt" = "$token" ] && rm -f "$r"; }
t=$(mktemp "$p.XXXXXX") && printf '%s\n' "$me" > "$t" && mv -f "$t" "$p" || exit 71
rm -f "$r"
date +%s > "$p.heartbeat"
log "$mode"
sect "taken $$"
released=
while IFS=' ' read -r cmd arg; do
  case $cmd in
  hb) date +%s > "$p.heartbeat" ;;
  reserve)
    case $arg in ''|*[!0-9]*) sect unreserved; continue ;; esac
    d=$(( $(date +%s) + arg ))
    if mkdir -p "$(dirname "$r")" && t=$(mktemp "$r.XXXXXX") && printf '%s %s %s\n' "$token" "$d" "$me" > "$t" && mv -f "$t" "$r" && sync 9>&-; then
      log "reserved-until-$d"; sect "reserved $d"
    else sect unreserved; fi ;;
  back) unreserve; sect back ;;
  release) released=1; break ;;
  esac
done
if [ -n "$released" ]; then unreserve; rm -f "$p"; log released; else log dropped; fi
sect bye`;

/**
 * sh -c HOLDER_SCRIPT labrig-lease <mode> <path> <reserve> <info> <token> <HOLDER_BODY>; the
 * first stdin line is the nonce. flock(1) where it exists with /proc (Linux: the break checks
 * fd 9 there); else lockf(1) -t 0, whose exit 75 (EX_TEMPFAIL, lockf(1)) means another process
 * holds the lock. LABRIG_LEASE_LOCK=lockf chooses lockf where both exist.
 */
export const HOLDER_SCRIPT = `mode=$1 p=$2 r=$3 info=$4 token=$5 body=$6
IFS= read -r n || exit 0
mkdir -p "$(dirname "$p")" || exit 70
if [ "$LABRIG_LEASE_LOCK" != lockf ] && command -v flock >/dev/null 2>&1 && [ -d /proc/$$/fd ]; then
  exec 9>>"$p.lock" || exit 70
  if flock -n 9; then st=free; else st=held; fi
  set -- "$mode" "$p" "$r" "$info" "$token" "$n" "$st"
  eval "$body"
elif command -v lockf >/dev/null 2>&1; then
  LABRIG_LEASE_NONCE=$n lockf -k -s -t 0 "$p.lock" sh -c "$body" labrig-lease "$mode" "$p" "$r" "$info" "$token" '' free
  rc=$?
  [ "$rc" -eq 75 ] || exit "$rc"
  set -- "$mode" "$p" "$r" "$info" "$token" "$n" held
  eval "$body"
else
  echo "labrig-lease: this host has neither flock(1) nor lockf(1) to hold $p.lock" >&2
  exit 70
fi`;

/**
 * sh -c BREAK_SCRIPT labrig-lease-break <pid> <path> <line>: kills <pid> only if it is the
 * lease's holder — it keeps <path>.lock open on fd 9 (flock), or its parent is the lockf(1)
 * holding <path>.lock for it — and logs <line>.
 */
export const BREAK_SCRIPT = String.raw`pid=$1 p=$2 line=$3
case $pid in ''|*[!0-9]*) exit 64 ;; esac
on_fd9() { fd=$(readlink "/proc/$pid/fd/9" 2>/dev/null) && lock=$(readlink -f "$p.lock") && [ "$fd" = "$lock" ]; }
under_lockf() {
  pp=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ') && [ -n "$pp" ] && a=$(ps -ww -o args= -p "$pp" 2>/dev/null) || return 1
  case $a in *" $p.lock sh -c "*) return 0 ;; *) return 1 ;; esac
}
on_fd9 || under_lockf || exit 65
printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line" >> "$p.log"
kill -KILL "$pid"`;
