"""The deploy ramdisk's /init: a POSIX sh script run by busybox (docs/install.md "Image deploy").

It reads `vaquero.deploy=<url>` from the kernel command line, fetches its instructions (key='value'
lines, see vaquero.render.deploy), picks the disk, streams the image onto it while hashing the bytes
as served, then grows the last partition and its ext4 file system, writes the NoCloud seed and the
phone-home URL, calls back and powers off. Any failure wipes the first and last MiB of the disk
(MBR, both GPT headers, read back as zeros), calls back the reason and powers off.

Wipe mode (`mode='wipe'`, decommission): no image; every fixed disk is zeroed (`erase='signatures'`:
the first and last MiB of the disk and of each of its partitions; `erase='full'`: all of it), the
zeroed ranges are read back and compared with zeros, the bytes zeroed are reported as progress
and in the success callback, then the host powers off.

Inspection mode (`vaquero.inspect=<url>` instead, discovery of a machine the SoT does not know,
docs/enrollment.md): no instructions and no disk written; /init reads the machine's facts from
/sys and /proc (DMI identity, NICs, CPUs, memory, disks), POSTs them as one JSON report to the URL
(whose last segment is the MAC the machine netbooted with), retrying, then powers off.

Nothing it reads is ever evaluated: instruction lines are split with parameter expansion, each
known key taken with a `case` and its value checked against a charset again; unknown keys are
ignored; every expansion is double-quoted. Debian's busybox 1.35 `wget -T` crashes (SIGSEGV), so
short requests run under `timeout` and the image stream under a stall watchdog instead.
"""

from __future__ import annotations

# Functions only, no command at top level: tests run them on their own (tests/deploy/test_deploy_render.py).
LIB = r"""say() { echo "vaquero-deploy: $*"; }
# Text for a JSON string: letters, digits and a few marks only (a wget error, a file name, digests).
clean() { printf '%s' "$1" | tr -c 'A-Za-z0-9 ._:/=+,()-' '_' | cut -c1-600; }
url_ok() {
  case "$1" in http://?*|https://?*) ;; *) return 1 ;; esac
  case "$1" in *[!A-Za-z0-9._~:/?=\&%@+!*-]*) return 1 ;; esac
  return 0
}
hex64_ok() { [ "${#1}" -eq 64 ] && case "$1" in *[!0-9a-f]*) false ;; *) true ;; esac; }
digits_ok() { [ -n "$1" ] && [ "${#1}" -le 19 ] && case "$1" in *[!0-9]*) false ;; *) true ;; esac; }

# -- inspection mode: what a machine the SoT does not know reports about itself (vaquero.inspect.report) --
# Facts come from $SYS and $PROC (tests point them at a fake tree). Everything read is vendor or
# kernel input: numbers and names are checked against their charset and dropped when they do not
# fit; free text goes through jstr. The report must parse, whatever the firmware says.
readf() { [ -r "$1" ] && head -c 512 "$1" 2>/dev/null; }
jstr() { # TEXT: a JSON string of its printable ASCII (trimmed, at most 128 characters), or null
  v=$(printf '%s' "$1" | tr -cd ' -~' | sed 's/^ *//; s/ *$//' | cut -c1-128)
  if [ -z "$v" ]; then echo null; return; fi
  printf '"%s"' "$(printf '%s' "$v" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}
mac_ok() { case "$1" in [0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) true ;; *) false ;; esac; }
kname_ok() { [ -n "$1" ] && [ "${#1}" -le 32 ] && case "$1" in [A-Za-z0-9]*) case "$1" in *[!A-Za-z0-9._:-]*) false ;; *) true ;; esac ;; *) false ;; esac; }
boot_mac_of() { # URL: the MAC the agent put last in the inspection URL (aa-bb-..), as aa:bb:..; empty if none
  m=$(printf '%s' "${1##*/}" | tr 'A-F-' 'a-f:')
  mac_ok "$m" && echo "$m"
}
memory_mib() { # online memory blocks (what the machine has), else MemTotal (what the kernel kept)
  bs=$(readf "$SYS/devices/system/memory/block_size_bytes" | tr -d '\n')
  n=0
  case "$bs" in ""|*[!0-9a-fA-F]*) bs="" ;; esac
  if [ -n "$bs" ] && [ "${#bs}" -le 12 ]; then
    for b in "$SYS"/devices/system/memory/memory[0-9]*; do
      [ "$(readf "$b/online" | tr -d '\n')" = 1 ] && n=$((n + 1))
    done
  fi
  if [ "$n" -gt 0 ]; then echo $((n * 0x$bs / 1048576)); return; fi
  kb=$(awk '/^MemTotal:/ {print $2; exit}' "$PROC/meminfo" 2>/dev/null)
  digits_ok "$kb" && [ "${#kb}" -le 15 ] && echo $((kb / 1024)) || echo 0
}
inspect_report() { # BOOT_MAC: the JSON report on stdout
  SYS="${SYS:-/sys}"; PROC="${PROC:-/proc}"
  nics=""; seen=" "; count=0
  for p in "$SYS"/class/net/*; do
    n="${p##*/}"
    [ "$n" = lo ] && continue
    [ -e "$p/device" ] || continue  # bridges, bonds, veths and tunnels have no device behind them
    kname_ok "$n" || continue
    a=$(readf "$p/address" | tr -d '\n')
    mac_ok "$a" && [ "$a" != 00:00:00:00:00:00 ] || continue
    case "$seen" in *" $a "*) continue ;; esac
    [ "$count" -lt 64 ] || break
    seen="$seen$a "; count=$((count + 1))
    nics="$nics,{\"name\":\"$n\",\"mac\":\"$a\"}"
  done
  uuid=$(readf "$SYS/class/dmi/id/product_uuid" | tr -d '\n')
  if printf '%s' "$uuid" | grep -Eqx '[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}'; then uuid="\"$uuid\""; else uuid=null; fi
  cpus=$(grep -c '^processor' "$PROC/cpuinfo" 2>/dev/null)
  digits_ok "$cpus" && [ "${#cpus}" -le 5 ] && [ "$cpus" -ge 1 ] || cpus=1
  cpu=$(grep -m1 '^model name' "$PROC/cpuinfo" 2>/dev/null | cut -d: -f2-)
  disks=""; count=0
  for p in "$SYS"/block/*; do
    d="${p##*/}"
    case "$d" in loop*|ram*|zram*|sr*|fd*|nbd*) continue ;; esac
    kname_ok "$d" || continue
    sz=$(readf "$p/size" | tr -d '\n')
    digits_ok "$sz" && [ "${#sz}" -le 15 ] || continue
    [ "$count" -lt 64 ] || break
    count=$((count + 1))
    serial=$(readf "$p/serial"); [ -n "$serial" ] || serial=$(readf "$p/device/serial")
    case "$(readf "$p/queue/rotational" | tr -d '\n')" in 0) rot=false ;; 1) rot=true ;; *) rot=null ;; esac
    [ "$(readf "$p/removable" | tr -d '\n')" = 1 ] && rem=true || rem=false
    model=$(jstr "$(readf "$p/device/model")"); serial=$(jstr "$serial")
    disks="$disks,{\"name\":\"$d\",\"size_bytes\":$((sz * 512)),\"model\":$model,\"serial\":$serial,\"rotational\":$rot,\"removable\":$rem}"
  done
  printf '{"boot_mac":"%s","nics":[%s],"uuid":%s,"serial":%s,"vendor":%s,"product":%s,"cpu_model":%s,"cpus":%s,"memory_mib":%s,"disks":[%s]}\n' \
    "$1" "${nics#,}" "$uuid" "$(jstr "$(readf "$SYS/class/dmi/id/product_serial")")" "$(jstr "$(readf "$SYS/class/dmi/id/sys_vendor")")" \
    "$(jstr "$(readf "$SYS/class/dmi/id/product_name")")" "$(jstr "$cpu")" "$cpus" "$(memory_mib)" "${disks#,}"
}

ZEROED=0
zero() { # DEV OFFSET LENGTH (bytes, multiples of 512): write zeros there, add LENGTH to ZEROED
  [ "$3" -gt 0 ] || return 0
  if [ $(($2 % 1048576)) -eq 0 ] && [ "$3" -ge 1048576 ]; then
    mib=$(($3 / 1048576))
    dd if=/dev/zero of="$1" bs=1048576 seek=$(($2 / 1048576)) count="$mib" conv=notrunc,fsync 2>/dev/null || return 1
    rest=$((($3 - mib * 1048576) / 512))
    if [ "$rest" -gt 0 ]; then
      dd if=/dev/zero of="$1" bs=512 seek=$((($2 + mib * 1048576) / 512)) count="$rest" conv=notrunc,fsync 2>/dev/null || return 1
    fi
  else
    dd if=/dev/zero of="$1" bs=512 seek=$(($2 / 512)) count=$(($3 / 512)) conv=notrunc,fsync 2>/dev/null || return 1
  fi
  ZEROED=$((ZEROED + $3))
}
is_zero() { # DEV OFFSET LENGTH: true when the range reads back as zeros (O_DIRECT on a block device)
  direct=""; [ -b "$1" ] && direct="iflag=direct"
  left=$(dd if="$1" bs=512 skip=$(($2 / 512)) count=$(($3 / 512)) $direct 2>/dev/null | tr -d '\000' | wc -c)
  [ "$left" = 0 ]
}
ends() { # DEV OFFSET LENGTH: the first and last MiB of the range (all of it when it is smaller than 2 MiB)
  if [ "$3" -le 2097152 ]; then echo "$2 $3"; return; fi
  echo "$2 1048576"
  echo "$(($2 + $3 - 1048576)) 1048576"
}
wipe_disk() { # DEV SIZE ERASE PARTS: zero and read back; PARTS: "start:sectors ..." from sysfs
  ranges="${WIPE_RANGES:-/run/wipe.ranges}"; : > "$ranges"
  if [ "$3" = full ]; then
    echo "0 $2" >> "$ranges"
  else
    ends "$1" 0 "$2" >> "$ranges"
    for p in $4; do
      ends "$1" $((${p%%:*} * 512)) $((${p#*:} * 512)) >> "$ranges"
    done
  fi
  while read -r off len; do zero "$1" "$off" "$len" || return 1; done < "$ranges"
  [ -b "$1" ] && blockdev --flushbufs "$1"
  while read -r off len; do is_zero "$1" "$off" "$len" || return 2; done < "$ranges"
  return 0
}

read_instructions() { # FILE: sets the variables below from key='value' lines; calls fail on anything amiss
  FORMAT=""; HOST=""; IMAGE_URL=""; IMAGE_SHA256=""; COMPRESSION=""; PROGRESS_URL=""; NEW_CALLBACK=""
  NOCLOUD_URL=""; PHONE_HOME_URL=""; DISK_PATH=""; DISK_BY_ID=""; MIN_BYTES=""; END=""; MODE="deploy"; ERASE=""
  while IFS= read -r line; do
    key="${line%%=*}"
    val="${line#*=}"
    case "$val" in \'*\') val="${val#\'}"; val="${val%\'}" ;; *) continue ;; esac
    case "$val" in *\'*) fail "instruction $key holds a quote" ;; esac
    case "$key" in
      format) FORMAT="$val" ;;
      mode) MODE="$val" ;;
      erase) ERASE="$val" ;;
      host) HOST="$val" ;;
      image_url) IMAGE_URL="$val" ;;
      image_sha256) IMAGE_SHA256="$val" ;;
      image_compression) COMPRESSION="$val" ;;
      progress_url) PROGRESS_URL="$val" ;;
      callback_url) NEW_CALLBACK="$val" ;;
      nocloud_url) NOCLOUD_URL="$val" ;;
      phone_home_url) PHONE_HOME_URL="$val" ;;
      disk_path) DISK_PATH="$val" ;;
      disk_by_id) DISK_BY_ID="$val" ;;
      disk_min_bytes) MIN_BYTES="$val" ;;
      end) END="$val" ;;
    esac
  done < "$1"
  [ "$FORMAT" = "vaquero-deploy/1" ] && [ "$END" = "1" ] || fail "deploy instructions incomplete or of another format"
  url_ok "$NEW_CALLBACK" && CALLBACK_URL="$NEW_CALLBACK"
  case "$MODE" in
    deploy) ;;
    wipe)
      for u in "$PROGRESS_URL" "$CALLBACK_URL"; do
        url_ok "$u" || fail "wipe instructions: a URL is missing or holds characters a URL may not"
      done
      case "$HOST" in ""|*[!a-z0-9-]*) fail "wipe instructions: bad host name" ;; esac
      case "$ERASE" in signatures|full) ;; *) fail "wipe instructions: erase is neither signatures nor full" ;; esac
      say "host $HOST: wipe (erase $ERASE)"
      return 0 ;;
    *) fail "instructions: unknown mode" ;;
  esac
  for u in "$IMAGE_URL" "$PROGRESS_URL" "$CALLBACK_URL" "$NOCLOUD_URL" "$PHONE_HOME_URL"; do
    url_ok "$u" || fail "deploy instructions: a URL is missing or holds characters a URL may not"
  done
  case "$HOST" in ""|*[!a-z0-9-]*) fail "deploy instructions: bad host name" ;; esac
  hex64_ok "$IMAGE_SHA256" || fail "deploy instructions: image_sha256 is not 64 hex digits"
  EXPECTED="$IMAGE_SHA256"
  case "$COMPRESSION" in none) DECOMP="cat" ;; gzip) DECOMP="pigz -dc" ;; xz) DECOMP="unxz -c" ;; *) fail "deploy instructions: unknown compression" ;; esac
  digits_ok "$MIN_BYTES" || fail "deploy instructions: disk_min_bytes is not a number"
  case "$DISK_PATH" in
    "") ;;
    /dev/*[!a-z0-9/_-]*|*//*|*/) fail "deploy instructions: bad disk_path" ;;
    /dev/?*) ;;
    *) fail "deploy instructions: bad disk_path" ;;
  esac
  case "$DISK_BY_ID" in *[!A-Za-z0-9._:+-]*|.*) fail "deploy instructions: bad disk_by_id" ;; esac
  say "host $HOST: image $IMAGE_SHA256 ($COMPRESSION)"
}
"""

MAIN = r"""/bin/busybox --install -s /bin
export PATH=/usr/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /run /tmp /mnt
ln -sf /proc/mounts /etc/mtab

post() { # URL BODY: a small JSON POST to the agent, bounded in time
  timeout 30 wget -q -O /dev/null --header "Content-Type: application/json" --post-data "$2" "$1"
}

DEPLOY=""; INSPECT=""
set -f  # the words of the command line are not file patterns (the URL holds '?')
for w in $(cat /proc/cmdline); do
  case "$w" in vaquero.deploy=*) DEPLOY="${w#vaquero.deploy=}" ;; vaquero.inspect=*) INSPECT="${w#vaquero.inspect=}" ;; esac
done
set +f
BOOT_MAC=""; [ -n "$INSPECT" ] && BOOT_MAC="$(boot_mac_of "$INSPECT")"
# Before the instructions arrive, the callback URL is the deploy URL's sibling (same host and token).
CALLBACK_URL="${DEPLOY%%/v1/boot/deploy/*}/v1/boot/callback/${DEPLOY#*/v1/boot/deploy/}"
DEV=""; STAGE="start"; EXPECTED=""; ACTUAL=""

finish() { sync; say "powering off"; poweroff -f; sleep 30; }

wipe() {
  [ -b "$DEV" ] || return 1
  size=$(blockdev --getsize64 "$DEV") || return 1
  sectors=$((size / 512))
  n=2048; [ "$sectors" -lt 4096 ] && n=$((sectors / 2))
  dd if=/dev/zero of="$DEV" bs=512 count="$n" conv=fsync 2>/dev/null || return 1
  dd if=/dev/zero of="$DEV" bs=512 count="$n" seek=$((sectors - n)) conv=fsync 2>/dev/null || return 1
  blockdev --flushbufs "$DEV"
  zero=$(dd if=/dev/zero bs=512 count="$n" 2>/dev/null | sha256sum | cut -d' ' -f1)
  head=$(dd if="$DEV" bs=512 count="$n" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
  tail=$(dd if="$DEV" bs=512 count="$n" skip=$((sectors - n)) iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
  [ "$head" = "$zero" ] && [ "$tail" = "$zero" ]
}

fail() {
  reason="$(clean "$*")"
  say "FAILED at $STAGE: $reason"
  wiped=false
  if [ -n "$DEV" ]; then
    grep -q " /mnt " /proc/mounts && umount /mnt
    if wipe; then wiped=true; say "wiped the first and last MiB of $DEV (read back as zeros)"; else say "could not wipe $DEV"; fi
  fi
  body="{\"result\":\"failure\",\"stage\":\"$STAGE\",\"reason\":\"$reason\",\"wiped\":$wiped"
  [ -n "$DEV" ] && body="$body,\"disk\":\"${DEV#/dev/}\""
  [ -n "$EXPECTED" ] && body="$body,\"expected_sha256\":\"$EXPECTED\""
  [ -n "$ACTUAL" ] && body="$body,\"actual_sha256\":\"$ACTUAL\""
  body="$body}"
  if url_ok "$CALLBACK_URL"; then
    for i in 1 2 3 4 5; do post "$CALLBACK_URL" "$body" && break; sleep "$i"; done
  fi
  finish
}

for m in $(cat /etc/modules); do modprobe "$m" 2>/dev/null; done
ip link set lo up
IF=""
for i in $(seq 1 50); do
  for n in /sys/class/net/*; do
    n="${n##*/}"
    [ "$n" != lo ] || continue
    # An inspection asks for a lease on the NIC the machine netbooted with, as the agent saw it.
    [ -z "$BOOT_MAC" ] || [ "$(cat "/sys/class/net/$n/address")" = "$BOOT_MAC" ] || continue
    IF="$n" && break
  done
  [ -n "$IF" ] && break
  sleep 0.2
done
[ -z "$IF" ] && for n in /sys/class/net/*; do n="${n##*/}"; [ "$n" != lo ] && IF="$n" && break; done
say "interface ${IF:-none}"
STAGE="network"
[ -n "$IF" ] || fail "no network interface"
udhcpc -i "$IF" -f -q -n -t 20 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1 || fail "no DHCP lease on $IF"

if [ -n "$INSPECT" ]; then
  # Inspection: report the machine to the agent and power off; no disk is touched.
  STAGE="inspect"
  url_ok "$INSPECT" && [ -n "$BOOT_MAC" ] || fail "the vaquero.inspect URL is unusable or does not end in the boot MAC"
  inspect_report "$BOOT_MAC" > /run/inspect.json
  say "inspection report of $BOOT_MAC: $(wc -c < /run/inspect.json) bytes"
  ok=false
  for i in 1 2 3 4 5 6; do
    timeout 30 wget -q -O /run/inspect.out --header "Content-Type: application/json" --post-file /run/inspect.json "$INSPECT" && ok=true && break
    sleep "$i"
  done
  $ok && say "inspection report taken" || say "inspection report not taken"
  finish
fi
url_ok "$DEPLOY" || fail "no usable vaquero.deploy URL on the kernel command line"

STAGE="instructions"
timeout 60 wget -q -O /run/deploy.txt "$DEPLOY" || fail "cannot fetch the deploy instructions"
read_instructions /run/deploy.txt
NAME=""

progress() { # PHASE [BYTES [TOTAL]]: best effort, never fatal
  body="{\"phase\":\"$1\""
  [ -n "$2" ] && body="$body,\"bytes\":$2"
  [ -n "$3" ] && body="$body,\"total\":$3"
  [ -n "$NAME" ] && body="$body,\"disk\":\"$NAME\""
  post "$PROGRESS_URL" "$body}" 2>/dev/null || say "progress report $1 not taken"
}

# /dev/disk/by-id needs udev, which the ramdisk has not: the names udev gives from sysfs are
# rebuilt here for the kinds that carry them there (virtio serial, WWN, NVMe EUI/NGUID and model_serial).
disk_ids() { # NAME: the by-id names of /sys/block/NAME, one per line
  b="/sys/block/$1"
  [ -s "$b/serial" ] && echo "virtio-$(cat "$b/serial")"
  for f in "$b/wwid" "$b/device/wwid"; do
    [ -s "$f" ] || continue
    w="$(cat "$f")"
    case "$w" in naa.*) echo "wwn-0x${w#naa.}" ;; eui.*) echo "nvme-$w" ;; *) ;; esac
  done
  if [ -s "$b/device/model" ] && [ -s "$b/device/serial" ]; then
    echo "nvme-$(tr -s ' ' '_' < "$b/device/model" | sed 's/_*$//')_$(tr -d ' ' < "$b/device/serial")"
  fi
}

candidate() { # NAME: a whole disk that may be written (not removable, loop, RAM, CD, device-mapper, md)
  case "$1" in loop*|ram*|sr*|dm-*|md*|zram*|nbd*|fd*) return 1 ;; esac
  [ "$(cat "/sys/block/$1/removable" 2>/dev/null)" = "0" ] || return 1
  [ "$(cat "/sys/block/$1/ro" 2>/dev/null)" = "0" ] || return 1
  size=$(( $(cat "/sys/block/$1/size") * 512 ))
  [ "$size" -gt 0 ] && [ "$size" -ge "$MIN_BYTES" ]
}

fixed() { # NAME: a whole disk that is not removable, loop, RAM, CD, device-mapper or md
  case "$1" in loop*|ram*|sr*|dm-*|md*|zram*|nbd*|fd*) return 1 ;; esac
  [ "$(cat "/sys/block/$1/removable" 2>/dev/null)" = "0" ] && [ "$(cat "/sys/block/$1/ro" 2>/dev/null)" = "0" ]
}

if [ "$MODE" = wipe ]; then
  STAGE="wipe"
  DISKS=""
  for i in $(seq 1 50); do
    for d in $(ls /sys/block); do fixed "$d" && [ "$(cat "/sys/block/$d/size")" -gt 0 ] && DISKS="$DISKS $d"; done
    [ -n "$DISKS" ] && break
    sleep 0.2
  done
  [ -n "$DISKS" ] || fail "no disk found to wipe (no fixed, writable disk)"
  LIST=""
  for NAME in $DISKS; do
    case "$NAME" in *[!a-z0-9_-]*) fail "disk name $NAME is not a kernel disk name" ;; esac
    DEV="/dev/$NAME"
    SIZE=$(blockdev --getsize64 "$DEV") || fail "cannot read the size of $DEV"
    PARTS=""
    for p in /sys/block/"$NAME"/"$NAME"*; do
      [ -f "$p/start" ] && PARTS="$PARTS $(cat "$p/start"):$(cat "$p/size")"
    done
    say "wiping $DEV ($SIZE bytes, erase $ERASE, partitions:${PARTS:- none})"
    progress wiping "$ZEROED" "$SIZE"
    wipe_disk "$DEV" "$SIZE" "$ERASE" "$PARTS"; rc=$?
    [ "$rc" = 2 ] && fail "$DEV does not read back as zeros after the wipe"
    [ "$rc" = 0 ] || fail "writing zeros to $DEV failed"
    LIST="$LIST,\"$NAME\""
  done
  DEV=""
  say "wiped ($ERASE):$DISKS, $ZEROED bytes zeroed and read back as zeros"
  NAME=""
  progress wiped "$ZEROED"
  STAGE="callback"
  body="{\"result\":\"success\",\"mode\":\"wipe\",\"erase\":\"$ERASE\",\"bytes_zeroed\":$ZEROED,\"disks\":[${LIST#,}]}"
  ok=false
  for i in 1 2 3 4 5; do post "$CALLBACK_URL" "$body" && ok=true && break; sleep "$i"; done
  $ok && say "callback done" || say "callback not taken"
  finish
fi

STAGE="disk"
NAME=""
for i in $(seq 1 50); do
  if [ -n "$DISK_PATH" ]; then
    [ -b "$DISK_PATH" ] && NAME="$(basename "$(readlink -f "$DISK_PATH")")"
  else
    for d in $(ls /sys/block); do
      if [ -n "$DISK_BY_ID" ]; then
        disk_ids "$d" | grep -qxF "$DISK_BY_ID" && NAME="$d" && break
      else
        candidate "$d" && NAME="$d" && break
      fi
    done
  fi
  [ -n "$NAME" ] && break
  sleep 0.2
done
[ -n "$NAME" ] && [ -d "/sys/block/$NAME" ] || fail "no disk matches (path '$DISK_PATH', by_id '$DISK_BY_ID', at least $MIN_BYTES bytes)"
case "$NAME" in *[!a-z0-9_-]*) fail "disk name $NAME is not a kernel disk name" ;; esac
DEV="/dev/$NAME"
DISK_BYTES=$(blockdev --getsize64 "$DEV") || fail "cannot read the size of $DEV"
say "disk $DEV ($DISK_BYTES bytes)"
progress disk 0 "$DISK_BYTES"

written() { echo $(( $(awk '{print $7}' "/sys/block/$NAME/stat") * 512 )); }

STAGE="write"
# One side stream, never the whole image in memory: the digest of the bytes as served (for a
# compressed image the smaller stream). GNU tee moves 8 KiB per read where busybox's moves 1 KiB;
# GNU dd writes whole 4 MiB blocks (fullblock: a pipe hands over at most 64 KiB at a time), syncs
# once at the end and prints the count of bytes it wrote. Under emulation every read, write and
# task switch is dear: busybox tee plus a second tee into `wc -c` on the raw stream made the
# Debian image take over 10 minutes (docs/install.md "Image deploy").
mkfifo /run/image.fifo
sha256sum < /run/image.fifo > /run/image.sha256 &
SUMPID=$!
BASE=$(written)
(
  { wget -q -O - "$IMAGE_URL" 2>/run/wget.err; echo $? > /run/wget.rc; } | gnu-tee /run/image.fifo |
    { $DECOMP 2>/run/decomp.err; echo $? > /run/decomp.rc; } |
    { gnu-dd of="$DEV" bs=4M iflag=fullblock conv=fsync 2>/run/dd.err; echo $? > /run/dd.rc; }
) &
PIPE=$!
# Looks every second (the deploy goes on as soon as the stream ends), reports every third.
LAST=-1; STILL=0; TICK=0
while kill -0 "$PIPE" 2>/dev/null; do
  sleep 1
  TICK=$((TICK + 1))
  [ $((TICK % 3)) = 0 ] || continue
  now=$(( $(written) - BASE ))
  progress writing "$now" "$DISK_BYTES"
  if [ "$now" = "$LAST" ]; then STILL=$((STILL + 3)); else STILL=0; LAST="$now"; fi
  if [ "$STILL" -ge 300 ]; then echo "no byte written for 300 s" > /run/wget.err; killall wget 2>/dev/null; fi
done
wait "$PIPE"
wait "$SUMPID"
ACTUAL="$(cut -d' ' -f1 /run/image.sha256)"
W=$(cat /run/wget.rc 2>/dev/null); Z=$(cat /run/decomp.rc 2>/dev/null); D=$(cat /run/dd.rc 2>/dev/null)
# The stage that failed on its own (exit below 128) is the cause; the others died of SIGPIPE after it.
own() { [ -n "$1" ] && [ "$1" != 0 ] && [ "$1" -lt 128 ]; }
own "$W" && fail "image download failed (wget exit $W): $(head -c 300 /run/wget.err)"
own "$Z" && fail "image decompression ($COMPRESSION) failed: $(head -c 300 /run/decomp.err)"
own "$D" && fail "writing $DEV failed: $(tail -c 300 /run/dd.err)"
[ "$W$Z$D" = "000" ] || fail "the image stream stopped (wget $W, decompress $Z, dd $D): $(head -c 300 /run/wget.err)"
[ "$ACTUAL" = "$EXPECTED" ] || fail "image sha256 mismatch: expected $EXPECTED, got $ACTUAL"
BYTES=$(sed -n 's/^\([0-9][0-9]*\) bytes .*copied.*/\1/p' /run/dd.err | tail -n 1)
digits_ok "$BYTES" || fail "no count of the bytes written"
say "wrote $BYTES bytes, sha256 $ACTUAL as expected"
progress written "$BYTES" "$DISK_BYTES"

STAGE="resize"
blockdev --rereadpt "$DEV" || fail "the kernel cannot re-read the partition table of $DEV"
sleep 1
LAST_PART=""; LAST_START=-1
for p in /sys/block/"$NAME"/"$NAME"*; do
  [ -f "$p/start" ] || continue
  s=$(cat "$p/start")
  [ "$s" -gt "$LAST_START" ] && LAST_START="$s" && LAST_PART="${p##*/}"
done
[ -n "$LAST_PART" ] || fail "the image has no partition table: nothing to grow or seed"
PARTNO=$(cat "/sys/block/$NAME/$LAST_PART/partition")
PART="/dev/$LAST_PART"
for i in $(seq 1 25); do [ -b "$PART" ] && break; sleep 0.2; done
if sfdisk -d "$DEV" 2>/dev/null | grep -q '^label: gpt'; then
  sfdisk --relocate gpt-bak-std "$DEV" >/run/sfdisk.out 2>&1 || fail "sfdisk cannot move the backup GPT header: $(tail -c 300 /run/sfdisk.out)"
fi
echo ',+' | sfdisk --no-reread --no-tell-kernel -N "$PARTNO" "$DEV" >/run/sfdisk.out 2>&1 ||
  fail "sfdisk cannot grow partition $PARTNO: $(tail -c 300 /run/sfdisk.out)"
blockdev --rereadpt "$DEV" || fail "the kernel cannot re-read the grown partition table"
sleep 1
for i in $(seq 1 25); do [ -b "$PART" ] && break; sleep 0.2; done
MAGIC=$(dd if="$PART" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ "$MAGIC" = "53ef" ] || fail "the last partition $PART holds no ext2/3/4 file system: cannot write the seed"
# resize2fs asks for a full check itself when the file system needs one (marked with errors, or
# mounted since its last check); the bytes were just proven to be the SoT image's, so a check of a
# file system the image builder left clean would only re-read what the digest proved (seconds of
# the deploy under emulation). Any other failure of resize2fs fails the deploy.
if ! resize2fs "$PART" >/run/resize.out 2>&1; then
  grep -q "e2fsck -f" /run/resize.out || fail "resize2fs $PART failed: $(tail -c 300 /run/resize.out)"
  say "the file system on $PART needs a check first"
  e2fsck -f -p "$PART" >/run/fsck.out 2>&1; rc=$?
  [ "$rc" -le 1 ] || fail "e2fsck $PART exit $rc: $(tail -c 300 /run/fsck.out)"
  resize2fs "$PART" >/run/resize.out 2>&1 || fail "resize2fs $PART failed: $(tail -c 300 /run/resize.out)"
fi
say "partition $PARTNO ($PART) and its file system grown to the end of $DEV"
progress resized "$BYTES" "$DISK_BYTES"

STAGE="seed"
mount -t ext4 "$PART" /mnt || fail "cannot mount $PART"
SEED=/mnt/var/lib/cloud/seed/nocloud
mkdir -p "$SEED" /mnt/etc/vaquero || fail "cannot make the seed folders"
umask 077
for f in user-data meta-data; do
  timeout 60 wget -q -O "$SEED/$f" "$NOCLOUD_URL$f" || fail "cannot fetch the NoCloud $f"
done
for f in network-config vendor-data; do
  timeout 60 wget -q -O "$SEED/$f" "$NOCLOUD_URL$f" 2>/dev/null || rm -f "$SEED/$f"
done
printf '%s\n' "$PHONE_HOME_URL" > /mnt/etc/vaquero/phone-home.url || fail "cannot write the phone-home URL"
sync
umount /mnt || fail "cannot unmount $PART"
progress seeded "$BYTES" "$DISK_BYTES"

STAGE="callback"
body="{\"result\":\"success\",\"sha256\":\"$ACTUAL\",\"bytes\":$BYTES,\"disk\":\"$NAME\",\"disk_bytes\":$DISK_BYTES,\"partition\":\"$LAST_PART\"}"
ok=false
for i in 1 2 3 4 5; do post "$CALLBACK_URL" "$body" && ok=true && break; sleep "$i"; done
$ok && say "callback done" || say "callback not taken"
finish
"""

INIT = "#!/bin/sh\n" + LIB + MAIN
