#!/usr/bin/env bash
# Real-input import check: prepare a drive from files this project did not write (the documentation,
# man pages, locales and shared libraries the operating system ships) plus a real disk image (an ext4
# file system inside a fixed VHD, imported as a page blob), import it into a local store, and check
# the result with independent tools (md5sum, cmp, stat, e2fsck, debugfs) against the ORIGINAL files.
#
# Usage: scripts/real-input.sh
# Environment:
#   REAL_INPUT_MIN_BYTES  bytes of ordinary files to import, at least (default 1 GiB = 1073741824);
#                         sources are whole directories, added in order until the target is reached
#   REAL_INPUT_VHD_MIB    size of the ext4 disk image, MiB (default 256)
#   REAL_INPUT_KEEP=1     keep the work directory (printed) instead of deleting it
#   REAL_INPUT_IMPORT_ARGS extra arguments for `drivecopy import` (e.g. "--no-fsync")
#   REAL_INPUT_SELFTEST=1 flip one byte of one imported blob file before the checks: the run must FAIL
#   TMPDIR                where the work directory is made (needs about 2 x the data + 3 x the VHD)
# Needs: bash, coreutils, findutils, qemu-img (qemu-utils), e2fsprogs (installed with apt-get if
# mkfs.ext4 is missing), jq or python3, cargo. Exits non-zero on any mismatch.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
min_bytes="${REAL_INPUT_MIN_BYTES:-1073741824}"
vhd_mib="${REAL_INPUT_VHD_MIB:-256}"
started=$(date +%s.%N)

die() { echo "real-input: FAIL: $*" >&2; exit 1; }
note() { echo "== $*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
human() { numfmt --to=iec-i --suffix=B --format='%.2f' "$1"; }

# ---------------------------------------------------------------- tools
command -v qemu-img >/dev/null || die "qemu-img is missing (apt-get install qemu-utils)"
if ! command -v mkfs.ext4 >/dev/null && ! [ -x /sbin/mkfs.ext4 ] && ! [ -x /usr/sbin/mkfs.ext4 ]; then
  note "installing e2fsprogs"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q e2fsprogs >/dev/null
fi
PATH="$PATH:/sbin:/usr/sbin"
for tool in mkfs.ext4 e2fsck debugfs md5sum cmp stat comm numfmt; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
if command -v jq >/dev/null; then
  json() { jq -r "$1" "$2"; }
elif command -v python3 >/dev/null; then
  # A tiny jq subset: '.a.b' paths only.
  json() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
expr, path = sys.argv[1], sys.argv[2]
v = json.load(open(path))
for key in [k for k in expr.split(".") if k]:
    v = v.get(key) if isinstance(v, dict) else None
print("null" if v is None else (str(v).lower() if isinstance(v, bool) else v))
EOF
  }
else
  die "need jq or python3 to read drivecopy's JSON"
fi
time_cmd=()
if [ -x /usr/bin/time ]; then time_cmd=(/usr/bin/time -v); fi

# ---------------------------------------------------------------- build
note "cargo build --release"
(cd "$repo" && cargo build --release --quiet --bin drivecopy)
bin="${CARGO_TARGET_DIR:-$repo/target}/release/drivecopy"
[ -x "$bin" ] || die "no binary at $bin"

work="$(mktemp -d "${TMPDIR:-/tmp}/real-input.XXXXXX")"
if [ "${REAL_INPUT_KEEP:-0}" = 1 ]; then
  trap 'echo "real-input: work directory kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
drive="$work/drive" store="$work/store" img="$work/img"
mkdir -p "$drive" "$store" "$img"

# ---------------------------------------------------------------- pick real files
# Regular files only (what prepare copies); symbolic links are skipped by prepare and reported.
tree_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
multiarch="/usr/lib/$(uname -m)-linux-gnu"
largest_lib="$(find "$multiarch" -maxdepth 1 -type f -printf '%s %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)"
sysroot="$(rustc --print sysroot 2>/dev/null || true)"
candidates=(/usr/share/doc "$largest_lib" /usr/share/man /usr/share/locale "$multiarch" /usr/share/i18n
  /usr/share/zoneinfo /usr/share/perl /usr/lib/python3 "${sysroot:+$sysroot/lib}")
src_paths=() src_dsts=() picked=0
for c in "${candidates[@]}"; do
  [ -n "$c" ] && [ -e "$c" ] && [ ! -L "$c" ] || continue
  if [ -f "$c" ]; then
    src_dsts+=("real/big/")
  elif [ "$c" = "$sysroot/lib" ]; then
    src_dsts+=("real/rust-lib/")
  else
    src_dsts+=("real/$(basename "$c")/")
  fi
  src_paths+=("$c")
  picked=$((picked + $(tree_bytes "$c")))
  [ "$picked" -ge "$min_bytes" ] && break
done
[ "$picked" -ge "$min_bytes" ] || die "only $picked bytes of real files found; target $min_bytes"

# ---------------------------------------------------------------- the disk image
note "ext4 in a fixed VHD (${vhd_mib} MiB) with files from /usr/share/doc"
ext_src=/usr/share/doc
mkfs.ext4 -q -F -L realinput -d "$ext_src" "$img/raw.img" "${vhd_mib}M" >/dev/null \
  || die "mkfs.ext4 -d $ext_src did not fit in ${vhd_mib} MiB (raise REAL_INPUT_VHD_MIB)"
# force_size keeps the exact size (no CHS rounding), so the data area is the raw image byte for byte.
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$img/raw.img" "$img/disk.vhd"
vhd_len=$(stat -c %s "$img/disk.vhd")
vhd_alloc=$(( $(stat -c %b "$img/disk.vhd") * $(stat -c %B "$img/disk.vhd") ))
[ $((vhd_len % 512)) -eq 0 ] || die "disk.vhd length $vhd_len is not a multiple of 512"
[ "$vhd_len" -eq $(( vhd_mib * 1048576 + 512 )) ] || die "disk.vhd is $vhd_len bytes, not ${vhd_mib} MiB + footer"
[ "$(tail -c 512 "$img/disk.vhd" | head -c 8)" = conectix ] || die "disk.vhd has no VHD footer"
[ "$vhd_alloc" -lt "$vhd_len" ] || die "disk.vhd is not sparse ($vhd_alloc of $vhd_len bytes allocated)"
cmp -n $((vhd_len - 512)) "$img/raw.img" "$img/disk.vhd" || die "disk.vhd data area differs from raw.img"

# ---------------------------------------------------------------- space
need=$(( picked * 2 + vhd_len * 3 + 268435456 ))
avail=$(( $(df -P -k "$work" | awk 'NR==2 {print $4}') * 1024 ))
[ "$avail" -ge "$need" ] || die "need about $(human "$need") free in $work, have $(human "$avail")"

# ---------------------------------------------------------------- prepare
prep_args=()
for i in "${!src_paths[@]}"; do prep_args+=(--src "${src_paths[$i]}" --dst "${src_dsts[$i]}"); done
prep_args+=(--src "$img/disk.vhd" --dst vhds/disk.vhd)
note "drivecopy prepare (${#src_paths[@]} sources + the VHD)"
for i in "${!src_paths[@]}"; do echo "   ${src_paths[$i]} -> ${src_dsts[$i]}"; done
t0=$(date +%s.%N)
rc=0
"${time_cmd[@]}" "$bin" prepare --drive "$drive" "${prep_args[@]}" --drive-id REALINPUT1 --json \
  >"$work/prepare.json" 2>"$work/prepare.err" || rc=$?
prep_secs=$(since "$t0")
[ "$rc" -eq 0 ] || { cat "$work/prepare.err" >&2; die "prepare exited $rc"; }
prep_rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/prepare.err")
manifest_blobs=$(json .blobs "$work/prepare.json")
manifest_bytes=$(json .bytes "$work/prepare.json")
manifest_hash=$(json .manifestHash "$work/prepare.json")
# Skipped source paths, NUL-separated (jq or python3).
if command -v jq >/dev/null; then
  jq -j '.skipped[] | .path + "\u0000"' "$work/prepare.json" >"$work/skipped.z"
  jq -r '.skipped[] | .reason' "$work/prepare.json" | sed -E 's/^(symbolic link|not a regular file).*/\1/; s/^.* (cannot be a file name on the drive)$/\1/' \
    | sort | uniq -c | sort -rn >"$work/skip-reasons.txt"
else
  python3 -c 'import json,sys; [sys.stdout.write(s["path"]+"\0") for s in json.load(open(sys.argv[1]))["skipped"]]' \
    "$work/prepare.json" >"$work/skipped.z"
  : >"$work/skip-reasons.txt"
fi
skipped_count=$(tr -cd '\0' <"$work/skipped.z" | wc -c)
[ "$(md5sum <"$drive/DriveManifest.xml" | cut -c1-32 | tr a-f A-F)" = "$manifest_hash" ] \
  || die "manifestHash is not the MD5 of DriveManifest.xml"

# ---------------------------------------------------------------- expected blobs
# For every source: its regular files minus what prepare skipped, relative to the source, sorted.
expected_files=0 expected_bytes=0 smallest="" largest=0
for i in "${!src_paths[@]}"; do
  s="${src_paths[$i]}"
  if [ -f "$s" ]; then
    printf '%s\0' "$(basename "$s")" >"$work/all.$i.z"
    base="$(dirname "$s")"
  else
    (cd "$s" && find . -type f -printf '%P\0' | LC_ALL=C sort -z) >"$work/all.$i.z"
    base="$s"
  fi
  { grep -z "^$(printf '%s' "$base/" | sed 's/[][\.*^$]/\\&/g')" "$work/skipped.z" || true; } \
    | sed -z "s|^$base/||" | LC_ALL=C sort -z >"$work/skip.$i.z"
  LC_ALL=C comm -z -23 "$work/all.$i.z" "$work/skip.$i.z" >"$work/exp.$i.z"
  read -r n b lo hi < <(cd "$base" && xargs -0 -r stat -c %s -- <"$work/exp.$i.z" \
    | awk 'NR==1 {lo=$1} {n++; b+=$1; if ($1<lo) lo=$1; if ($1>hi) hi=$1} END {print n+0, b+0, lo+0, hi+0}')
  expected_files=$((expected_files + n)) expected_bytes=$((expected_bytes + b))
  if [ "$n" -gt 0 ]; then
    if [ -z "$smallest" ] || [ "$lo" -lt "$smallest" ]; then smallest=$lo; fi
    [ "$hi" -le "$largest" ] || largest=$hi
  fi
  echo "$base" >"$work/base.$i"
done
[ "$manifest_blobs" -eq $((expected_files + 1)) ] \
  || die "manifest has $manifest_blobs blobs; expected $expected_files files + 1 VHD"
[ "$manifest_bytes" -eq $((expected_bytes + vhd_len)) ] \
  || die "prepare reports $manifest_bytes bytes of files; expected $expected_bytes + $vhd_len"
# The bytes the manifest describes: every Block, plus the PageRanges (all-zero pages left out).
sum_lengths() {
  grep -o "<$1 [^>]*>" "$drive/DriveManifest.xml" | sed -E 's/.* Length="([0-9]+)".*/\1/' \
    | awk '{s+=$1} END {print s+0}'
}
block_bytes=$(sum_lengths Block)
page_bytes=$(sum_lengths PageRange)
[ "$block_bytes" -eq "$expected_bytes" ] || die "manifest Blocks cover $block_bytes bytes; files hold $expected_bytes"
[ "$page_bytes" -gt 0 ] && [ "$page_bytes" -lt "$vhd_len" ] \
  || die "manifest PageRanges cover $page_bytes bytes of a $vhd_len-byte sparse VHD"
echo "   $expected_files files, $(human "$expected_bytes") ($expected_bytes bytes), smallest $smallest B," \
  "largest $(human "$largest"); $skipped_count skipped:"
sed 's/^/     /' "$work/skip-reasons.txt"

# ---------------------------------------------------------------- import
note "drivecopy import --log-level verbose"
# Drop the drive and sources from the page cache is not possible without root; reads may be warm.
t0=$(date +%s.%N)
rc=0
# shellcheck disable=SC2086
"${time_cmd[@]}" "$bin" import --drive "$drive" --dest "$store" --log-level verbose --job realinput \
  --drive-id REALINPUT1 --manifest-hash "$manifest_hash" ${REAL_INPUT_IMPORT_ARGS:-} \
  >"$work/import.jsonl" 2>"$work/import.err" || rc=$?
imp_secs=$(since "$t0")
imp_rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/import.err")
grep '"type":"result"' "$work/import.jsonl" | tail -n 1 >"$work/result.json" || true
[ -s "$work/result.json" ] || { tail -n 20 "$work/import.err" >&2; die "import printed no result line (exit $rc)"; }
[ "$rc" -eq 0 ] || { cat "$work/result.json" >&2; die "import exited $rc"; }
copy_status=$(json .driveStatus.copyStatus "$work/result.json")
succeeded=$(json .driveStatus.bytesSucceeded "$work/result.json")
blobs_failed=$(json .blobsFailed "$work/result.json")
[ "$copy_status" = Completed ] || die "copyStatus $copy_status, not Completed"
[ "$succeeded" -eq $((block_bytes + page_bytes)) ] \
  || die "bytesSucceeded $succeeded; the manifest's Blocks and PageRanges hold $((block_bytes + page_bytes))"
[ "$blobs_failed" -eq 0 ] || die "$blobs_failed blobs failed"
verbose_uri=$(json .driveStatus.verboseLogUri "$work/result.json")
verbose_file="${verbose_uri#file://}"
[ -s "$verbose_file" ] || die "no verbose log at $verbose_uri"
"$bin" log show "$verbose_file" >/dev/null || die "drivecopy log show cannot read the verbose log"
warnings=$(grep -c '"type":"warning"' "$work/import.jsonl" || true)

# ---------------------------------------------------------------- independent checks
t_checks=$(date +%s.%N)
if [ "${REAL_INPUT_SELFTEST:-0}" = 1 ]; then
  victim="$store/${src_dsts[0]}$(head -z -n 1 "$work/exp.0.z" | tr -d '\0')"
  note "SELFTEST: flipping the first byte of $victim"
  first=$(od -An -tu1 -N1 "$victim" | tr -d ' ')
  printf "\\$(printf %03o $(( (first + 1) % 256 )))" | dd of="$victim" bs=1 count=1 conv=notrunc status=none
fi
note "md5sum of every store blob file against its ORIGINAL source file"
# The local store keeps blob "c/a/b" at store/c/a/b, with "%" in a name written "%25".
for i in "${!src_paths[@]}"; do
  base=$(cat "$work/base.$i")
  dst="${src_dsts[$i]}"
  (cd "$base" && xargs -0 -r md5sum -z -- <"$work/exp.$i.z") | cut -z -c1-32 >"$work/src.$i.md5"
  sed -z 's/%/%25/g' "$work/exp.$i.z" >"$work/storepath.$i.z"
  rc=0
  (cd "$store/$dst" && xargs -0 -r md5sum -z -- <"$work/storepath.$i.z" 2>"$work/store.$i.err") \
    | cut -z -c1-32 >"$work/store.$i.md5" || rc=$?
  if [ "$rc" -ne 0 ]; then
    head -n 5 "$work/store.$i.err" >&2
    die "$(grep -c . "$work/store.$i.err") store files of ${src_paths[$i]} missing or unreadable"
  fi
  if ! cmp -s "$work/src.$i.md5" "$work/store.$i.md5"; then
    paste -z "$work/src.$i.md5" "$work/store.$i.md5" "$work/exp.$i.z" | tr '\0' '\n' \
      | awk -F'\t' '$1 != $2 {print "   differs: " $3}' | head -n 10 >&2
    die "store blob files differ from the sources of ${src_paths[$i]}"
  fi
  echo "   ${src_paths[$i]}: $(tr -cd '\0' <"$work/src.$i.md5" | wc -c) files identical"
done
store_files=$(find "$store/real" -type f -printf . | wc -c)
[ "$store_files" -eq "$expected_files" ] || die "store container real holds $store_files files, expected $expected_files"
largest_src="$largest_lib"
if [ -n "$largest_src" ] && [[ " ${src_paths[*]} " == *" $largest_src "* ]]; then
  cmp "$largest_src" "$store/real/big/$(basename "$largest_src")" || die "cmp of $largest_src"
  echo "   cmp $largest_src: identical"
fi

checks_md5_secs=$(since "$t_checks")
note "the VHD page blob"
svhd="$store/vhds/disk.vhd"
cmp "$img/disk.vhd" "$svhd" || die "store VHD differs from disk.vhd"
s_len=$(stat -c %s "$svhd")
s_alloc=$(( $(stat -c %b "$svhd") * $(stat -c %B "$svhd") ))
echo "   cmp: identical; length $s_len, allocated $s_alloc (source disk.vhd allocated $vhd_alloc)"
[ "$s_alloc" -lt "$s_len" ] || die "store VHD is not sparse ($s_alloc of $s_len bytes allocated)"
cp --sparse=always "$svhd" "$img/extracted.raw"
truncate -s -512 "$img/extracted.raw"
cmp "$img/raw.img" "$img/extracted.raw" || die "VHD data area differs from the raw ext4 image"
e2fsck -f -n "$img/extracted.raw" >"$work/fsck.txt" 2>&1 || { cat "$work/fsck.txt" >&2; die "e2fsck -n failed"; }
echo "   e2fsck -f -n: $(tail -n 1 "$work/fsck.txt")"
# Read a few files back out of the imported file system and compare them with the originals.
checked=0
while IFS= read -r -d '' f && [ "$checked" -lt 5 ]; do
  rm -f "$img/out"
  debugfs -R "dump /${f} $img/out" "$img/extracted.raw" >/dev/null 2>&1
  cmp "$ext_src/$f" "$img/out" || die "debugfs dump of /$f differs from $ext_src/$f"
  checked=$((checked + 1))
done < <(cd "$ext_src" && find . -type f -size +1k -name copyright -printf '%P\0' | LC_ALL=C sort -z)
[ "$checked" -gt 0 ] || die "no file checked inside the ext4 image"
echo "   debugfs dump of $checked files: identical to $ext_src"

# ---------------------------------------------------------------- summary
total_secs=$(since "$started")
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", b / 1048576 / s}'; }
note "real-input: PASS"
cat <<EOF
   data       ${src_paths[*]} + ext4 VHD ($(human "$vhd_len"), $(human "$vhd_alloc") allocated)
   files      $expected_files real files, $(human "$expected_bytes") (smallest $smallest B, largest $(human "$largest")), $skipped_count skipped by prepare
   manifest   $manifest_blobs blobs, $manifest_bytes bytes of files; $block_bytes in Blocks + $page_bytes in PageRanges = bytesSucceeded
   prepare    ${prep_secs}s, $(mbps "$manifest_bytes" "$prep_secs") MiB/s, peak RSS ${prep_rss:-?} KiB
   import     ${imp_secs}s, $(mbps "$succeeded" "$imp_secs") MiB/s, peak RSS ${imp_rss:-?} KiB, $warnings warnings, copyStatus $copy_status
   checks     md5sum of sources and store files ${checks_md5_secs}s
   total      ${total_secs}s wall (with checks; machine shared: timings are rough)
EOF
