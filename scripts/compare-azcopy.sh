#!/usr/bin/env bash
# drivecopy against AzCopy, side by side, uploading the same data into the same kind of Azurite, both
# with whole-blob MD5 (drivecopy `import --put-md5`, AzCopy `--put-md5`), and downloading it again with
# MD5 checks (AzCopy `--check-md5 FailIfDifferentOrMissing`; drivecopy `export` when it exists).
# Each run gets a fresh, disk-backed Azurite in a temporary directory, so neither tool pays for the
# other's data. Prints a Markdown table: wall seconds, MB/s, client CPU seconds (user + sys), peak
# RSS of the client, and Azurite's CPU seconds.
#
#   scripts/compare-azcopy.sh              # 2 GiB: one file, and 2,048 files of 1 MiB
#   COMPARE_MIB=256 scripts/compare-azcopy.sh
#
# Needs about 4 × COMPARE_MIB MiB of disk under target/compare-data (removed at the end). Azurite, not
# the client, bounds the absolute speed (azure-sdk-notes.md §4); CPU and memory are what a client
# controls.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
mib=${COMPARE_MIB:-2048}
data="$CARGO_TARGET_DIR/compare-data"
rm -rf "$data" && mkdir -p "$data"
trap 'rm -rf "$data"' EXIT

cargo build --release --quiet
drivecopy="$CARGO_TARGET_DIR/release/drivecopy"
# Installs the pinned Azurite and AzCopy (npm ci) and starts one Azurite, which this script does not
# use beyond the set-up: every run starts its own below.
# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh
azcopy=${DRIVECOPY_AZCOPY_BIN:?AzCopy was not installed}

# Azurite's well-known development account and key (public, documented by Microsoft).
account=devstoreaccount1
key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
sas=$(python3 - "$account" "$key" <<'EOF'
import base64, hashlib, hmac, sys, urllib.parse
account, key = sys.argv[1], sys.argv[2]
sv, sp, se = "2022-11-02", "rwdlacup", "2099-01-01T00:00:00Z"
sts = f"{account}\n{sp}\nb\nsco\n\n{se}\n\nhttps,http\n{sv}\n\n"
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
q = lambda s: urllib.parse.quote(s, safe="")
print(f"sv={sv}&ss=b&srt=sco&sp={sp}&se={q(se)}&spr=https,http&sig={q(sig)}")
EOF
)

# Test data: pseudo-random (incompressible), made once per run of the script.
gen() { # bytes -> stdout (openssl ends on SIGPIPE once head has enough)
  { openssl enc -aes-128-ctr -pass pass:drivecopy -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } |
    head -c "$1"
}
mkdir -p "$data/large/data" "$data/small/data"
gen $((mib << 20)) >"$data/large/data/big.bin"
gen $((mib << 20)) | split -b 1M -d -a 5 - "$data/small/data/f"
for set in large small; do
  "$drivecopy" prepare --drive "$data/$set" --src "$data/$set/data" --dst "bench/" --in-place \
    --drive-id "CMP$set" >/dev/null
done

azurite_pid=""
start_azurite() { # -> sets url, azurite_pid
  local port dir
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d -p "$data" azurite.XXXXXX)
  "$DRIVECOPY_AZURITE_BIN" --disableTelemetry --silent --blobHost 127.0.0.1 --blobPort "$port" \
    --location "$dir" >"$dir/out" 2>&1 &
  azurite_pid=$!
  url="http://127.0.0.1:$port/$account"
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url?comp=list" || true)" != 000 ] && break
    sleep 0.1
  done
  curl -s -o /dev/null -X PUT -H 'x-ms-version: 2022-11-02' "$url/bench?restype=container&$sas"
}
azurite_cpu() { # -> Azurite's CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$azurite_pid/stat"
}
stop_azurite() {
  kill "$azurite_pid" && wait "$azurite_pid" 2>/dev/null || true
  rm -rf "$data"/azurite.*
}
warm() { cat "$1"/data/* >/dev/null; }
measure() { # label, bytes, command... -> table row
  local label=$1 bytes=$2 out before
  shift 2
  before=$(azurite_cpu)
  out=$(/usr/bin/time -f '%e %U %S %M' "$@" 2>&1 >/dev/null | tail -n 1)
  read -r wall user sys rss <<<"$out"
  printf '| %s | %.1f | %.0f | %.1f | %.0f | %.1f |\n' "$label" "$wall" \
    "$(awk -v b="$bytes" -v w="$wall" 'BEGIN { print b / w / 1e6 }')" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$((rss / 1024))" \
    "$(awk -v a="$(azurite_cpu)" -v b="$before" 'BEGIN { print a - b }')"
}

export AZCOPY_LOG_LOCATION="$data/azcopy-log" AZCOPY_JOB_PLAN_LOCATION="$data/azcopy-plan"
export HOME="$data/home" # AzCopy also writes ~/.azcopy
mkdir -p "$HOME"
bytes=$((mib << 20))
echo
echo "| run (${mib} MiB, fresh disk-backed Azurite each) | wall s | MB/s | client CPU s | client peak RSS MiB | Azurite CPU s |"
echo "|---|---|---|---|---|---|"
for set in large small; do
  name=$([ $set = large ] && echo "one ${mib} MiB file" || echo "${mib} files of 1 MiB")
  dl="$data/download"

  warm "$data/$set"
  start_azurite
  measure "drivecopy import --put-md5, $name" $bytes \
    "$drivecopy" import --drive "$data/$set" --dest "$url/?$sas" --put-md5
  if "$drivecopy" export --help >/dev/null 2>&1; then
    printf '<BlobList><BlobPathPrefix>/bench/</BlobPathPrefix></BlobList>' >"$data/list.xml"
    rm -rf "$dl" && mkdir -p "$dl"
    measure "drivecopy export, $name" $bytes \
      "$drivecopy" export --drive "$dl" --source "$url/?$sas" --blob-list "$data/list.xml" \
      --drive-id CMPEXPORT
    rm -rf "$dl"
  fi
  stop_azurite

  warm "$data/$set"
  start_azurite
  measure "AzCopy copy --put-md5, $name" $bytes \
    "$azcopy" copy "$data/$set/data/*" "$url/bench/?$sas" --from-to LocalBlob --put-md5 \
    --block-size-mb 4 --skip-version-check --log-level ERROR
  rm -rf "$dl" "$AZCOPY_LOG_LOCATION" "$AZCOPY_JOB_PLAN_LOCATION"
  measure "AzCopy download --check-md5, $name" $bytes \
    "$azcopy" copy "$url/bench/*?$sas" "$dl" --from-to BlobLocal --recursive \
    --check-md5 FailIfDifferentOrMissing --skip-version-check --log-level ERROR
  rm -rf "$dl" "$AZCOPY_LOG_LOCATION" "$AZCOPY_JOB_PLAN_LOCATION"
  stop_azurite
done
