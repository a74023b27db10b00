#!/usr/bin/env bash
# Airflow's own Python clients and a schemathesis fuzz against a real `dagctl standalone`.
#
#   tests/python/run.sh [PATH_TO_DAGCTL]      (or DAGCTL=...; default target/debug/dagctl)
#
# Makes (or reuses) a venv in ${CARGO_TARGET_DIR:-target}/pyvenv with requirements.txt,
# starts `dagctl standalone --port 0` in a fresh temp dir holding a copy of dags/, then runs
# test_airflow_client.py (apache-airflow-client), test_airflowctl.py (airflowctl) and
# fuzz_openapi.sh (schemathesis), and stops the server. Exit 0 only if all pass; exit 77
# when Python or the packages cannot be installed (offline), so callers can tell "skipped".
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
dagctl="${1:-${DAGCTL:-$root/target/debug/dagctl}}"
[[ -x "$dagctl" ]] || { echo "run.sh: no dagctl binary at $dagctl" >&2; exit 2; }
dagctl="$(cd "$(dirname "$dagctl")" && pwd)/$(basename "$dagctl")"

target="${CARGO_TARGET_DIR:-target}"
[[ "$target" = /* ]] || target="$root/$target"
venv="$target/pyvenv"

# --- the venv -------------------------------------------------------------------------
command -v python3 >/dev/null || { echo "run.sh: python3 not found" >&2; exit 77; }
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" || { echo "run.sh: python3 -m venv failed (python3-venv missing?)" >&2; rm -rf "$venv"; exit 77; }
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"; then
    echo "run.sh: pip could not install $here/requirements.txt (offline?)" >&2
    exit 77
  fi
  echo "$want" >"$stamp"
fi
export PATH="$venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1

# --- the server -----------------------------------------------------------------------
work="$(mktemp -d)"
server_pid=""
stop() {
  local code=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ $code -ne 0 && -f "$work/standalone.err" ]]; then
    echo "--- standalone stderr (last 50 lines) ---" >&2
    tail -n 50 "$work/standalone.err" >&2
  fi
  rm -rf "$work"
  exit $code
}
trap stop EXIT

cp -r "$root/dags" "$work/dags"
(
  cd "$work"
  unset UPDRAFT_CONFIG UPDRAFT__DATABASE__URL UPDRAFT__CORE__DAGS_FOLDER
  export RUST_LOG=warn UPDRAFT__SCHEDULER__POLL_INTERVAL=300ms
  exec "$dagctl" standalone --port 0 >"$work/standalone.out" 2>"$work/standalone.err"
) &
server_pid=$!

base=""
deadline=$((SECONDS + 60))
while [[ -z "$base" ]]; do
  kill -0 "$server_pid" 2>/dev/null || { echo "run.sh: standalone exited before serving" >&2; cat "$work/standalone.out" >&2; exit 1; }
  (( SECONDS < deadline )) || { echo "run.sh: standalone printed no address in 60s" >&2; exit 1; }
  base="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/standalone.out" | head -n 1 || true)"
  [[ -n "$base" ]] || sleep 0.1
done
password="$(cat "$work/.updraft/standalone_admin_password.txt")"
export UPDRAFT_BASE="$base" UPDRAFT_ADMIN_PASSWORD="$password"
echo "run.sh: standalone at $base (pid $server_pid)"

token="$(python3 - <<'PY'
import json, os, urllib.request
body = json.dumps({"username": "admin", "password": os.environ["UPDRAFT_ADMIN_PASSWORD"]}).encode()
req = urllib.request.Request(os.environ["UPDRAFT_BASE"] + "/auth/token", data=body,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as resp:
    assert resp.status == 201, resp.status
    print(json.load(resp)["access_token"])
PY
)"
export UPDRAFT_TOKEN="$token"

# --- the tests ------------------------------------------------------------------------
failed=()
pytest_args=(-q -p no:cacheprovider --rootdir "$here")
echo "=== apache-airflow-client ==="
python3 -m pytest "${pytest_args[@]}" "$here/test_airflow_client.py" || failed+=("test_airflow_client.py")
echo "=== airflowctl ==="
python3 -m pytest "${pytest_args[@]}" "$here/test_airflowctl.py" || failed+=("test_airflowctl.py")
echo "=== schemathesis ==="
"$here/fuzz_openapi.sh" || failed+=("fuzz_openapi.sh")

if ((${#failed[@]})); then
  echo "run.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run.sh: all Python client tests and the fuzz passed"
