#!/usr/bin/env bash
# Prepares real per-architecture JRE root filesystems (Debian's openjdk-17-jre-headless
# plus the runtime closure `java -version` needs) for linux/amd64, linux/arm64 and
# linux/mips64le, cached outside the checkout:
#
#   ${ARCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archgate}/jre/<debian-arch>/
#     debs/    the downloaded .deb files
#     root/    the unpacked filesystem (never modified after it is moved into place)
#     stamp    written last: package names and versions; present and matching => "cached"
#     apt/     private apt configuration, lists and cache for that architecture
#
# The host's dpkg architecture list and apt state are never touched: every apt call
# runs with APT_CONFIG pointing at apt/apt.conf (APT::Architecture "<arch>", empty
# dpkg status, own state/cache/sources). The sources reuse the host's Debian mirror.
#
# Usage:
#   scripts/fetch-jre.sh [--set jre|jni|newer|shell] [--arch amd64,arm64,mips64el] [--check] [--refresh]
#   scripts/fetch-jre.sh [--set jre|jni|newer|shell] --print-root ARCH
#
#   --set SET          jre (default): the JRE above; jni: Debian's JNI libraries and their jars
#                      (lz4-java, snappy-java, JNA) with the shared libraries they need;
#                      newer: the next Debian release's (trixie) libstdc++6, which needs a newer
#                      GLIBC_ than this release's libc6 defines, and its libjsoncpp26, which needs
#                      a newer GLIBCXX_ than this release's libstdc++6 defines (from the host's mirror);
#                      shell: dash and coreutils with their libraries (for RUN steps)
#   --arch LIST        comma-separated; Debian (mips64el) or OCI (mips64le) names; default all three
#   --check            fetch if needed, then run `java -version` in each root under bubblewrap + QEMU
#   --refresh          re-read the package lists; re-fetch only an architecture whose versions changed
#   --print-root ARCH  print the root path (exit 1 if that root is not ready yet)
#
# Environment: ARCHGATE_CACHE (cache base), ARCHGATE_DEBIAN_MIRROR (override the mirror URL),
# ARCHGATE_DEBIAN_CODENAME (override the release; default VERSION_CODENAME of /etc/os-release).
set -euo pipefail

JRE_PACKAGES=(openjdk-17-jre-headless libc6 libgcc-s1 libstdc++6 zlib1g)
# Real per-architecture JNI builds (FACTS.md): liblz4-java.so, libsnappyjava.so, libjnidispatch.so,
# the libraries they are linked against, and the (architecture-independent) jars that load them.
JNI_PACKAGES=(liblz4-jni liblz4-1 libxxhash0 liblz4-java libsnappy-jni libsnappy1v5 libsnappy-java
  libjna-jni libffi8 libjna-java)
# The next release's C++ library: real code needing GLIBC_2.38, which bookworm's libc6 (2.36) lacks;
# and a C++ library built by its GCC 14, needing GLIBCXX_3.4.32 (bookworm's libstdc++6 has up to 3.4.30).
NEWER_PACKAGES=(libstdc++6 libjsoncpp26)
NEWER_CODENAME=trixie
# A POSIX shell and coreutils per architecture (dash, uname, id, rm, ...), for `RUN` steps.
# Debian's dash makes /bin/sh in its maintainer scripts, which dpkg-deb -x does not run:
# a base built from this root adds the `bin/sh -> dash` link itself.
SHELL_PACKAGES=(dash coreutils libc6 libacl1 libattr1 libgmp10 libselinux1 libpcre2-8-0)
SET=jre
PACKAGES=("${JRE_PACKAGES[@]}")
ALL_ARCHES=(amd64 arm64 mips64el)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
STAMP_FORMAT="# archgate fetch-jre stamp v1"

prog=fetch-jre
die() { echo "$prog: $*" >&2; exit 1; }
usage() { sed -n '16,28p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cache_base="${ARCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archgate}"

# ---------- architecture tables ----------
deb_arch() { # normalise a user-given name to the Debian architecture
  case "$1" in
    amd64 | x86_64) echo amd64 ;;
    arm64 | aarch64) echo arm64 ;;
    mips64el | mips64le) echo mips64el ;;
    *) return 1 ;;
  esac
}
qemu_name() { # Debian arch -> QEMU user-mode target
  case "$1" in amd64) echo x86_64 ;; arm64) echo aarch64 ;; mips64el) echo mips64el ;; esac
}
expected_os_arch() { # Debian arch -> the JVM's os.arch
  case "$1" in amd64) echo amd64 ;; arm64) echo aarch64 ;; mips64el) echo mips64el ;; esac
}
arch_dir() { echo "$cache_base/$SET/$1"; }
java_rel() { echo "usr/lib/jvm/java-17-openjdk-$1/bin/java"; }
# The file whose presence says a root of this set is complete.
sentinel_rel() {
  case "$SET" in
    jre) java_rel "$1" ;;
    jni) echo "usr/share/java/lz4-java.jar" ;;
    shell) echo "bin/dash" ;;
    newer) case "$1" in
        amd64) echo usr/lib/x86_64-linux-gnu/libstdc++.so.6 ;;
        arm64) echo usr/lib/aarch64-linux-gnu/libstdc++.so.6 ;;
        mips64el) echo usr/lib/mips64el-linux-gnuabi64/libstdc++.so.6 ;;
      esac ;;
  esac
}

# ---------- timing ----------
now_us() { local t=$EPOCHREALTIME; t=${t/[.,]/}; echo "$((10#$t))"; }
secs() { # microseconds -> "1.23 s"
  local us=$1
  printf '%d.%02d s' "$((us / 1000000))" "$(((us % 1000000) / 10000))"
}

# ---------- cleanup of temporary directories ----------
TMP_PATHS=()
cleanup() {
  local p
  for p in "${TMP_PATHS[@]+"${TMP_PATHS[@]}"}"; do
    [ -e "$p" ] && rm -rf -- "$p"
  done
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------- host tools ----------
ensure_host_packages() { # ensure_host_packages CMD:PKG ...
  local need=() pair sudo=""
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ "${#need[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing host packages ${need[*]}: install them (apt-get install -y ${need[*]})"
    sudo="sudo"
  fi
  echo "$prog: installing host packages: ${need[*]}" >&2
  local log
  log=$(mktemp)
  TMP_PATHS+=("$log")
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log" 2>&1; then
    $sudo apt-get update -qq >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$log" 2>&1 ||
      { tail -n 5 "$log" >&2; die "apt-get install ${need[*]} failed on the host: is the Debian mirror reachable?"; }
  fi
}

# ---------- Debian release and mirror of the host ----------
codename=""
MIRROR_LINES=() # "URI SUITE" pairs for the private sources list

host_source_entries() { # prints "URI SUITE" for every enabled deb entry of the host
  local f
  if [ -f /etc/apt/sources.list ]; then
    # one-line format: deb [options] URI SUITE COMPONENTS...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' /etc/apt/sources.list |
      awk '$1 == "deb" { print $2, $3 }'
  fi
  for f in /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: paragraphs separated by blank lines; Types, URIs, Suites, Enabled
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled !~ /^[Nn]o/)
          for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) print uris[u], suites[s];
        types = ""; enabled = ""; nu = 0; ns = 0;
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = $1; sub(/:$/, "", key); $1 = ""; sub(/^ +/, "");
        if (key == "Types") types = $0;
        else if (key == "Enabled") enabled = $0;
        else if (key == "URIs") nu = split($0, uris, " ");
        else if (key == "Suites") ns = split($0, suites, " ");
      }
      END { flush() }' "$f"
  done
}

detect_release_and_mirror() {
  [ -n "$codename" ] && return 0
  if [ "$SET" = newer ]; then
    # Another release than the host's: the host's Debian mirror, that release's suite.
    local host_uri
    host_uri=${ARCHGATE_DEBIAN_MIRROR:-$(host_source_entries | awk '$2 !~ /security|\// {print $1; exit}')}
    [ -n "$host_uri" ] || die "no Debian mirror in the host's apt sources: set ARCHGATE_DEBIAN_MIRROR (e.g. http://deb.debian.org/debian)"
    codename=$NEWER_CODENAME
    MIRROR_LINES=("${host_uri%/} $codename")
    return 0
  fi
  codename="${ARCHGATE_DEBIAN_CODENAME:-}"
  if [ -z "$codename" ] && [ -r /etc/os-release ]; then
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d "\"'")
  fi
  [ -n "$codename" ] || die "cannot tell the Debian release: /etc/os-release has no VERSION_CODENAME (set ARCHGATE_DEBIAN_CODENAME, e.g. bookworm)"
  [ -r "$KEYRING" ] || die "$KEYRING is missing: apt-get install -y debian-archive-keyring"

  local uri suite seen=" "
  if [ -n "${ARCHGATE_DEBIAN_MIRROR:-}" ]; then
    MIRROR_LINES=("${ARCHGATE_DEBIAN_MIRROR%/} $codename" "${ARCHGATE_DEBIAN_MIRROR%/} $codename-updates")
  fi
  # Entries of the host whose suite is this release (main, -updates, -security) are Debian's;
  # third-party repositories use other suite names and are left out.
  while read -r uri suite; do
    case "$suite" in "$codename" | "$codename-updates" | "$codename-security" | "$codename/updates") ;; *) continue ;; esac
    if [ -n "${ARCHGATE_DEBIAN_MIRROR:-}" ] && [ "$suite" != "$codename-security" ]; then continue; fi
    case "$seen" in *" ${uri%/}|$suite "*) continue ;; esac
    seen="$seen${uri%/}|$suite "
    MIRROR_LINES+=("${uri%/} $suite")
  done < <(host_source_entries)
  [ "${#MIRROR_LINES[@]}" -gt 0 ] || die "no Debian mirror for '$codename' in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources: set ARCHGATE_DEBIAN_MIRROR (e.g. http://deb.debian.org/debian)"
}

# ---------- private apt configuration ----------
write_apt_config() { # write_apt_config ARCH -> sets APT_CONFIG for later calls
  local arch=$1 d line
  d="$(arch_dir "$arch")/apt"
  mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/sources.list.d" "$d/preferences.d"
  : >"$d/status" # empty dpkg status: nothing counts as installed
  {
    for line in "${MIRROR_LINES[@]}"; do
      echo "deb [arch=$arch signed-by=$KEYRING] ${line% *} ${line#* } main"
    done
  } >"$d/sources.list"
  {
    echo "APT::Architecture \"$arch\";"
    echo "APT::Architectures { \"$arch\"; };"
    echo "Dir::State \"$d/state\";"
    echo "Dir::State::Lists \"$d/state/lists\";"
    echo "Dir::State::status \"$d/status\";"
    echo "Dir::Cache \"$d/cache\";"
    echo "Dir::Etc::SourceList \"$d/sources.list\";"
    echo "Dir::Etc::SourceParts \"$d/sources.list.d\";"
    echo "Dir::Etc::Preferences \"$d/preferences\";"
    echo "Dir::Etc::PreferencesParts \"$d/preferences.d\";"
    echo "Acquire::Languages \"none\";"
    echo "APT::Get::List-Cleanup \"true\";"
    # As root, apt would drop to user _apt, which cannot write into a cache under
    # /root; it then falls back to root with a notice. Say so up front (no notice).
    if [ "$(id -u)" = 0 ]; then echo "APT::Sandbox::User \"root\";"; fi
  } >"$d/apt.conf"
  export APT_CONFIG="$d/apt.conf"
}

apt_update() { # apt_update ARCH LOG
  local arch=$1 log=$2
  apt-get update -qq >"$log" 2>&1 || {
    tail -n 8 "$log" >&2
    die "apt-get update for $arch failed: is the Debian mirror (${MIRROR_LINES[0]% *}) reachable? (sources: $(arch_dir "$arch")/apt/sources.list)"
  }
  if grep -q '^[WE]:' "$log"; then
    grep '^[WE]:' "$log" >&2
    die "apt-get update for $arch reported errors: is the Debian mirror (${MIRROR_LINES[0]% *}) reachable and does it carry $arch?"
  fi
}

# "name version" lines (sorted) for the packages apt would download now
candidate_versions() { # candidate_versions ARCH LOG
  local arch=$1 log=$2 f name rest ver
  apt-get download --print-uris "${PACKAGES[@]}" >"$log" 2>&1 || {
    tail -n 8 "$log" >&2
    die "resolving ${PACKAGES[*]} for $arch failed: the mirror may not carry them for $arch"
  }
  awk '{print $2}' "$log" | while read -r f; do
    name=${f%%_*}; rest=${f#*_}; ver=${rest%_*}
    echo "$name ${ver//%3a/:}"
  done | sort
}

stamp_header() { # stamp_header ARCH
  printf '%s\nspec: %s %s %s\n' "$STAMP_FORMAT" "$codename" "$1" "${PACKAGES[*]}"
}

is_cached() { # is_cached ARCH: stamp matches the requested packages, root present
  local arch=$1 d
  d=$(arch_dir "$arch")
  [ -f "$d/stamp" ] && [ -e "$d/root/$(sentinel_rel "$arch")" ] || return 1
  [ "$(head -n 2 "$d/stamp")" = "$(stamp_header "$arch")" ]
}

# ---------- fetch one architecture ----------
fetch_arch() { # fetch_arch ARCH REFRESH(0|1)
  local arch=$1 refresh=$2 d log t0 t1 t2 t3 versions f

  d=$(arch_dir "$arch")
  mkdir -p "$d"
  # One fetch per architecture at a time (parallel CI jobs on the same machine).
  exec {lockfd}>"$d/.lock"
  flock "$lockfd"

  if [ "$refresh" = 0 ] && is_cached "$arch"; then
    exec {lockfd}>&-
    echo "$arch: cached ($d/root)"
    return 0
  fi
  # leftovers of an interrupted run
  rm -rf "$d"/debs.tmp.* "$d"/root.tmp.* "$d"/root.old.* "$d"/debs.old.* "$d"/check.*

  log="$d/apt/last.log"
  t0=$(now_us)
  write_apt_config "$arch"
  apt_update "$arch" "$log"
  versions=$(candidate_versions "$arch" "$log")
  t1=$(now_us)
  if [ "$refresh" = 1 ] && is_cached "$arch" && [ "$(tail -n +3 "$d/stamp")" = "$versions" ]; then
    exec {lockfd}>&-
    echo "$arch: up to date ($(echo "$versions" | awk -v p="${PACKAGES[0]}" '$1 == p {print $2}'); lists $(secs $((t1 - t0))))"
    return 0
  fi

  local debs_tmp="$d/debs.tmp.$$" root_tmp="$d/root.tmp.$$"
  TMP_PATHS+=("$debs_tmp" "$root_tmp")
  mkdir -p "$debs_tmp" "$root_tmp"
  (cd "$debs_tmp" && apt-get download -qq "${PACKAGES[@]}") >"$log" 2>&1 || {
    tail -n 8 "$log" >&2
    die "apt-get download for $arch failed: is the Debian mirror (${MIRROR_LINES[0]% *}) reachable? Re-run to retry (nothing was replaced)."
  }
  t2=$(now_us)

  for f in "$debs_tmp"/*.deb; do
    dpkg-deb -x "$f" "$root_tmp" 2>"$log" || {
      cat "$log" >&2
      die "unpacking $(basename "$f") for $arch failed (dpkg-deb -x): the download may be damaged; re-run to download again"
    }
  done
  [ -e "$root_tmp/$(sentinel_rel "$arch")" ] || die "unpack for $arch: $(sentinel_rel "$arch") is missing in the packages (did the package layout change?)"
  t3=$(now_us)

  # Move into place: the old stamp goes first, so an interruption leaves "not cached".
  rm -f "$d/stamp"
  [ -e "$d/root" ] && mv "$d/root" "$d/root.old.$$" && TMP_PATHS+=("$d/root.old.$$")
  [ -e "$d/debs" ] && mv "$d/debs" "$d/debs.old.$$" && TMP_PATHS+=("$d/debs.old.$$")
  mv "$root_tmp" "$d/root"
  mv "$debs_tmp" "$d/debs"
  rm -rf "$d/root.old.$$" "$d/debs.old.$$"
  { stamp_header "$arch"; echo "$versions"; } >"$d/stamp.tmp"
  mv "$d/stamp.tmp" "$d/stamp"
  exec {lockfd}>&-

  echo "$arch: ${PACKAGES[0]} $(echo "$versions" | awk -v p="${PACKAGES[0]}" '$1 == p {print $2}'):" \
    "apt-get update $(secs $((t1 - t0))), download $(secs $((t2 - t1))) ($(du -sh "$d/debs" | cut -f1)), unpack $(secs $((t3 - t2))) ($(du -sh "$d/root" | cut -f1))"
}

# ---------- check one architecture ----------
# Runs java from the root under bubblewrap, the root becoming "/" (absolute symlinks in
# the root resolve inside it; no host file, no network). QEMU is invoked explicitly for
# every architecture (also amd64), so a wrong-architecture binary fails instead of
# running natively through binfmt_misc. The root itself is left untouched: the check
# runs in a private hard-linked copy (check.PID) that gets .qemu, proc, dev and tmp.
check_arch() { # check_arch ARCH -> returns 1 on failure (message printed)
  local arch=$1 d qemu chk out rc t0 t1 version os_arch want
  d=$(arch_dir "$arch")
  qemu="/usr/bin/qemu-$(qemu_name "$arch")-static"
  want=$(expected_os_arch "$arch")
  [ -x "$qemu" ] || { echo "$arch: check failed: $qemu missing (apt-get install -y qemu-user-static)" >&2; return 1; }

  # Same lock as the fetch: no re-fetch replaces the root under a running check.
  exec {lockfd}>"$d/.lock"
  flock "$lockfd"
  chk="$d/check.$$"
  TMP_PATHS+=("$chk")
  rm -rf "$chk"
  cp -al "$d/root" "$chk"
  cp "$qemu" "$chk/.qemu"
  mkdir -p "$chk/proc" "$chk/dev" "$chk/tmp"

  t0=$(now_us)
  rc=0
  out=$(bwrap --unshare-all --die-with-parent --ro-bind "$chk" / --proc /proc --dev /dev --tmpfs /tmp \
    --clearenv --setenv PATH /usr/bin:/bin \
    /.qemu "/$(java_rel "$arch")" -XshowSettings:properties -version 2>&1) || rc=$?
  t1=$(now_us)
  rm -rf "$chk"
  exec {lockfd}>&-

  version=$(printf '%s\n' "$out" | grep -m1 -E '^(openjdk|java) version' || true)
  os_arch=$(printf '%s\n' "$out" | sed -n 's/^ *os\.arch = //p' | head -n 1)
  if [ "$rc" != 0 ] || [ -z "$version" ]; then
    printf '%s\n' "$out" | tail -n 8 >&2
    case "$out" in
      *"Creating new namespace failed"* | *"No permissions to create"* | *"setting up uid map"*)
        echo "$arch: check failed: bubblewrap cannot create namespaces here (needs root or unprivileged user namespaces)" >&2 ;;
      *)
        echo "$arch: check failed: java -version exited $rc under bwrap + qemu-$(qemu_name "$arch")-static; re-fetch with: rm -rf $d && $0 --arch $arch" >&2 ;;
    esac
    return 1
  fi
  if [ "$os_arch" != "$want" ]; then
    echo "$arch: check failed: os.arch is '$os_arch', expected '$want' (wrong-architecture JRE in $d/root?)" >&2
    return 1
  fi
  echo "$arch: $version; os.arch = $os_arch; java -version $(secs $((t1 - t0)))"
}

# ---------- main ----------
main() {
  local arches_arg="" print_root="" check=0 refresh=0 a n
  while [ $# -gt 0 ]; do
    case "$1" in
      --arch) [ $# -ge 2 ] || usage; arches_arg=$2; shift 2 ;;
      --arch=*) arches_arg=${1#*=}; shift ;;
      --print-root) [ $# -ge 2 ] || usage; print_root=$2; shift 2 ;;
      --print-root=*) print_root=${1#*=}; shift ;;
      --set) [ $# -ge 2 ] || usage; SET=$2; shift 2 ;;
      --set=*) SET=${1#*=}; shift ;;
      --check) check=1; shift ;;
      --refresh) refresh=1; shift ;;
      -h | --help) usage ;;
      *) echo "$prog: unknown argument '$1'" >&2; usage ;;
    esac
  done

  case "$SET" in
    jre) PACKAGES=("${JRE_PACKAGES[@]}") ;;
    jni) PACKAGES=("${JNI_PACKAGES[@]}") ;;
    newer) PACKAGES=("${NEWER_PACKAGES[@]}") ;;
    shell) PACKAGES=("${SHELL_PACKAGES[@]}") ;;
    *) die "unknown set '$SET' (jre, jni, newer, shell)" ;;
  esac
  [ "$check" = 0 ] || [ "$SET" = jre ] || die "--check runs java: only for --set jre"
  if [ -n "$print_root" ]; then
    n=$(deb_arch "$print_root") || die "unknown architecture '$print_root' (amd64, arm64, mips64el)"
    detect_release_and_mirror
    is_cached "$n" || die "the $SET root for $n is not ready: run scripts/fetch-jre.sh --set $SET --arch $n"
    echo "$(arch_dir "$n")/root"
    return 0
  fi

  local arches=()
  if [ -z "$arches_arg" ]; then
    arches=("${ALL_ARCHES[@]}")
  else
    local list
    IFS=, read -r -a list <<<"$arches_arg"
    for a in "${list[@]}"; do
      n=$(deb_arch "$a") || die "unknown architecture '$a' (amd64, arm64, mips64el)"
      case " ${arches[*]-} " in *" $n "*) ;; *) arches+=("$n") ;; esac
    done
  fi

  ensure_host_packages apt-get:apt dpkg-deb:dpkg flock:util-linux
  detect_release_and_mirror
  for a in "${arches[@]}"; do
    fetch_arch "$a" "$refresh"
  done

  if [ "$check" = 1 ]; then
    ensure_host_packages bwrap:bubblewrap qemu-aarch64-static:qemu-user-static
    local failed=()
    for a in "${arches[@]}"; do
      check_arch "$a" || failed+=("$a")
    done
    if [ "${#failed[@]}" -gt 0 ]; then
      die "java -version failed for: ${failed[*]}"
    fi
  fi
}

main "$@"
