#!/usr/bin/env bash
# install-deps.sh: the one place that installs the Debian packages the build needs
# (`make deps`, which every compile runs first, and the fuzz targets' `make fuzz-build`).
#
#   src/install-deps.sh --log FILE --packages "P1 P2 ..." [--hint TEXT] files PATH...
#       needs every PATH to exist (headers, programs)
#   src/install-deps.sh --log FILE --packages "P1 P2 ..." [--hint TEXT] fuzzer CXX
#       needs CXX to build a libFuzzer program with AddressSanitizer
#
# When the need is met it prints nothing. Otherwise it says what is missing and, as
# root on a machine with apt-get, installs the packages (apt-get's output goes to the
# log), then checks again; as anyone else it prints the exact command to run (and the
# hint, e.g. how to build without the packages) and fails.
set -uo pipefail

log=/dev/null packages="" hint=""
while [ $# -gt 0 ]; do
    case $1 in
    --log) log=$2; shift 2 ;;
    --packages) packages=$2; shift 2 ;;
    --hint) hint=$2; shift 2 ;;
    *) break ;;
    esac
done
kind=${1:-}
shift || true

# Prints what is missing (nothing when the need is met).
missing() {
    case $kind in
    files)
        for path in "$@"; do [ -e "$path" ] || printf ' %s' "$path"; done ;;
    fuzzer)
        local probe
        probe=$(mktemp)
        echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
            "$1" -x c++ -fsanitize=fuzzer,address - -o "$probe" 2>/dev/null || printf ' %s' "a $1 that builds libFuzzer targets"
        rm -f "$probe" ;;
    *)
        echo "install-deps.sh: unknown check '$kind' (expected files or fuzzer)" >&2
        exit 2 ;;
    esac
}

gone=$(missing "$@")
[ -z "$gone" ] && exit 0
echo "missing:$gone"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: $packages"
    mkdir -p "$(dirname "$log")"
    # shellcheck disable=SC2086
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages) >"$log" 2>&1 ||
        { echo "apt-get failed, see $log"; exit 1; }
    gone=$(missing "$@")
    [ -z "$gone" ] || { echo "still missing after apt-get:$gone"; exit 1; }
else
    echo "run: sudo apt-get install -y $packages${hint:+   ($hint)}"
    exit 1
fi
