#!/usr/bin/env bash
# The README's run command: build drivecopy, prepare a sample drive from real files (this
# repository's sources and the system's documentation), import it into the embedded local
# store, and print the drive status. No Azure account needed; everything stays under target/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/drivecopy
work=${DEMO_DIR:-target/demo}
rm -rf "$work"
mkdir -p "$work/drive"

sources=(--src src --dst demo/src/ --src tests/data --dst demo/testdata/)
if [ -d /usr/share/doc ]; then
  sources+=(--src /usr/share/doc --dst demo/doc/)
fi

echo "== prepare: copy real files onto $work/drive and write its manifest"
"$bin" prepare --drive "$work/drive" "${sources[@]}" --drive-id DEMO-DRIVE-1 --json \
  >"$work/driveinfo.json" 2>"$work/prepare.log"
cat "$work/driveinfo.json"
echo
echo "($(grep -c '^warning: skipped' "$work/prepare.log" || true) symbolic links or special files skipped, see $work/prepare.log)"
hash=$(sed -n 's/.*"manifestHash":"\([0-9A-F]*\)".*/\1/p' "$work/driveinfo.json")

echo "== import into the local store $work/store (JSON lines on stdout, kept in $work/events.jsonl)"
set +e
"$bin" import --drive "$work/drive" --dest "$work/store" --job demo --manifest-hash "$hash" \
  --log-level verbose >"$work/events.jsonl"
code=$?
set -e
echo "== drive status (exit code $code)"
tail -n 1 "$work/events.jsonl" | python3 -m json.tool
exit "$code"
