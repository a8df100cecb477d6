#!/usr/bin/env bash
# corpus.sh DIR: the text corpus of sections 2 and 5 (docs/results.md), built in DIR.
#
# Real text that every machine building ittt has, offline and versioned: the 130
# headers in /usr/include/c++/12/bits/ of Debian 12's libstdc++-12-dev
# (12.2.0-14+deb12u1, installed with g++), C++ source with English comments. The
# exact files and their SHA-256 are in data/corpus/libstdcxx-12-bits.sha256; a file
# that is missing or differs stops here with its name. Split by file, not by byte:
# in the manifest's (sorted) order every 5th file (the 5th, 10th, ...) is held out.
#   DIR/train.txt     104 files, concatenated in manifest order
#   DIR/heldout.txt    26 files
#   DIR/corpus.json   file counts, byte counts and the SHA-256 of both
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir=${1:?usage: corpus.sh DIR}
manifest=data/corpus/libstdcxx-12-bits.sha256
mkdir -p "$dir"
if [ -f "$dir/corpus.json" ] && [ "$dir/corpus.json" -nt "$manifest" ]; then exit 0; fi
if ! (cd / && sha256sum --quiet --strict -c -) < "$manifest" > "$dir/check.log" 2>&1; then
    echo "corpus.sh: the corpus files differ from $manifest:" >&2
    grep -v ': OK$' "$dir/check.log" | head -n 10 >&2
    echo "corpus.sh: the manifest was made from Debian 12's libstdc++-12-dev 12.2.0-14+deb12u1" \
         "(found: $(dpkg-query -W -f '${Version}' libstdc++-12-dev 2> /dev/null || echo 'not installed'))" >&2
    exit 1
fi
: > "$dir/train.txt.tmp"
: > "$dir/heldout.txt.tmp"
i=0
while read -r _ path; do
    i=$((i + 1))
    if [ $((i % 5)) -eq 0 ]; then cat "/$path" >> "$dir/heldout.txt.tmp"; else cat "/$path" >> "$dir/train.txt.tmp"; fi
done < "$manifest"
mv "$dir/train.txt.tmp" "$dir/train.txt"
mv "$dir/heldout.txt.tmp" "$dir/heldout.txt"
sum() { sha256sum "$1" | cut -d' ' -f1; }
printf '{"source": "Debian 12 libstdc++-12-dev 12.2.0-14+deb12u1, /usr/include/c++/12/bits/*.h", "manifest": "%s", "files": %d, "train_files": %d, "heldout_files": %d, "train_bytes": %d, "heldout_bytes": %d, "train_sha256": "%s", "heldout_sha256": "%s"}\n' \
    "$manifest" "$i" $((i - i / 5)) $((i / 5)) "$(stat -c %s "$dir/train.txt")" "$(stat -c %s "$dir/heldout.txt")" \
    "$(sum "$dir/train.txt")" "$(sum "$dir/heldout.txt")" > "$dir/corpus.json.tmp"
mv "$dir/corpus.json.tmp" "$dir/corpus.json"
