#include "tasks/tasks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace ittt {

// ---------------------------------------------------------------- names

const char* task_kind_name(TaskKind kind) {
    switch (kind) {
        case TaskKind::Induction:
            return "induction";
        case TaskKind::Mqar:
            return "mqar";
        case TaskKind::TheoremProbe:
            return "theorem";
        case TaskKind::Needle:
            return "needle";
        case TaskKind::Text:
            return "text";
    }
    return "?";
}

const char* filler_name(Filler f) {
    switch (f) {
        case Filler::Random:
            return "random";
        case Filler::Pad:
            return "pad";
        case Filler::Pattern:
            return "pattern";
    }
    return "?";
}

const char* marker_kind_name(MarkerKind kind) {
    switch (kind) {
        case MarkerKind::FirstCopy:
            return "first_copy";
        case MarkerKind::SecondCopy:
            return "second_copy";
        case MarkerKind::Key:
            return "key";
        case MarkerKind::Value:
            return "value";
        case MarkerKind::Needle:
            return "needle";
        case MarkerKind::Query:
            return "query";
        case MarkerKind::Answer:
            return "answer";
    }
    return "?";
}

const std::vector<std::string>& task_names() {
    static const std::vector<std::string> names = {"induction", "mqar", "theorem", "needle", "text"};
    return names;
}

const std::vector<TaskOptionInfo>& task_options(TaskKind kind) {
    static const std::vector<TaskOptionInfo> induction = {
        {"copy_length", "m, tokens in each copy; 0 = the largest with 1 + 2m <= n"},
    };
    static const std::vector<TaskOptionInfo> mqar = {
        {"pairs", "D, key-value pairs (all of them queried)"},
        {"gap", "minimum distance from a pair's value to its query; 0 = none"},
        {"filler", "random (ordinary tokens, never a key) | pad"},
        {"spread", "S: pair j inside positions [jS/D, (j+1)S/D), queries after S; 0 = packed at the start"},
    };
    static const std::vector<TaskOptionInfo> theorem = {
        {"chunk", "the TTT chunk: k* v* lie in an earlier chunk than the query"},
        {"window", "the attention window: more filler tokens than this between v* and the query"},
        {"pair_position", "position of k*; -1 or random = uniform over the valid ones"},
    };
    static const std::vector<TaskOptionInfo> needle = {
        {"keys", "needles in the haystack, each with its own key"},
        {"values", "L, values per needle"},
        {"queries", "needles queried at the end (<= keys)"},
        {"depth", "percent (0..100) of the filler before needle 0; -1 or random = uniform"},
        {"filler", "pattern (a short random pattern repeated) | random"},
        {"pattern_length", "tokens in the repeated filler pattern"},
    };
    static const std::vector<TaskOptionInfo> text = {
        {"path", "the file whose bytes are the text (required)"},
        {"score_last", "score only the last k positions; 0 = all"},
        {"max_length", "draw window ends as if n were this, so every n <= it scores the same bytes; 0 = n"},
        {"docs", "bounded: documents of <path>.docs reset the model (default when that file exists); packed: one stream"},
    };
    switch (kind) {
        case TaskKind::Induction:
            return induction;
        case TaskKind::Mqar:
            return mqar;
        case TaskKind::TheoremProbe:
            return theorem;
        case TaskKind::Needle:
            return needle;
        case TaskKind::Text:
            return text;
    }
    return induction;
}

std::string TaskConfig::describe() const {
    std::string s = task_kind_name(kind);
    switch (kind) {
        case TaskKind::Induction:
            return s + cat(" copy_length=", copy_length);
        case TaskKind::Mqar:
            // spread only when set: the packed layout's description is what records and tests know.
            return s + cat(" pairs=", pairs, " gap=", gap, " filler=", filler_name(mqar_filler)) +
                   (spread > 0 ? cat(" spread=", spread) : std::string());
        case TaskKind::TheoremProbe:
            return s + cat(" chunk=", chunk, " window=", window, " pair_position=", pair_position);
        case TaskKind::Needle:
            return s + cat(" keys=", keys, " values=", values, " queries=", queries, " depth=", depth,
                           " filler=", filler_name(needle_filler), " pattern_length=", pattern_length);
        case TaskKind::Text:
            return s + cat(" path=", path, " score_last=", score_last, " max_length=", max_length, " docs=", text_docs_name(docs)) +
                   (docs == TextDocs::Bounded && document_offsets ? cat(" (", document_offsets->size(), " documents)") : std::string());
    }
    return s;
}

const char* text_docs_name(TextDocs d) {
    switch (d) {
        case TextDocs::Default: return "default";
        case TextDocs::Bounded: return "bounded";
        case TextDocs::Packed: return "packed";
    }
    return "?";
}

// ---------------------------------------------------------------- parsing

namespace {

std::string join_names(const std::vector<TaskOptionInfo>& options) {
    std::string s;
    for (const TaskOptionInfo& o : options) s += (s.empty() ? "" : ", ") + std::string(o.name);
    return s;
}

int parse_int_option(const char* task, const std::string& option, const std::string& value) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(value.c_str(), &end, 10);
    bool ok = !value.empty() && end == value.c_str() + value.size() && errno == 0 && v >= -2147483647LL && v <= 2147483647LL;
    ITTT_CHECK(ok, "task ", task, ": option ", option, ": expected an integer, found '", excerpt(value), "'");
    return static_cast<int>(v);
}

// -1 stands for "random" in the options that allow it; the word reads better on a command line.
int parse_int_or_random(const char* task, const std::string& option, const std::string& value) {
    return value == "random" ? -1 : parse_int_option(task, option, value);
}

void check_at_least(const char* task, const char* option, int value, int minimum) {
    ITTT_CHECK(value >= minimum, "task ", task, ": ", option, " must be >= ", minimum, ", found ", value);
}

// The ranges that do not depend on n or the vocabulary; make_batch checks the rest.
void check_option_ranges(const TaskConfig& c) {
    const char* t = task_kind_name(c.kind);
    switch (c.kind) {
        case TaskKind::Induction:
            ITTT_CHECK(c.copy_length == 0 || c.copy_length >= 2, "task ", t,
                       ": copy_length must be 0 (automatic) or >= 2 (one scored position needs two tokens), found ",
                       c.copy_length);
            break;
        case TaskKind::Mqar:
            check_at_least(t, "pairs", c.pairs, 1);
            check_at_least(t, "gap", c.gap, 0);
            ITTT_CHECK(c.spread == 0 || c.spread >= 2 * c.pairs, "task ", t, ": spread must be 0 (pairs packed at the start) or >= 2*pairs = ",
                       2 * c.pairs, " (a key and its value in each pair's span), found ", c.spread);
            ITTT_CHECK(c.mqar_filler == Filler::Random || c.mqar_filler == Filler::Pad, "task ", t,
                       ": filler must be random or pad, found ", filler_name(c.mqar_filler));
            break;
        case TaskKind::TheoremProbe:
            check_at_least(t, "chunk", c.chunk, 1);
            check_at_least(t, "window", c.window, 0);
            check_at_least(t, "pair_position", c.pair_position, -1);
            break;
        case TaskKind::Needle:
            check_at_least(t, "keys", c.keys, 1);
            check_at_least(t, "values", c.values, 1);
            check_at_least(t, "queries", c.queries, 1);
            ITTT_CHECK(c.queries <= c.keys, "task ", t, ": queries (", c.queries, ") must be <= keys (", c.keys,
                       "): only the needles in the haystack can be queried");
            ITTT_CHECK(c.depth >= -1 && c.depth <= 100, "task ", t, ": depth must be 0..100 (percent) or -1 (random), found ",
                       c.depth);
            ITTT_CHECK(c.needle_filler == Filler::Pattern || c.needle_filler == Filler::Random, "task ", t,
                       ": filler must be pattern or random, found ", filler_name(c.needle_filler));
            check_at_least(t, "pattern_length", c.pattern_length, 1);
            break;
        case TaskKind::Text:
            ITTT_CHECK(!c.path.empty() || c.text, "task ", t, ": option path is required (path=<file>)");
            check_at_least(t, "score_last", c.score_last, 0);
            check_at_least(t, "max_length", c.max_length, 0);
            break;
    }
}

}  // namespace

std::map<std::string, std::string> parse_option_list(const std::string& list) {
    auto trim = [](const std::string& s) {
        size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
        return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    std::map<std::string, std::string> options;
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        std::string item = trim(list.substr(start, comma - start));
        start = comma + 1;
        if (item.empty()) continue;  // tolerate "a=1," and an empty list
        size_t eq = item.find('=');
        ITTT_CHECK(eq != std::string::npos && eq > 0, "task options: expected key=value, found '", excerpt(item), "' in '", excerpt(list), "'");
        std::string key = trim(item.substr(0, eq));
        ITTT_CHECK(options.count(key) == 0, "task options: '", excerpt(key), "' is given twice in '", excerpt(list), "'");
        options[key] = trim(item.substr(eq + 1));
    }
    return options;
}

namespace {
const char* special_file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}
}  // namespace

std::shared_ptr<const std::vector<uint8_t>> load_text_file(const std::string& path) {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it is refused below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    ITTT_CHECK(fd >= 0, "task text: cannot open path '", path, "': ", std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    ITTT_CHECK(::fstat(fd, &st) == 0, "task text: cannot read path '", path, "': ", std::strerror(errno));
    // Sizes are checked before anything is read: /dev/zero never ends, and a
    // sparse 60 GB file would be read into memory whole.
    ITTT_CHECK(S_ISREG(st.st_mode), "task text: path '", path, "' is ", special_file_kind(st.st_mode),
               ", not a regular file (the text task reads a whole file into memory, at most ", kMaxTextFileBytes, " bytes)");
    ITTT_CHECK(st.st_size <= kMaxTextFileBytes, "task text: path '", path, "' is ", static_cast<int64_t>(st.st_size), " bytes (",
               static_cast<double>(st.st_size) / (1 << 30), " GiB); the text task reads a whole file into memory, at most ",
               kMaxTextFileBytes, " bytes (1 GiB)");
    auto bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(st.st_size));
    size_t done = 0;
    for (;;) {  // until the end: a file that grew meanwhile is read on, up to the limit
        if (done == bytes->size()) {
            if (static_cast<int64_t>(done) >= kMaxTextFileBytes) {
                char one;
                ITTT_CHECK(::read(fd, &one, 1) == 0, "task text: path '", path, "' grew past ", kMaxTextFileBytes, " bytes while it was read");
                break;
            }
            bytes->resize(std::min<size_t>(done + (1 << 16), static_cast<size_t>(kMaxTextFileBytes)));
        }
        ssize_t n = ::read(fd, bytes->data() + done, bytes->size() - done);
        if (n < 0 && errno == EINTR) continue;
        ITTT_CHECK(n >= 0, "task text: error reading path '", path, "': ", std::strerror(errno));
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    bytes->resize(done);
    return bytes;
}

std::vector<int64_t> load_document_offsets(const std::string& sidecar, int64_t text_size) {
    std::ifstream in(sidecar, std::ios::binary);
    ITTT_CHECK(in.good(), "task text: cannot open the document list '", sidecar, "'");
    std::vector<int64_t> offsets;
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
        const std::string where = cat("task text: document list '", sidecar, "' line ", number, ": ");
        const size_t tab = line.find('\t');
        const std::string digits = line.substr(0, tab);
        const bool is_number = !digits.empty() && digits.size() <= 18 &&
                               std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        ITTT_CHECK(tab != std::string::npos && is_number, where, "expected '<byte offset><TAB><source path>' with a decimal offset, found '",
                   excerpt(line), "'");
        const int64_t offset = std::stoll(digits);
        ITTT_CHECK(!offsets.empty() || offset == 0, where, "the first document must start at offset 0, found ", offset);
        ITTT_CHECK(offsets.empty() || offset >= offsets.back(), where, "offsets must be sorted: ", offset, " comes after ", offsets.back());
        ITTT_CHECK(offset <= text_size, where, "offset ", offset, " is past the end of the text (", text_size, " bytes)");
        if (offsets.empty() || offset > offsets.back()) offsets.push_back(offset);  // an empty document starts nothing
    }
    ITTT_CHECK(!offsets.empty(), "task text: document list '", sidecar, "' is empty: expected one line per document, the first at offset 0");
    return offsets;
}

namespace {
// Resolves c.docs from the sidecar <path>.docs and loads its offsets when bounded.
void load_text_documents(TaskConfig& c) {
    const std::string sidecar = c.path + ".docs";
    struct stat st {};
    const bool exists = !c.path.empty() && ::stat(sidecar.c_str(), &st) == 0;
    if (c.docs == TextDocs::Default) c.docs = exists ? TextDocs::Bounded : TextDocs::Packed;
    if (c.docs == TextDocs::Packed) return;
    ITTT_CHECK(exists, "task text: docs=bounded needs the document list '", sidecar, "' (one line per document: <byte offset><TAB><source path>)");
    c.document_offsets = std::make_shared<const std::vector<int64_t>>(load_document_offsets(sidecar, static_cast<int64_t>(c.text->size())));
}

// What a text config made without parse_task_config still lacks: its bytes, its document list.
void load_text_task(TaskConfig& c) {
    if (!c.text) c.text = load_text_file(c.path);
    if (c.docs == TextDocs::Default || (c.docs == TextDocs::Bounded && !c.document_offsets)) load_text_documents(c);
}
}  // namespace

TaskConfig parse_task_config(const std::string& name, const std::map<std::string, std::string>& options) {
    TaskConfig c;
    bool known = false;
    for (TaskKind k : {TaskKind::Induction, TaskKind::Mqar, TaskKind::TheoremProbe, TaskKind::Needle, TaskKind::Text})
        if (name == task_kind_name(k)) c.kind = k, known = true;
    if (!known) {
        std::string valid;
        for (const std::string& n : task_names()) valid += (valid.empty() ? "" : ", ") + n;
        fail(cat("unknown task '", excerpt(name), "' (valid: ", valid, ")"));
    }
    const char* t = task_kind_name(c.kind);
    const std::vector<TaskOptionInfo>& valid = task_options(c.kind);

    for (const auto& option : options) {
        const std::string& key = option.first;  // not a structured binding: lambdas below capture it (C++17, clang)
        const std::string& value = option.second;
        bool is_valid = std::any_of(valid.begin(), valid.end(), [&](const TaskOptionInfo& o) { return key == o.name; });
        ITTT_CHECK(is_valid, "task ", t, ": unknown option '", excerpt(key), "' (valid: ", join_names(valid), ")");
        auto integer = [&]() { return parse_int_option(t, key, value); };
        switch (c.kind) {
            case TaskKind::Induction:
                c.copy_length = integer();
                break;
            case TaskKind::Mqar:
                if (key == "pairs")
                    c.pairs = integer();
                else if (key == "gap")
                    c.gap = integer();
                else if (key == "spread")
                    c.spread = integer();
                else if (value == "random")
                    c.mqar_filler = Filler::Random;
                else if (value == "pad")
                    c.mqar_filler = Filler::Pad;
                else
                    fail(cat("task ", t, ": option filler: expected random or pad, found '", excerpt(value), "'"));
                break;
            case TaskKind::TheoremProbe:
                if (key == "chunk")
                    c.chunk = integer();
                else if (key == "window")
                    c.window = integer();
                else
                    c.pair_position = parse_int_or_random(t, key, value);
                break;
            case TaskKind::Needle:
                if (key == "keys")
                    c.keys = integer();
                else if (key == "values")
                    c.values = integer();
                else if (key == "queries")
                    c.queries = integer();
                else if (key == "depth")
                    c.depth = parse_int_or_random(t, key, value);
                else if (key == "pattern_length")
                    c.pattern_length = integer();
                else if (value == "pattern")
                    c.needle_filler = Filler::Pattern;
                else if (value == "random")
                    c.needle_filler = Filler::Random;
                else
                    fail(cat("task ", t, ": option filler: expected pattern or random, found '", excerpt(value), "'"));
                break;
            case TaskKind::Text:
                if (key == "path")
                    c.path = value;
                else if (key == "score_last")
                    c.score_last = integer();
                else if (key == "max_length")
                    c.max_length = integer();
                else if (value == "bounded")
                    c.docs = TextDocs::Bounded;
                else if (value == "packed")
                    c.docs = TextDocs::Packed;
                else
                    fail(cat("task ", t, ": option docs: expected bounded or packed, found '", excerpt(value), "'"));
                break;
        }
    }
    check_option_ranges(c);
    if (c.kind == TaskKind::Text) {
        c.text = load_text_file(c.path);
        load_text_documents(c);
    }
    return c;
}

// ---------------------------------------------------------------- examples

std::vector<int> Example::scored_positions() const {
    std::vector<int> p;
    for (size_t t = 0; t < targets.size(); ++t)
        if (targets[t] != IGNORE_TARGET) p.push_back(static_cast<int>(t));
    return p;
}

std::vector<Marker> Example::markers_of(MarkerKind kind) const {
    std::vector<Marker> m;
    for (const Marker& x : markers)
        if (x.kind == kind) m.push_back(x);
    return m;
}

namespace {

// A task writes the whole stream s_0 .. s_n and marks the positions t whose
// next token s_{t+1} is scored; finish() cuts it into tokens and targets.
struct Draft {
    int n;
    std::vector<int32_t> stream;  // n + 1
    std::vector<char> scored;     // n
    std::vector<Marker> markers;

    explicit Draft(int n_, int32_t fill = token::PAD)
        : n(n_), stream(static_cast<size_t>(n_) + 1, fill), scored(static_cast<size_t>(n_), 0) {}

    // Markers are for tokens the model reads; s_n is only ever a target.
    void mark(int position, MarkerKind kind, int index, int part = 0) {
        if (position < n) markers.push_back({position, kind, index, part});
    }

    Example finish() {
        Example e;
        e.tokens.assign(stream.begin(), stream.begin() + n);
        e.targets.assign(static_cast<size_t>(n), IGNORE_TARGET);
        for (int t = 0; t < n; ++t)
            if (scored[static_cast<size_t>(t)]) e.targets[static_cast<size_t>(t)] = stream[static_cast<size_t>(t) + 1];
        std::stable_sort(markers.begin(), markers.end(),
                         [](const Marker& a, const Marker& b) { return a.position < b.position; });
        e.markers = std::move(markers);
        return e;
    }
};

// The ordinary tokens split in two halves: keys below `middle`, values from it.
struct Halves {
    int32_t lower_begin, middle, upper_end;
    int lower_size() const { return middle - lower_begin; }
    int upper_size() const { return upper_end - middle; }
};
Halves halves(int vocab_size) {
    int ordinary = vocab_size - token::FIRST_ORDINARY;
    return {token::FIRST_ORDINARY, token::FIRST_ORDINARY + ordinary / 2, vocab_size};
}

// `count` distinct tokens from [begin, end), in random order (partial Fisher-Yates).
std::vector<int32_t> distinct_tokens(Rng& rng, int32_t begin, int32_t end, int count) {
    std::vector<int32_t> pool;
    pool.reserve(static_cast<size_t>(end - begin));
    for (int32_t v = begin; v < end; ++v) pool.push_back(v);
    for (int i = 0; i < count; ++i)
        std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(rng.randint(i, end - begin))]);
    pool.resize(static_cast<size_t>(count));
    return pool;
}

// Ordinary tokens with some excluded; rejection keeps the draw uniform over the rest.
struct FillerDraw {
    std::vector<char> banned;  // by token id
    int vocab_size;
    explicit FillerDraw(int vocab_size_) : banned(static_cast<size_t>(vocab_size_), 0), vocab_size(vocab_size_) {}
    void ban(int32_t t) { banned[static_cast<size_t>(t)] = 1; }
    int32_t operator()(Rng& rng) const {
        for (;;) {
            int32_t t = static_cast<int32_t>(rng.randint(token::FIRST_ORDINARY, vocab_size));
            if (!banned[static_cast<size_t>(t)]) return t;
        }
    }
};

void check_vocab(const char* task, int vocab_size, int ordinary_needed, const char* why) {
    ITTT_CHECK(vocab_size - token::FIRST_ORDINARY >= ordinary_needed, "task ", task, ": vocab_size=", vocab_size, " gives ",
               vocab_size - token::FIRST_ORDINARY, " ordinary tokens (ids ", token::FIRST_ORDINARY,
               "..vocab_size-1), need at least ", ordinary_needed, " (", why, ")");
}

Example make_induction(const TaskConfig& c, int V, int n, Rng& rng) {
    check_vocab("induction", V, 1, "for the random tokens");
    int m = c.copy_length > 0 ? c.copy_length : (n - 1) / 2;
    ITTT_CHECK(m >= 2 && 1 + 2 * m <= n, "task induction: copy_length=", m, (c.copy_length > 0 ? "" : " (automatic)"),
               " does not fit n=", n, ": [BOS] and two copies need 1 + 2*copy_length <= n with copy_length >= 2");
    Draft d(n);
    d.stream[0] = token::BOS;
    for (int i = 0; i < m; ++i) {
        int32_t r = static_cast<int32_t>(rng.randint(token::FIRST_ORDINARY, V));
        d.stream[static_cast<size_t>(1 + i)] = r;
        d.stream[static_cast<size_t>(1 + m + i)] = r;
        d.mark(1 + i, MarkerKind::FirstCopy, i);
        d.mark(1 + m + i, MarkerKind::SecondCopy, i);
    }
    // At the second r_i the next token r_{i+1} is predictable from the first copy.
    for (int i = 0; i + 1 < m; ++i) d.scored[static_cast<size_t>(1 + m + i)] = 1;
    return d.finish();
}

// Pairs sit at 2j, 2j+1 (or, with spread = S, anywhere inside pair j's span
// [floor(jS/D), floor((j+1)S/D))). The queries use 2-token slots (key, value) on
// a grid starting at 2D (or S), as in Zoology; the last slot's value may be s_n.
// Pair j's query must start at or after bound_j = max(start, value_j + gap), which
// grows with j (values come in pair order), so the allowed slots of later pairs are
// subsets of those of earlier pairs. Placing pairs from the last (most constrained)
// to the first, each uniformly among its free allowed slots, therefore never gets
// stuck when, for every j, at least D-j slots start at or after bound_j; that is
// what is checked, with each value at the latest place it can take, so whether a
// setting fits does not depend on the seed.
Example make_mqar(const TaskConfig& c, int V, int n, Rng& rng) {
    const int D = c.pairs;
    Halves h = halves(V);
    ITTT_CHECK(D <= h.lower_size(), "task mqar: pairs=", D, " needs ", D,
               " distinct keys from the lower half of the ordinary tokens, but vocab_size=", V, " gives only ", h.lower_size(),
               " (ids ", h.lower_begin, "..", h.middle - 1, ")");
    check_vocab("mqar", V, 2, "keys and values from two halves");
    const bool spread = c.spread > 0;
    const int start = spread ? c.spread : 2 * D;  // the first query slot
    const int slots = n + 1 >= start ? (n + 1 - start) / 2 : 0;
    if (spread)
        ITTT_CHECK(slots >= D, "task mqar: spread=", c.spread, " with pairs=", D, " does not fit n=", n,
                   ": the pairs' ", c.spread, " positions then D query-value slots need spread + 2*pairs <= n + 1 = ", n + 1,
                   " tokens");
    else
        ITTT_CHECK(slots >= D, "task mqar: pairs=", D, " does not fit n=", n,
                   ": D pairs then D query-value slots need 4*pairs <= n + 1 = ", n + 1, " tokens");
    // Pair j's span: its key and value lie in [span_begin(j), span_begin(j + 1)).
    auto span_begin = [&](int j) {
        return spread ? static_cast<int>(static_cast<int64_t>(j) * c.spread / D) : 2 * j;
    };
    auto first_slot_after = [&](int value_position) {  // the first slot at least gap after the value
        const int bound = std::max(start, value_position + c.gap);
        return (bound - start + 1) / 2;  // ceil((bound - start) / 2)
    };
    for (int j = 0; j < D; ++j) {
        const int latest_value = span_begin(j + 1) - 1;
        const int available = std::max(0, slots - first_slot_after(latest_value));
        ITTT_CHECK(available >= D - j, "task mqar: gap=", c.gap, " with pairs=", D, spread ? cat(" spread=", c.spread) : std::string(),
                   " does not fit n=", n, ": the queries of pairs ", j, "..", D - 1, " must start at position >= ",
                   std::max(start, latest_value + c.gap), " (gap after pair ", j, "'s value", spread ? " at the end of its span" : "",
                   "), where only ", available, " of the ", D - j, " query slots they need fit; lower gap or pairs",
                   spread ? " or spread" : "", ", or raise n");
    }

    std::vector<int32_t> keys = distinct_tokens(rng, h.lower_begin, h.middle, D);
    std::vector<int32_t> values = distinct_tokens(rng, h.middle, h.upper_end, D);
    std::vector<int> key_position(static_cast<size_t>(D));
    for (int j = 0; j < D; ++j)  // packed: no draw, so the packed layout's streams are unchanged
        key_position[static_cast<size_t>(j)] =
            spread ? static_cast<int>(rng.randint(span_begin(j), span_begin(j + 1) - 1)) : span_begin(j);
    std::vector<char> slot_used(static_cast<size_t>(slots), 0);
    std::vector<int> query_position(static_cast<size_t>(D));
    std::vector<int> free_slots;
    for (int j = D - 1; j >= 0; --j) {
        free_slots.clear();
        for (int s = first_slot_after(key_position[static_cast<size_t>(j)] + 1); s < slots; ++s)
            if (!slot_used[static_cast<size_t>(s)]) free_slots.push_back(s);
        int s = free_slots[static_cast<size_t>(rng.randint(0, static_cast<int64_t>(free_slots.size())))];
        slot_used[static_cast<size_t>(s)] = 1;
        query_position[static_cast<size_t>(j)] = start + 2 * s;
    }

    Draft d(n);
    std::vector<char> taken(static_cast<size_t>(n) + 1, 0);
    auto put = [&](int position, int32_t tok) {
        d.stream[static_cast<size_t>(position)] = tok;
        taken[static_cast<size_t>(position)] = 1;
    };
    for (int j = 0; j < D; ++j) {
        int32_t k = keys[static_cast<size_t>(j)], v = values[static_cast<size_t>(j)];
        int p = key_position[static_cast<size_t>(j)], q = query_position[static_cast<size_t>(j)];
        put(p, k);
        put(p + 1, v);
        put(q, k);
        put(q + 1, v);
        d.scored[static_cast<size_t>(q)] = 1;
        d.mark(p, MarkerKind::Key, j);
        d.mark(p + 1, MarkerKind::Value, j);
        d.mark(q, MarkerKind::Query, j);
        d.mark(q + 1, MarkerKind::Answer, j);
    }
    if (c.mqar_filler == Filler::Random) {
        FillerDraw draw(V);
        for (int32_t k : keys) draw.ban(k);  // a key in the filler would make a second, wrong "pair"
        for (int p = 0; p <= n; ++p)
            if (!taken[static_cast<size_t>(p)]) d.stream[static_cast<size_t>(p)] = draw(rng);
    }
    return d.finish();
}

// The theorem's setting: one (k*, v*) pair, then only filler until k* comes back
// as the last token read. v* must lie in a chunk before the query's, so the
// query's chunk sees the pair only through the fast weights, and the pair must be
// out of the attention window, so attention cannot fetch it directly.
Example make_theorem_probe(const TaskConfig& c, int V, int n, Rng& rng) {
    check_vocab("theorem", V, 3, "k*, v* and at least one filler token");
    const int query = n - 1;
    const int last_by_window = n - c.window - 4;                // filler v*+1 .. query-1 has n-p-3 > window tokens
    const int last_by_chunk = (query / c.chunk) * c.chunk - 2;  // v* = p+1 before the query's chunk start
    const int last = std::min(last_by_window, last_by_chunk);
    ITTT_CHECK(last >= 1, "task theorem: no place for k* v* with n=", n, ", chunk=", c.chunk, ", window=", c.window,
               ": k* must be at position >= 1 (after BOS), <= n - window - 4 = ", last_by_window,
               " (more than window filler tokens before the query at n-1) and <= ", last_by_chunk,
               " (v* in a chunk before the query's chunk); raise n or lower window/chunk");
    int p = c.pair_position;
    ITTT_CHECK(p == -1 || (p >= 1 && p <= last), "task theorem: pair_position=", p, " is outside the valid positions 1..", last,
               " for n=", n, ", chunk=", c.chunk, ", window=", c.window);
    if (p == -1) p = static_cast<int>(rng.randint(1, last + 1));

    Halves h = halves(V);
    int32_t k = static_cast<int32_t>(rng.randint(h.lower_begin, h.middle));
    int32_t v = static_cast<int32_t>(rng.randint(h.middle, h.upper_end));
    FillerDraw draw(V);
    draw.ban(k);
    draw.ban(v);
    Draft d(n);
    d.stream[0] = token::BOS;
    for (int t = 1; t <= n; ++t) d.stream[static_cast<size_t>(t)] = draw(rng);
    d.stream[static_cast<size_t>(p)] = k;
    d.stream[static_cast<size_t>(p + 1)] = v;
    d.stream[static_cast<size_t>(query)] = k;
    d.stream[static_cast<size_t>(n)] = v;
    d.scored[static_cast<size_t>(query)] = 1;
    d.mark(p, MarkerKind::Key, 0);
    d.mark(p + 1, MarkerKind::Value, 0);
    d.mark(query, MarkerKind::Query, 0);
    return d.finish();
}

// [BOS] haystack query_1 .. query_Q, each needle and query L+3 tokens long; the
// last query's last value is s_n. Needle 0 goes after round(depth% of F) of the
// F filler tokens; the others after a uniform number of filler tokens each.
Example make_needle(const TaskConfig& c, int V, int n, Rng& rng) {
    const int K = c.keys, L = c.values, Q = c.queries, N = L + 3;
    ITTT_CHECK(static_cast<int64_t>(K + Q) * N <= n, "task needle: keys=", K, ", queries=", Q, ", values=", L,
               " do not fit n=", n, ": [BOS], ", K, " needles and ", Q,
               " queries of values+3 tokens need n >= (keys+queries)*(values+3) = ", static_cast<int64_t>(K + Q) * N);
    Halves h = halves(V);
    ITTT_CHECK(K <= h.lower_size() && static_cast<int64_t>(K) * L <= h.upper_size(), "task needle: keys=", K, ", values=", L,
               " need ", K, " distinct keys from the lower half and ", static_cast<int64_t>(K) * L,
               " distinct values from the upper half of the ordinary tokens, but vocab_size=", V, " gives halves of ",
               h.lower_size(), " and ", h.upper_size());
    check_vocab("needle", V, K + K * L + 1, "keys, values and at least one filler token");

    const int haystack = n - Q * N;  // positions 1 .. haystack
    const int F = haystack - K * N;
    std::vector<int32_t> keys = distinct_tokens(rng, h.lower_begin, h.middle, K);
    std::vector<int32_t> values = distinct_tokens(rng, h.middle, h.upper_end, K * L);
    auto value = [&](int needle, int i) { return values[static_cast<size_t>(needle * L + i)]; };

    // (filler tokens before it, needle): ties keep needle 0 first, so its depth is exact.
    std::vector<std::pair<int, int>> order;
    order.push_back({c.depth >= 0 ? (c.depth * F + 50) / 100 : static_cast<int>(rng.randint(0, F + 1)), 0});
    for (int i = 1; i < K; ++i) order.push_back({static_cast<int>(rng.randint(0, F + 1)), i});
    std::sort(order.begin(), order.end());

    FillerDraw draw(V);
    for (int32_t k : keys) draw.ban(k);
    for (int32_t v : values) draw.ban(v);
    std::vector<int32_t> pattern;
    for (int i = 0; i < c.pattern_length; ++i) pattern.push_back(draw(rng));

    Draft d(n);
    d.stream[0] = token::BOS;
    int position = 1;
    size_t next_needle = 0;
    auto write_block = [&](int needle, bool is_query) {
        int start = position;
        d.stream[static_cast<size_t>(start)] = token::MAGIC;
        d.stream[static_cast<size_t>(start + 1)] = keys[static_cast<size_t>(needle)];
        d.stream[static_cast<size_t>(start + 2)] = token::IS;
        for (int i = 0; i < L; ++i) d.stream[static_cast<size_t>(start + 3 + i)] = value(needle, i);
        if (is_query) {
            for (int i = 0; i < L; ++i) d.scored[static_cast<size_t>(start + 2 + i)] = 1;  // IS, v_1 .. v_{L-1}
            d.mark(start + 1, MarkerKind::Query, needle);
            for (int i = 0; i < L; ++i) d.mark(start + 3 + i, MarkerKind::Answer, needle, i);
        } else {
            d.mark(start, MarkerKind::Needle, needle);
            d.mark(start + 1, MarkerKind::Key, needle);
            for (int i = 0; i < L; ++i) d.mark(start + 3 + i, MarkerKind::Value, needle, i);
        }
        position += N;
    };
    for (int f = 0; f <= F; ++f) {
        while (next_needle < order.size() && order[next_needle].first == f) write_block(order[next_needle++].second, false);
        if (f < F) {
            d.stream[static_cast<size_t>(position++)] =
                c.needle_filler == Filler::Pattern ? pattern[static_cast<size_t>(f % c.pattern_length)] : draw(rng);
        }
    }
    std::vector<int> queried;
    for (int i = 0; i < Q; ++i) queried.push_back(i);
    rng.shuffle(queried);
    for (int needle : queried) write_block(needle, true);
    return d.finish();
}

Example make_text(const TaskConfig& c, const std::vector<uint8_t>& bytes, int V, int n, Rng& rng) {
    ITTT_CHECK(V >= token::TEXT_VOCAB_SIZE, "task text: vocab_size=", V,
               " is too small for bytes: need >= ", token::TEXT_VOCAB_SIZE, " (byte b is token b + ", token::FIRST_ORDINARY, ")");
    const int64_t size = static_cast<int64_t>(bytes.size());
    const int span = c.max_length > 0 ? c.max_length : n;
    ITTT_CHECK(c.max_length == 0 || c.max_length >= n, "task text: max_length=", c.max_length, " is below n=", n);
    ITTT_CHECK(c.score_last <= n, "task text: score_last=", c.score_last, " is above n=", n);
    ITTT_CHECK(size >= static_cast<int64_t>(span) + 1, "task text: path '", c.path, "' has ", size, " bytes, need at least ",
               static_cast<int64_t>(span) + 1, " (", (c.max_length > 0 ? "max_length" : "n"),
               " tokens plus the byte after them)");
    // The window's end is drawn independently of n, so a longer context only adds bytes in front.
    int64_t end = rng.randint(static_cast<int64_t>(span) + 1, size + 1);
    int64_t start = end - (static_cast<int64_t>(n) + 1);
    Draft d(n);
    for (int t = 0; t <= n; ++t) d.stream[static_cast<size_t>(t)] = token::from_byte(bytes[static_cast<size_t>(start + t)]);
    int first_scored = c.score_last > 0 ? n - c.score_last : 0;
    for (int t = first_scored; t < n; ++t) d.scored[static_cast<size_t>(t)] = 1;
    Example e = d.finish();
    e.source_offset = start;
    if (c.docs == TextDocs::Bounded) {
        // Documents beginning at bytes start+1 .. start+n: position t = offset - start starts one
        // (t = n is the byte after the window), and position t-1 would predict its first byte
        // from the previous document: not scored.
        const std::vector<int64_t>& offsets = *c.document_offsets;
        e.document_starts = {0};
        for (auto it = std::upper_bound(offsets.begin(), offsets.end(), start); it != offsets.end() && *it <= start + n; ++it) {
            const int t = static_cast<int>(*it - start);
            if (t < n) e.document_starts.push_back(t);
            e.targets[static_cast<size_t>(t - 1)] = IGNORE_TARGET;
        }
    }
    return e;
}

}  // namespace

Example make_example(const TaskConfig& task, int vocab_size, int n, uint64_t seed, int b) {
    check_option_ranges(task);
    ITTT_CHECK(n >= 1, "make_batch: n must be >= 1, found ", n);
    ITTT_CHECK(vocab_size > token::FIRST_ORDINARY, "make_batch: vocab_size must be > ", token::FIRST_ORDINARY,
               " (ids 0..3 are PAD, BOS, MAGIC, IS), found ", vocab_size);
    Rng rng = Rng(seed).fork(static_cast<uint64_t>(b));
    switch (task.kind) {
        case TaskKind::Induction:
            return make_induction(task, vocab_size, n, rng);
        case TaskKind::Mqar:
            return make_mqar(task, vocab_size, n, rng);
        case TaskKind::TheoremProbe:
            return make_theorem_probe(task, vocab_size, n, rng);
        case TaskKind::Needle:
            return make_needle(task, vocab_size, n, rng);
        case TaskKind::Text: {
            TaskConfig loaded = task;
            load_text_task(loaded);
            return make_text(loaded, *loaded.text, vocab_size, n, rng);
        }
    }
    fail("make_example: unknown task kind");
}

Batch make_batch(const TaskConfig& task, int vocab_size, int B, int n, uint64_t seed) {
    ITTT_CHECK(B >= 1, "make_batch: B must be >= 1, found ", B);
    TaskConfig loaded = task;
    if (loaded.kind == TaskKind::Text) load_text_task(loaded);  // once, not per example
    Batch batch;
    batch.B = B;
    batch.n = n;
    for (int b = 0; b < B; ++b) {
        batch.examples.push_back(make_example(loaded, vocab_size, n, seed, b));
        const Example& e = batch.examples.back();
        batch.tokens.insert(batch.tokens.end(), e.tokens.begin(), e.tokens.end());
        batch.targets.insert(batch.targets.end(), e.targets.begin(), e.targets.end());
        if (loaded.kind == TaskKind::Text && loaded.docs == TextDocs::Bounded) batch.document_starts.push_back(e.document_starts);
    }
    return batch;
}

Tensor Batch::tokens_tensor() const { return Tensor::from_vector(tokens, {B, n}); }
Tensor Batch::targets_tensor() const { return Tensor::from_vector(targets, {B, n}); }

int64_t Batch::scored_count() const {
    return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t != IGNORE_TARGET; });
}

// ---------------------------------------------------------------- accuracy

Accuracy count_correct(const Batch& batch, const std::vector<int32_t>& predictions) {
    ITTT_CHECK(predictions.size() == batch.targets.size(), "count_correct: ", predictions.size(),
               " predictions, expected B*n = ", batch.B, "*", batch.n, " = ", batch.targets.size());
    Accuracy a;
    for (int b = 0; b < batch.B; ++b) {
        bool all_right = true;
        for (int t = 0; t < batch.n; ++t) {
            size_t i = static_cast<size_t>(b) * static_cast<size_t>(batch.n) + static_cast<size_t>(t);
            if (batch.targets[i] == IGNORE_TARGET) continue;
            ++a.scored;
            if (predictions[i] == batch.targets[i])
                ++a.correct;
            else
                all_right = false;
        }
        ++a.examples;
        if (all_right) ++a.examples_all_correct;
    }
    return a;
}

std::vector<int32_t> argmax_last_dim(const Tensor& logits) {
    ITTT_CHECK(logits.ndim() >= 1 && (logits.dtype() == DType::F32 || logits.dtype() == DType::F64),
               "argmax_last_dim: expected F32 or F64 logits (..., V), found ", logits.describe());
    const int64_t V = logits.dim(-1);
    ITTT_CHECK(V >= 1, "argmax_last_dim: last dim is empty in ", logits.describe());
    std::vector<double> x = logits.to_f64_vector();
    std::vector<int32_t> ids(x.size() / static_cast<size_t>(V));
    for (size_t r = 0; r < ids.size(); ++r) {
        const double* row = x.data() + r * static_cast<size_t>(V);
        int64_t best = 0;
        for (int64_t v = 1; v < V; ++v)
            if (row[v] > row[best]) best = v;
        ids[r] = static_cast<int32_t>(best);
    }
    return ids;
}

Accuracy count_correct(const Batch& batch, const Tensor& predictions_or_logits) {
    const Tensor& p = predictions_or_logits;
    if (p.dtype() == DType::I32) {
        ITTT_CHECK(p.shape() == Shape({batch.B, batch.n}), "count_correct: predictions are ", p.describe(), ", expected I32 (",
                   batch.B, ", ", batch.n, ")");
        return count_correct(batch, p.to_i32_vector());
    }
    ITTT_CHECK(p.ndim() == 3 && p.dim(0) == batch.B && p.dim(1) == batch.n, "count_correct: logits are ", p.describe(),
               ", expected (", batch.B, ", ", batch.n, ", V)");
    return count_correct(batch, argmax_last_dim(p));
}

}  // namespace ittt
