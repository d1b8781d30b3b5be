#!/usr/bin/env bash
# Start the pinned Azurite (package.json: azurite 3.35.0) for the tests, on a free loopback port,
# with its data in a temporary directory, and stop it on exit.
#
#   scripts/azurite.sh CMD [ARGS...]   run CMD with Azurite up, then stop it (exit status of CMD)
#   source scripts/azurite.sh          start it in this shell; an EXIT trap stops it
#
# Exports DRIVECOPY_TEST_AZURITE=http://127.0.0.1:PORT/devstoreaccount1 (the tests' endpoint),
# DRIVECOPY_AZURITE_BIN (the azurite-blob executable, for tests that start their own instance)
# and DRIVECOPY_AZCOPY_BIN (AzCopy, when its package installed a binary).
# No --skipApiVersionCheck: drivecopy pins x-ms-version 2025-11-05 for emulator endpoints.
set -euo pipefail
_dc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ ! -x "$_dc_root/node_modules/.bin/azurite-blob" ]; then
  echo "== npm ci (Azurite and AzCopy, pinned by package-lock.json)" >&2
  (cd "$_dc_root" && npm ci --no-audit --no-fund >&2)
fi
export DRIVECOPY_AZURITE_BIN="$_dc_root/node_modules/.bin/azurite-blob"
# AzCopy links libsecret (azure-sdk-notes.md; Debian package libsecret-1-0).
if ! ldconfig -p 2>/dev/null | grep -q 'libsecret-1\.so\.0'; then
  echo "== apt-get install libsecret-1-0 (AzCopy needs it)" >&2
  _dc_sudo=""
  if [ "$(id -u)" != 0 ]; then _dc_sudo="sudo"; fi
  { $_dc_sudo apt-get install -y -q libsecret-1-0 ||
    { $_dc_sudo apt-get update -q && $_dc_sudo apt-get install -y -q libsecret-1-0; }; } >&2
fi
_dc_azcopy="$(find "$_dc_root/node_modules/@azure-tools" -type f -name 'azcopy_linux_*' 2>/dev/null | head -n1 || true)"
if [ -n "$_dc_azcopy" ]; then
  chmod u+x "$_dc_azcopy" # the npm tarball does not keep the mode bit
  export DRIVECOPY_AZCOPY_BIN="$_dc_azcopy"
fi

_dc_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
_dc_dir="$(mktemp -d -t drivecopy-azurite.XXXXXX)"
"$DRIVECOPY_AZURITE_BIN" --disableTelemetry --silent --blobHost 127.0.0.1 --blobPort "$_dc_port" \
  --location "$_dc_dir" >"$_dc_dir/azurite.out" 2>&1 &
_dc_pid=$!

_dc_stop() {
  kill "$_dc_pid" 2>/dev/null || true
  wait "$_dc_pid" 2>/dev/null || true
  rm -rf "$_dc_dir"
}
trap _dc_stop EXIT

for _ in $(seq 1 100); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$_dc_port/devstoreaccount1?comp=list" || true)"
  if [ "$code" != "000" ]; then break; fi
  if ! kill -0 "$_dc_pid" 2>/dev/null; then
    echo "azurite exited:" >&2; cat "$_dc_dir/azurite.out" >&2; exit 1
  fi
  sleep 0.1
done
export DRIVECOPY_TEST_AZURITE="http://127.0.0.1:$_dc_port/devstoreaccount1"
echo "== azurite $("$DRIVECOPY_AZURITE_BIN" --version 2>/dev/null || echo '?') at $DRIVECOPY_TEST_AZURITE (pid $_dc_pid, data $_dc_dir)" >&2

if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "$#" -gt 0 ]; then
  set +e
  "$@"
  status=$?
  exit "$status"
fi
