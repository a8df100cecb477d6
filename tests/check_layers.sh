#!/usr/bin/env bash
# check_layers.sh: the layer order of ittt's code, in one place, and its check.
# `make test` runs it through tests/test_layout.cpp ([layout]); docs/architecture.md
# explains the layers.
#
#   tests/check_layers.sh [ROOT]      ROOT: the tree to check (default: this repository)
#
# Every #include "..." in ROOT/src, ROOT/kernels and ROOT/notebooks-cpp is resolved as
# the compiler resolves it (the including file's folder first, then src/, then ROOT;
# an include found in none, e.g. a system header, is not ours and is skipped) and both
# ends are mapped to their folder: src/<folder>/... is <folder>, kernels/<op>/... is
# kernels, notebooks-cpp/... is labs.
#
# The rule: a folder may include its own files and those of folders on LOWER lines of
# LAYERS below. Folders on one line are side by side: neither may include the other.
# A folder in SEALED may be included only by the folders it names. A folder that is
# not in LAYERS is an error too (a new folder needs a place).
# Exit 0 with a one-line summary, or 1 with one line per broken include (file:line,
# the include, the rule it breaks) and every cycle between folders.
set -euo pipefail

# The layers, lowest first. The core library (libittt.a) is runtime .. train; the
# applications on top link it: driver (theory, probes, pager, plots), then the CLI
# (tools), the benchmarks (bench) and the course labs (labs).
LAYERS="
runtime
kernels
ops
io
tasks tokenizer parallel
model
train
driver
tools bench labs
"

# Folders reached only through the layer above them: "folder: the folders that may
# include it". The kernels are reached through ops, the seam that checks arguments and
# picks the version and device; bench times raw kernels on purpose.
SEALED="
kernels: ops bench
"

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
[ -d src ] || { echo "check_layers: $root has no src/ folder" >&2; exit 2; }
dirs=$(for d in src kernels notebooks-cpp; do [ -d "$d" ] && echo "$d"; done)

# Two inputs for awk: every file of the tree (to resolve includes), then the includes.
files=$(mktemp)
trap 'rm -f "$files"' EXIT
# shellcheck disable=SC2086
find $dirs -type f | sort > "$files"
# shellcheck disable=SC2086
sources=$(find $dirs -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
# "file:line:text" for every quoted include
# shellcheck disable=SC2086
includes=$(grep -nH -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' $sources || true)

printf '%s\n' "$includes" | awk -v layers="$LAYERS" -v sealed="$SEALED" -v files="$files" '
function folder_of(path,    p, n) {
    n = split(path, p, "/")
    if (p[1] == "kernels") return "kernels"
    if (p[1] == "notebooks-cpp") return "labs"
    if (p[1] == "src" && n >= 3) return p[2]
    return path  # a file at the top of src/: not in any layer
}
# a/b/../c -> a/c, ./x -> x
function normalize(path,    p, n, i, out, k, stack) {
    n = split(path, p, "/")
    k = 0
    for (i = 1; i <= n; ++i) {
        if (p[i] == "" || p[i] == ".") continue
        if (p[i] == ".." && k > 0 && stack[k] != "..") { --k; continue }
        stack[++k] = p[i]
    }
    out = ""
    for (i = 1; i <= k; ++i) out = out (i > 1 ? "/" : "") stack[i]
    return out
}
function dirname(path) { sub(/\/[^\/]*$/, "", path); return path }
# the order as text, "runtime < kernels < ... < tools, bench, labs"
function order_text(    i, s) {
    s = ""
    for (i = 1; i <= nlevels; ++i) s = s (i > 1 ? " < " : "") level_names[i]
    return s
}
# Breadth-first search for a shortest path of includes from `source` to `dest`; fills
# path[1..n] (path[1] = source, path[n] = dest) and returns n, or 0 when there is none.
function shortest_path(source, dest,    queue, head, tail, node, nxt, parent, n, k) {
    head = 1; tail = 1; queue[1] = source; parent[source] = ""
    while (head <= tail) {
        node = queue[head++]
        if (node == dest) break
        for (nxt in folders)
            if (((node, nxt) in edge) && !(nxt in parent)) { parent[nxt] = node; queue[++tail] = nxt }
    }
    if (!(dest in parent)) return 0
    n = 0
    for (node = dest; node != ""; node = parent[node]) reversed[++n] = node
    for (k = 1; k <= n; ++k) path[k] = reversed[n + 1 - k]
    return n
}
BEGIN {
    nlevels = 0
    nl = split(layers, lines, "\n")
    for (i = 1; i <= nl; ++i) {
        if (lines[i] ~ /^[[:space:]]*$/) continue
        ++nlevels
        nf = split(lines[i], names, " ")
        level_names[nlevels] = ""
        for (j = 1; j <= nf; ++j) {
            level[names[j]] = nlevels
            level_names[nlevels] = level_names[nlevels] (j > 1 ? ", " : "") names[j]
        }
    }
    ns = split(sealed, lines, "\n")
    for (i = 1; i <= ns; ++i) {
        if (lines[i] !~ /:/) continue
        name = lines[i]; sub(/:.*/, "", name); gsub(/[[:space:]]/, "", name)
        who = lines[i]; sub(/^[^:]*:[[:space:]]*/, "", who)
        sealed_by[name] = who; gsub(/ +/, ", ", sealed_by[name])
        nw = split(who, names, " ")
        for (j = 1; j <= nw; ++j) may_include[names[j], name] = 1
    }
    bad = 0; checked = 0
    while ((getline f < files) > 0) {
        exists[f] = 1
        name = folder_of(f)
        if (f ~ /^src\/[^\/]+\// && !(name in level) && !(name in reported_missing)) {
            reported_missing[name] = 1
            printf "src/%s: folder \"%s\" has no place in LAYERS of tests/check_layers.sh (add it to a line)\n", name, name
            ++bad
        }
    }
}
{
    # file:line:#include "target"
    file = $0; sub(/:.*/, "", file)
    rest = substr($0, length(file) + 2)
    line = rest; sub(/:.*/, "", line)
    target = rest; sub(/^[^"]*"/, "", target); sub(/".*$/, "", target)
    if (file == "") next
    resolved = ""
    candidates[1] = normalize(dirname(file) "/" target)
    candidates[2] = normalize("src/" target)
    candidates[3] = normalize(target)
    for (c = 1; c <= 3; ++c) if (candidates[c] in exists) { resolved = candidates[c]; break }
    if (resolved == "") next
    from = folder_of(file); to = folder_of(resolved)
    ++checked
    folders[from] = 1; folders[to] = 1
    if (from == to || !(from in level) || !(to in level)) next
    if (!((from, to) in edge)) { edge[from, to] = 1; site[from, to] = file ":" line }
    if ((to in sealed_by) && !((from, to) in may_include)) {
        printf "%s:%s: #include \"%s\": %s may not include %s directly, only %s may (SEALED in tests/check_layers.sh)\n", file, line, target, from, to, sealed_by[to]
        ++bad
    } else if (level[to] > level[from]) {
        printf "%s:%s: #include \"%s\": %s may not include %s, a layer above it (layers, lowest first: %s)\n", file, line, target, from, to, order_text()
        ++bad
    } else if (level[to] == level[from]) {
        printf "%s:%s: #include \"%s\": %s and %s are side by side on one layer and may not include each other (layers, lowest first: %s)\n", file, line, target, from, to, order_text()
        ++bad
    }
}
END {
    # Cycles between folders: for every include a -> b, the shortest way back from b to a.
    # Each cycle is printed once, starting from its alphabetically first folder.
    for (key in edge) {
        split(key, ends, SUBSEP)
        n = shortest_path(ends[2], ends[1])
        if (!n) continue
        # the cycle a -> b -> ... -> a as cyc[1..n], rotated to start at its first folder
        cyc[1] = ends[1]
        for (i = 1; i < n; ++i) cyc[i + 1] = path[i]
        low = 1
        for (i = 2; i <= n; ++i) if (cyc[i] < cyc[low]) low = i
        text = ""; where = ""
        for (i = 0; i < n; ++i) {
            a = cyc[(low + i - 1) % n + 1]; b = cyc[(low + i) % n + 1]
            text = text a " -> "
            where = where (i > 0 ? ", " : "") site[a, b]
        }
        text = text cyc[low]
        if (text in cycle_seen) continue
        cycle_seen[text] = 1
        printf "cycle between folders: %s (includes at %s)\n", text, where
        ++bad
    }
    if (bad) {
        printf "check_layers: %d problem(s), %d includes checked\n", bad, checked
        exit 1
    }
    printf "check_layers: %d includes checked, every one keeps to the layers (lowest first: %s); no cycles\n", checked, order_text()
}
'
