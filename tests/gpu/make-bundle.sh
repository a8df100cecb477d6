#!/usr/bin/env bash
# make-bundle.sh: packs ittt, ittt_tests and ittt_bench with what they load at run time into one
# folder that the device tool can carry to a GPU machine (make gpu-bundle; docs/profiling.md).
#
#   tests/gpu/make-bundle.sh BUILD BUNDLE [--limit-mib N] [--gpu-arch N] [--system-libs]
#
# BUILD holds the three programs, linked with -Wl,--disable-new-dtags,-rpath,$ORIGIN/lib (gpu.mk
# does it: DT_RPATH, unlike the newer DT_RUNPATH, also serves the libraries' own needs, such as
# ICU's libicuuc needing libicudata). BUNDLE gets:
#   gpu-check.sh      the one command to run there: bash BUNDLE/gpu-check.sh
#   ittt-gpu.tar.gz   the programs, lib/ and BUILD-INFO.txt; gpu-check.sh unpacks it to $TMPDIR
#   BUILD-INFO.txt    commit, date, compilers, GPU arch, the libraries packed and the sizes
# lib/ holds every shared library the programs load except the C library's own (libc, libm,
# libpthread, libdl, librt, the loader) and cuBLAS (libcublas, libcublasLt: 600 MB; the GPU
# machine's CUDA has them, and gpu-check.sh finds them): so PCRE2, ICU, OpenMP, the C++ library
# and the CUDA runtime come from this machine, whatever the other one has. Packed because ICU's
# data alone is 31 MB: the plain folder would be ~65 MB, over the device tool's 64 MiB.
# --system-libs: no lib/ and no $ORIGIN check, for a bundle that runs on this machine (CI packs
# the emulated build this way to run gpu-check.sh from a bundle, as the GPU machine does).
# Fails when BUNDLE is larger than --limit-mib (default 64), printing its size either way.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

[ $# -ge 2 ] || { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
build=$1 bundle=$2
shift 2
limit_mib=64 system_libs=0 gpu_arch=
while [ $# -gt 0 ]; do
    case $1 in
        --limit-mib) limit_mib=$2; shift 2 ;;
        --gpu-arch) gpu_arch=$2; shift 2 ;;
        --system-libs) system_libs=1; shift ;;
        *) echo "make-bundle: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
programs=(ittt ittt_tests ittt_bench)
for p in "${programs[@]}"; do
    [ -x "$build/$p" ] || { echo "make-bundle: $build/$p is missing (make gpu-bundle builds it)" >&2; exit 1; }
done

rm -rf "$bundle" "$bundle.stage"
mkdir -p "$bundle" "$bundle.stage/lib"
bundle=$(cd "$bundle" && pwd)
stage=$bundle.stage
cp "${programs[@]/#/$build/}" "$stage/"

# Libraries the loader finds for the programs, as "soname path", minus the ones the GPU machine
# must provide itself.
system='^(linux-vdso\.so|ld-linux[^ ]*|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libcublas\.so|libcublasLt\.so|libcuda\.so)'
libraries() {
    for p in "${programs[@]}"; do ldd "$stage/$p"; done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u | grep -Ev "$system" || true
}
if [ "$system_libs" = 0 ]; then
    for p in "${programs[@]}"; do
        # shellcheck disable=SC2016  # the literal text $ORIGIN
        if ! readelf -d "$stage/$p" | grep -E 'R(UN)?PATH' | grep -qF '$ORIGIN/lib'; then
            echo "make-bundle: $build/$p has no \$ORIGIN/lib run path: link it with -Wl,--disable-new-dtags,-rpath,'\$ORIGIN/lib' (make gpu-bundle does)" >&2
            exit 1
        fi
    done
    while read -r soname path; do
        cp -L "$path" "$stage/lib/$soname"
    done < <(libraries)
    # Every library packed is the one the programs now load (from $ORIGIN/lib, not this machine's).
    while read -r soname path; do
        case $path in
            "$(cd "$stage/lib" && pwd)/$soname") ;;
            *) echo "make-bundle: $soname resolves to $path, not to the bundle's lib/" >&2; exit 1 ;;
        esac
    done < <(libraries)
else
    rmdir "$stage/lib"
fi

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
{
    echo "ittt GPU bundle, made $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "compilers: $(g++ --version | head -n 1); $( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version 2>/dev/null) | grep -m1 release || echo 'nvcc: none (emulated build)')"
    if [ -n "$gpu_arch" ]; then echo "GPU code: nvcc -arch=sm_$gpu_arch (SASS for sm_$gpu_arch, PTX for compute_$gpu_arch)"
    else echo "GPU code: none (the CUDA emulator's build: the kernels are host code)"; fi
    echo "needs glibc >= $(objdump -T "$build/ittt_tests" "$build/ittt_bench" "$build/ittt" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
    echo "from the GPU machine: the NVIDIA driver, libcublas.so.13, libcublasLt.so.13 (CUDA 13)"
    for p in "${programs[@]}"; do echo "program: $p $(mib "$(stat -c %s "$stage/$p")")"; done
    if [ "$system_libs" = 0 ]; then
        for f in "$stage"/lib/*; do echo "lib: $(basename "$f") $(mib "$(stat -c %s "$f")")"; done
    else
        echo "lib: none packed (--system-libs: this machine's libraries)"
    fi
} > "$stage/BUILD-INFO.txt"

tar -czf "$bundle/ittt-gpu.tar.gz" -C "$stage" .
cp "$here/gpu-check.sh" "$stage/BUILD-INFO.txt" "$bundle/"
chmod +x "$bundle/gpu-check.sh"
rm -rf "$stage"

bytes=$(du -sb "$bundle" | cut -f1)
echo "make-bundle: $bundle is $(mib "$bytes") (limit $limit_mib MiB): $(cd "$bundle" && find . -type f -printf '%f ')"
if [ "$bytes" -gt $((limit_mib * 1048576)) ]; then
    echo "make-bundle: $bundle is larger than $limit_mib MiB: the device tool cannot carry it" >&2
    exit 1
fi
