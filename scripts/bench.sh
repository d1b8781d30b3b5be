#!/usr/bin/env bash
# Run the criterion benches and print the README's performance table: each import and export case as a ratio
# of the MD5 ceiling (cores × single-thread md-5, measured in the same run), the hash pool's 2-thread
# speed-up, and peak RSS of the release binary at default settings on every bench drive and on a
# 2 GiB against an 8 GiB drive. Takes about 15 minutes and up to ~35 GB of disk under
# target/bench-data (many-file stores are kept until the end of the import bench, see
# benches/import.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
data="$CARGO_TARGET_DIR/bench-data"

cargo build --release --quiet
cargo bench --bench hash -- --warm-up-time 1 --measurement-time 5 2>&1 | grep -E '^(block|md5)|time:|thrpt:' || true
# On ext4 without a journal (this machine kind's root file system), creating files soon after many
# were deleted is slow (the allocator skips recently freed inodes); dropping clean caches forgets
# them. Needs root; harmless otherwise.
settle() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
settle
cargo bench --bench import 2>&1 | grep -E '^(import|md5)|time:|thrpt:' || true
settle
cargo bench --bench export 2>&1 | grep -E '^(export|md5)|time:|thrpt:' || true

# Peak RSS of the binary at default settings (O_DIRECT reads, fsync on).
rss() { # drive -> "seconds KiB"
  local store="$data/rss-store"
  rm -rf "$store"
  /usr/bin/time -f '%e %M' "$CARGO_TARGET_DIR/release/drivecopy" import --drive "$1" --dest "$store" \
    2>&1 >/dev/null | tail -n 1
  rm -rf "$store"
}
big_drive() { # GiB -> drive with one file of that size
  local d="$data/rss-$1GiB"
  if [ ! -f "$d/.prepared" ]; then
    rm -rf "$d" && mkdir -p "$d/data"
    if command -v openssl >/dev/null; then
      openssl enc -aes-128-ctr -pass pass:drivecopy -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c "$(($1 << 30))" >"$d/data/big.bin"
    else
      head -c "$(($1 << 30))" /dev/urandom >"$d/data/big.bin"
    fi
    "$CARGO_TARGET_DIR/release/drivecopy" prepare --drive "$d" --src "$d/data" --dst rss/ --in-place \
      --drive-id RSS >/dev/null
    touch "$d/.prepared"
  fi
  echo "$d"
}
settle
{
  for d in "$data"/one_2GiB_file-* "$data"/2GiB_of_256KiB_files-* "$data"/20000_files_of_4KiB-*; do
    [ -d "$d" ] && echo "rss $(basename "$d") $(rss "$d")"
  done
  echo "rss single_file_2GiB $(rss "$(big_drive 2)")"
  echo "rss single_file_8GiB $(rss "$(big_drive 8)")"
} | tee "$data/rss.txt"

python3 - "$CARGO_TARGET_DIR/criterion" "$data/rss.txt" <<'PY'
import json, os, sys
crit, rss_file = sys.argv[1], sys.argv[2]
def mean_s(path):
    with open(os.path.join(crit, path, "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"] / 1e9
MB = 1e6
cores = os.cpu_count()
md5 = (256 << 20) / mean_s("md5_ceiling/stream") / MB
ceiling = cores * md5
print(f"\n| measurement | result | target |\n|---|---|---|")
print(f"| single-thread md-5 | {md5:.0f} MB/s | |")
print(f"| MD5 ceiling ({cores} cores) | {ceiling:.0f} MB/s | |")
rows = [("one_2GiB_file", 2 << 30, "≥ 0.75 × ceiling", 0.75),
        ("2GiB_of_256KiB_files", 8192 * (256 << 10), "≥ 0.70 × ceiling", 0.70)]
for name, size, target, _ in rows:
    try:
        rate = size / mean_s(f"import/{name}") / MB
        print(f"| import {name} | {rate:.0f} MB/s = {rate / ceiling:.2f} × ceiling | {target} |")
    except FileNotFoundError:
        pass
for name, size in (("one_2GiB_file", 2 << 30), ("2GiB_of_256KiB_files", 8192 * (256 << 10))):
    try:
        rate = size / mean_s(f"export/{name}") / MB
        print(f"| export {name} | {rate:.0f} MB/s = {rate / ceiling:.2f} × ceiling | ≥ 0.75 × ceiling |")
    except FileNotFoundError:
        pass
try:
    print(f"| import 20000_files_of_4KiB | {20000 / mean_s('import/20000_files_of_4KiB'):.0f} files/s | ≥ 3,000 files/s |")
except FileNotFoundError:
    pass
for block in ("64KiB", "1024KiB", "4096KiB"):
    try:
        one = mean_s(f"block_md5_crc32c/1_threads/{block}")
        two = mean_s(f"block_md5_crc32c/2_threads/{block}")
        print(f"| hash {block} blocks, 2 threads vs 1 | {one / two:.2f} × ({(256 << 20) / two / MB:.0f} vs {(256 << 20) / one / MB:.0f} MB/s) | ≥ 1.8 × |")
    except FileNotFoundError:
        pass
with open(rss_file) as f:
    for line in f:
        _, name, secs, kib = line.split()
        print(f"| peak RSS, {name} | {int(kib) / 1024:.0f} MiB ({secs} s) | ≤ 200 MiB, flat |")
PY
