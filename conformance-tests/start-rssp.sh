# Sourced by the interoperability and fuzzing runs. `start_rssp [VAR=value ...]` starts "$rssp" serve
# on its embedded default under "$work/data", on a free loopback port, with none of the caller's RSSP_*
# settings (a shell that exports RSSP_MODE=production or a database URL must not change what is
# tested) and the given extra environment; it sets `url` and `server_pid` and returns once the server
# listens. Needs `rssp` and `work` set by the caller; stdout and stderr go to $work/serve.{out,err}.
start_rssp() {
  local name
  for name in $(compgen -e); do
    case "$name" in RSSP_*) unset "$name" ;; esac
  done
  unset SOFTHSM2_CONF
  export RSSP_DATA_DIR="$work/data"
  # `env` execs rssp, so $! is the server's own pid (the fuzzing run reads its memory).
  env "$@" RSSP_LISTEN=127.0.0.1:0 "$rssp" serve > "$work/serve.out" 2> "$work/serve.err" &
  server_pid=$!
  url=""
  for _ in $(seq 1 150); do
    url="$(sed -n 's/^rssp listening on //p' "$work/serve.out")"
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err"; exit 1; }
    sleep 0.2
  done
  [ -n "$url" ] || { echo "server did not start"; cat "$work/serve.err"; exit 1; }
  echo "rssp serving at $url (pid $server_pid)"
}
