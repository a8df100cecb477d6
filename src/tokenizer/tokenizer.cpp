// tokenizer.cpp: the tokenizer.json reader and the encode / decode pipeline (tokenizer.h).
//
// Two libraries do the Unicode work, so that no Unicode table is written by hand here:
//   PCRE2 (UTF + UCP) runs the pre-tokenizer's split pattern: \p{L}, \p{N} and \s are real
//         Unicode classes there, and (?!\S) look-ahead and (?i:...) work as in Oniguruma,
//         the engine `tokenizers` uses;
//   ICU   does the normalizer's NFC / NFD / NFKC / NFKD.
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <cstdio>
#include <queue>
#include <unordered_map>

#include "io/atomic_file.h"
#include "io/json.h"
#include "runtime/error.h"

namespace ittt {

namespace {

// ---------------------------------------------------------------- UTF-8

// Length of the well-formed UTF-8 sequence at s[i], or 0 when it is ill-formed (Unicode
// Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF). `complete` is set
// to how many bytes formed a valid prefix, for the lossy decoder.
size_t utf8_sequence(const std::string& s, size_t i, size_t* valid_prefix = nullptr) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        if (valid_prefix) *valid_prefix = 0;
        return 0;
    }
    size_t k = 1;
    for (; k < need && i + k < s.size(); ++k) {
        const unsigned char b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    if (valid_prefix) *valid_prefix = k;
    return k == need ? need : 0;
}

uint32_t utf8_decode_at(const std::string& s, size_t i, size_t len) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (len == 1) return c;
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return cp;
}

void require_utf8(const std::string& s, const std::string& what) {
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence(s, i);
        if (n == 0) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[i]));
            fail(cat(what, " is not valid UTF-8: byte ", i, " (", hex, ") does not start a well-formed character"));
        }
        i += n;
    }
}

std::string quoted(const std::string& s) {
    return cat("'", excerpt(s, 40), "'");
}

// ---------------------------------------------------------------- byte level

// GPT-2's reversible map from bytes to printable characters: the printable Latin-1 bytes
// ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves, the other 68 bytes
// (controls, space, 0x7F-0xA0, 0xAD) for U+0100.. in byte order. So a space is U+0120 'Ġ'
// and a newline U+010A 'Ċ'. Arithmetic on byte values, not a Unicode table.
struct ByteLevelTable {
    uint32_t to_char[256];
    std::unordered_map<uint32_t, unsigned char> to_byte;
    ByteLevelTable() {
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            to_char[b] = printable ? static_cast<uint32_t>(b) : next++;
            to_byte[to_char[b]] = static_cast<unsigned char>(b);
        }
    }
};
const ByteLevelTable& byte_level() {
    static const ByteLevelTable table;
    return table;
}

std::string bytes_to_byte_level(const std::string& s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) append_utf8(out, byte_level().to_char[c]);
    return out;
}

// The ByteLevel decoder on one token: its characters back to bytes, or, when a character
// is not one of the 256 (an added token such as "<｜end▁of▁sentence｜>"), the token's own
// UTF-8, as `tokenizers` does.
std::string byte_level_to_bytes(const std::string& token) {
    std::string out;
    for (size_t i = 0; i < token.size();) {
        size_t n = utf8_sequence(token, i);
        if (n == 0) return token;
        auto it = byte_level().to_byte.find(utf8_decode_at(token, i, n));
        if (it == byte_level().to_byte.end()) return token;
        out += static_cast<char>(it->second);
        i += n;
    }
    return out;
}

// ---------------------------------------------------------------- PCRE2

// Oniguruma, the engine `tokenizers` runs split patterns on, reads \s as the Unicode
// White_Space property (25 characters); PCRE2's \s with UCP also takes U+180E (Mongolian
// vowel separator, a space before Unicode 6.3). Writing the property out makes the two
// agree; \p{...} is valid inside a class too: [^\s\p{L}] becomes [^\p{White_Space}\p{L}].
// Everything else passes through; \Q...\E quotes stay verbatim.
std::string onig_classes_for_pcre2(const std::string& p) {
    std::string out;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] != '\\' || i + 1 == p.size()) {
            out += p[i];
            continue;
        }
        const char c = p[++i];
        if (c == 's') out += "\\p{White_Space}";
        else if (c == 'S') out += "\\P{White_Space}";
        else if (c == 'Q') {
            size_t end = p.find("\\E", i);
            end = end == std::string::npos ? p.size() : end + 2;
            out += p.substr(i - 1, end - (i - 1));
            i = end - 1;
        } else {
            out += '\\';
            out += c;
        }
    }
    return out;
}

class Regex {
public:
    Regex(const std::string& source_pattern, bool literal, const std::string& where) {
        const std::string pattern = literal ? source_pattern : onig_classes_for_pcre2(source_pattern);
        int err = 0;
        PCRE2_SIZE offset = 0;
        // UCP gives \s, \w, \d their Unicode meaning; a literal has no classes (and PCRE2 refuses the pair).
        uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err, &offset, nullptr);
        if (!code_) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            fail(cat(where, ": the pattern does not compile with PCRE2 at offset ", offset,
                     pattern == source_pattern ? std::string() : cat(" of ", quoted(pattern)), ": ", reinterpret_cast<char*>(msg)));
        }
        pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // a speed-up only: without JIT the interpreter runs
    }
    ~Regex() { pcre2_code_free(code_); }
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Every match [begin, end) left to right, as Oniguruma's find_iter in `tokenizers`
    // yields them: a search resumes where the last match ended; an empty match right
    // where the previous one ended is skipped by moving one character on.
    std::vector<std::pair<size_t, size_t>> find_all(const std::string& s) const {
        std::vector<std::pair<size_t, size_t>> out;
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
        size_t start = 0;
        bool have_last = false;
        size_t last_end = 0;
        while (start <= s.size()) {
            int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                pcre2_match_data_free(md);
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                fail(cat("tokenizer: the split pattern failed on the text: ", reinterpret_cast<char*>(msg)));
            }
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
            size_t b = ov[0], e = ov[1];
            if (b == e && have_last && last_end == e) {
                if (start >= s.size()) break;
                size_t n = utf8_sequence(s, start);
                start += n ? n : 1;
                continue;
            }
            out.emplace_back(b, e);
            start = e;
            have_last = true;
            last_end = e;
        }
        pcre2_match_data_free(md);
        return out;
    }

private:
    pcre2_code* code_ = nullptr;
};

// ---------------------------------------------------------------- ICU

enum class NormForm { NFC, NFD, NFKC, NFKD };
const char* norm_name(NormForm f) {
    switch (f) {
        case NormForm::NFC: return "NFC";
        case NormForm::NFD: return "NFD";
        case NormForm::NFKC: return "NFKC";
        case NormForm::NFKD: return "NFKD";
    }
    return "?";
}

std::string normalize(const std::string& s, NormForm form) {
    if (s.empty()) return s;
    UErrorCode st = U_ZERO_ERROR;
    const UNormalizer2* n = form == NormForm::NFC    ? unorm2_getNFCInstance(&st)
                            : form == NormForm::NFD  ? unorm2_getNFDInstance(&st)
                            : form == NormForm::NFKC ? unorm2_getNFKCInstance(&st)
                                                     : unorm2_getNFKDInstance(&st);
    ITTT_CHECK(U_SUCCESS(st), "tokenizer: ICU has no ", norm_name(form), " normalizer: ", u_errorName(st));
    // UTF-8 -> UTF-16 (ICU's working form) -> normalized -> UTF-8.
    std::u16string in(s.size(), u'\0');
    int32_t len = 0;
    u_strFromUTF8(reinterpret_cast<UChar*>(in.data()), static_cast<int32_t>(in.size()), &len, s.data(),
                  static_cast<int32_t>(s.size()), &st);
    ITTT_CHECK(U_SUCCESS(st), "tokenizer: ICU could not read the text as UTF-8: ", u_errorName(st));
    in.resize(static_cast<size_t>(len));
    if (unorm2_isNormalized(n, reinterpret_cast<const UChar*>(in.data()), len, &st) && U_SUCCESS(st)) return s;
    st = U_ZERO_ERROR;
    std::u16string out(in.size() * 3 + 16, u'\0');  // NFKD expands at most 18x; retried below if short
    int32_t out_len = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), len, reinterpret_cast<UChar*>(out.data()),
                                       static_cast<int32_t>(out.size()), &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
        st = U_ZERO_ERROR;
        out.assign(static_cast<size_t>(out_len), u'\0');
        out_len = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), len, reinterpret_cast<UChar*>(out.data()), out_len, &st);
    }
    ITTT_CHECK(U_SUCCESS(st), "tokenizer: ICU ", norm_name(form), " failed: ", u_errorName(st));
    std::string result(static_cast<size_t>(out_len) * 3, '\0');
    int32_t bytes = 0;
    u_strToUTF8(result.data(), static_cast<int32_t>(result.size()), &bytes, reinterpret_cast<const UChar*>(out.data()), out_len, &st);
    ITTT_CHECK(U_SUCCESS(st), "tokenizer: ICU could not write UTF-8: ", u_errorName(st));
    result.resize(static_cast<size_t>(bytes));
    return result;
}

// ---------------------------------------------------------------- pipeline pieces

// How a Split keeps its pattern's matches (the names of `tokenizers`' SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
const char* const kBehaviorNames[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};

struct PreTokenizerStep {
    enum class Kind { Split, ByteLevel } kind = Kind::Split;
    std::shared_ptr<const Regex> regex;  // Split: the pattern; ByteLevel with use_regex: GPT-2's
    std::string pattern_text;            // for describe()
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;       // ByteLevel
};

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool special = false, normalized = false;
};

struct Span {
    size_t begin, end;
    bool flag;  // a pattern match (find_matches), or "removed" (after the behaviour)
};

// The pattern's matches and the gaps between them, covering s (find_matches in `tokenizers`).
std::vector<Span> find_matches(const Regex& re, const std::string& s) {
    if (s.empty()) return {{0, 0, false}};
    std::vector<Span> out;
    size_t prev = 0;
    for (auto [b, e] : re.find_all(s)) {
        if (prev != b) out.push_back({prev, b, false});
        out.push_back({b, e, true});
        prev = e;
    }
    if (prev != s.size()) out.push_back({prev, s.size(), false});
    return out;
}

// Applies a SplitDelimiterBehavior: which spans become pieces and which are dropped.
std::vector<Span> apply_behavior(std::vector<Span> m, SplitBehavior b) {
    std::vector<Span> out;
    switch (b) {
        case SplitBehavior::Isolated:
            for (Span& s : m) out.push_back({s.begin, s.end, false});
            return out;
        case SplitBehavior::Removed:
            return m;  // flag = matched = removed
        case SplitBehavior::Contiguous: {
            bool previous = false;
            for (const Span& s : m) {
                if (s.flag == previous && !out.empty()) out.back().end = s.end;
                else out.push_back({s.begin, s.end, false});
                previous = s.flag;
            }
            return out;
        }
        case SplitBehavior::MergedWithPrevious: {
            bool previous = false;
            for (const Span& s : m) {
                if (s.flag && !previous && !out.empty()) out.back().end = s.end;
                else out.push_back({s.begin, s.end, false});
                previous = s.flag;
            }
            return out;
        }
        case SplitBehavior::MergedWithNext: {
            bool previous = false;
            for (auto it = m.rbegin(); it != m.rend(); ++it) {
                if (it->flag && !previous && !out.empty()) out.back().begin = it->begin;
                else out.push_back({it->begin, it->end, false});
                previous = it->flag;
            }
            std::reverse(out.begin(), out.end());
            return out;
        }
    }
    return out;
}

// GPT-2's pattern, which ByteLevel applies when use_regex is true.
const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

// ---------------------------------------------------------------- the tokenizer

struct Tokenizer::Impl {
    std::string source;
    std::vector<NormForm> normalizers;
    std::vector<PreTokenizerStep> pre;
    std::unordered_map<std::string, int32_t> vocab;                       // the model's tokens
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;     // (left, right) -> (rank, merged id)
    size_t merge_count = 0;
    bool ignore_merges = false, fuse_unk = false;
    int32_t unk_id = -1;
    std::vector<AddedToken> added;                  // in file order
    std::vector<std::string> id_to_token;           // holes are empty with has_id false
    std::vector<bool> has_id, special;
    std::string decoder_problem;                    // non-empty: decode() refuses with this
    std::string description;

    // Splits text on the added tokens of one kind (normalized or not): leftmost match,
    // the longest at that position (`tokenizers` uses Aho-Corasick, LeftmostLongest).
    // Returns (text piece, -1) and (content, id) pairs in order.
    std::vector<std::pair<std::string, int32_t>> split_added(const std::string& text, bool normalized) const {
        std::vector<std::pair<std::string, int32_t>> out;
        size_t piece = 0;
        for (size_t i = 0; i < text.size();) {
            const AddedToken* best = nullptr;
            for (const AddedToken& t : added) {
                if (t.normalized != normalized || t.content.size() > text.size() - i) continue;
                if ((!best || t.content.size() > best->content.size()) && text.compare(i, t.content.size(), t.content) == 0) best = &t;
            }
            if (!best) {
                ++i;
                continue;
            }
            if (piece < i) out.emplace_back(text.substr(piece, i - piece), -1);
            out.emplace_back(best->content, best->id);
            i += best->content.size();
            piece = i;
        }
        if (piece < text.size()) out.emplace_back(text.substr(piece), -1);
        return out;
    }

    std::vector<std::string> pre_tokenize(const std::string& text) const {
        std::vector<std::string> pieces{text};
        for (const PreTokenizerStep& step : pre) {
            std::vector<std::string> next;
            for (std::string& p : pieces) {
                if (step.kind == PreTokenizerStep::Kind::ByteLevel) {
                    if (step.add_prefix_space && !p.empty() && p[0] != ' ') p.insert(p.begin(), ' ');
                    if (step.regex) {
                        for (const Span& s : find_matches(*step.regex, p))
                            if (s.end > s.begin) next.push_back(bytes_to_byte_level(p.substr(s.begin, s.end - s.begin)));
                    } else if (!p.empty()) {
                        next.push_back(bytes_to_byte_level(p));
                    }
                    continue;
                }
                std::vector<Span> m = find_matches(*step.regex, p);
                if (step.invert)
                    for (Span& s : m) s.flag = !s.flag;
                for (const Span& s : apply_behavior(std::move(m), step.behavior))
                    if (!s.flag && s.end > s.begin) next.push_back(p.substr(s.begin, s.end - s.begin));
            }
            pieces = std::move(next);
        }
        return pieces;
    }

    // BPE on one pre-token: characters to ids, then merges lowest rank first, leftmost
    // first among equal ranks (the order of `tokenizers`' Word::merge_all, whose queue
    // holds (rank, position) pairs and drops entries a previous merge made stale).
    void bpe(const std::string& word, std::vector<int32_t>& out) const {
        if (ignore_merges) {
            auto it = vocab.find(word);
            if (it != vocab.end()) {
                out.push_back(it->second);
                return;
            }
        }
        struct Symbol {
            int32_t id;
            int prev, next;
            bool alive;
        };
        std::vector<Symbol> sym;
        bool pending_unk = false;
        auto flush_unk = [&] {
            if (!pending_unk) return;
            sym.push_back({unk_id, 0, 0, true});
            pending_unk = false;
        };
        for (size_t i = 0; i < word.size();) {
            size_t n = utf8_sequence(word, i);
            if (n == 0) n = 1;  // cannot happen: pieces are valid UTF-8
            auto it = vocab.find(word.substr(i, n));
            if (it != vocab.end()) {
                flush_unk();
                sym.push_back({it->second, 0, 0, true});
            } else {
                ITTT_CHECK(unk_id >= 0, source, ": the character ", quoted(word.substr(i, n)), " (in the pre-token ", quoted(word),
                           ") is not in the vocabulary and the model has no unk_token (`tokenizers` would drop it silently)");
                if (pending_unk && !fuse_unk) flush_unk();
                pending_unk = true;
            }
            i += n;
        }
        flush_unk();
        const int count = static_cast<int>(sym.size());
        for (int i = 0; i < count; ++i) {
            sym[static_cast<size_t>(i)].prev = i - 1;
            sym[static_cast<size_t>(i)].next = i + 1 < count ? i + 1 : -1;
        }
        struct Candidate {
            int32_t rank;
            int pos;
            int32_t merged;
            bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
        };
        std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
        auto push_pair = [&](int pos) {
            if (pos < 0) return;
            int nx = sym[static_cast<size_t>(pos)].next;
            if (nx < 0) return;
            auto m = merges.find(pair_key(sym[static_cast<size_t>(pos)].id, sym[static_cast<size_t>(nx)].id));
            if (m != merges.end()) queue.push({m->second.first, pos, m->second.second});
        };
        for (int i = 0; i + 1 < count; ++i) push_pair(i);
        while (!queue.empty()) {
            Candidate top = queue.top();
            queue.pop();
            Symbol& left = sym[static_cast<size_t>(top.pos)];
            if (!left.alive || left.next < 0) continue;
            Symbol& right = sym[static_cast<size_t>(left.next)];
            auto m = merges.find(pair_key(left.id, right.id));
            if (m == merges.end() || m->second.second != top.merged) continue;  // stale: a neighbour changed
            left.id = top.merged;
            right.alive = false;
            left.next = right.next;
            if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
            push_pair(left.prev);
            push_pair(top.pos);
        }
        for (const Symbol& s : sym)
            if (s.alive) out.push_back(s.id);
    }

    static uint64_t pair_key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }

    std::string normalized(std::string s) const {
        for (NormForm f : normalizers) s = normalize(s, f);
        return s;
    }

    void encode_text(const std::string& text, std::vector<int32_t>& out) const {
        for (const std::string& word : pre_tokenize(text)) bpe(word, out);
    }
};

namespace {

using Impl = Tokenizer::Impl;

// Refuses any member of `j` that is not listed: a setting this reader does not know could
// change the ids, and ignoring it would give different ids without a word.
void only_fields(const Json& j, std::initializer_list<const char*> known) {
    for (const Json::Member& m : j.as_object()) {
        bool ok = false;
        for (const char* k : known) ok |= m.first == k;
        if (!ok) {
            std::string list;
            for (const char* k : known) list += cat(list.empty() ? "" : ", ", k);
            fail(cat(j.where(), ": unknown field '", excerpt(m.first), "' (this reader knows ", list, ")"));
        }
    }
}

bool bool_or(const Json& j, const char* key, bool fallback) {
    const Json* v = j.find(key);
    return v && !v->is_null() ? v->as_bool() : fallback;
}

std::string type_of(const Json& j) { return j.at("type").as_string(); }

[[noreturn]] void unsupported(const Json& j, const std::string& what, const std::string& supported) {
    fail(cat(j.where(), ": ", what, " is not supported (supported: ", supported, ")"));
}

void parse_normalizer(Impl& t, const Json& j) {
    if (j.is_null()) return;
    const std::string type = type_of(j);
    if (type == "Sequence") {
        only_fields(j, {"type", "normalizers"});
        for (const Json& n : j.at("normalizers").as_array()) parse_normalizer(t, n);
        return;
    }
    only_fields(j, {"type"});
    if (type == "NFC") t.normalizers.push_back(NormForm::NFC);
    else if (type == "NFD") t.normalizers.push_back(NormForm::NFD);
    else if (type == "NFKC") t.normalizers.push_back(NormForm::NFKC);
    else if (type == "NFKD") t.normalizers.push_back(NormForm::NFKD);
    else unsupported(j, cat("normalizer '", excerpt(type), "'"), "NFC, NFD, NFKC, NFKD, a Sequence of them, or null");
}

void parse_pre_tokenizer(Impl& t, const Json& j) {
    if (j.is_null()) return;
    const std::string type = type_of(j);
    if (type == "Sequence") {
        only_fields(j, {"type", "pretokenizers"});
        for (const Json& p : j.at("pretokenizers").as_array()) parse_pre_tokenizer(t, p);
        return;
    }
    PreTokenizerStep step;
    if (type == "ByteLevel") {
        // trim_offsets changes only the offsets `tokenizers` reports, never the ids.
        only_fields(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
        step.kind = PreTokenizerStep::Kind::ByteLevel;
        step.add_prefix_space = bool_or(j, "add_prefix_space", true);  // the defaults of `tokenizers`
        if (bool_or(j, "use_regex", true)) {
            step.regex = std::make_shared<Regex>(kGpt2Pattern, false, j.where() + " (GPT-2 pattern)");
            step.pattern_text = kGpt2Pattern;
        }
    } else if (type == "Split") {
        only_fields(j, {"type", "pattern", "behavior", "invert"});
        const Json& pattern = j.at("pattern");
        only_fields(pattern, {"Regex", "String"});
        ITTT_CHECK(pattern.size() == 1, pattern.where(), ": expected {\"Regex\": ...} or {\"String\": ...}");
        const bool literal = pattern.contains("String");
        step.pattern_text = pattern.at(literal ? "String" : "Regex").as_string();
        step.regex = std::make_shared<Regex>(step.pattern_text, literal, pattern.where());
        const std::string behavior = j.at("behavior").as_string();
        bool found = false;
        for (int b = 0; b < 5; ++b)
            if (behavior == kBehaviorNames[b]) step.behavior = static_cast<SplitBehavior>(b), found = true;
        if (!found)
            unsupported(j.at("behavior"), cat("behavior '", excerpt(behavior), "'"),
                        "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
        step.invert = bool_or(j, "invert", false);
    } else {
        unsupported(j, cat("pre-tokenizer '", excerpt(type), "'"), "Split, ByteLevel, a Sequence of them, or null");
    }
    t.pre.push_back(std::move(step));
}

// The id's place in id_to_token, grown to hold it. Ids are dense in every real file
// (Qwen's run to 151668); one far beyond any vocabulary is a broken file, not 8 GB to allocate.
size_t id_slot(Impl& t, int32_t id, const Json& where) {
    constexpr int32_t kMaxId = 1 << 24;
    ITTT_CHECK(id >= 0 && id < kMaxId, where.where(), ": token id ", id, " is outside [0, ", kMaxId, ")");
    const size_t slot = static_cast<size_t>(id);
    if (slot >= t.id_to_token.size()) {
        t.id_to_token.resize(slot + 1);
        t.has_id.resize(slot + 1, false);
    }
    return slot;
}

void parse_model(Impl& t, const Json& j) {
    const std::string type = type_of(j);
    if (type != "BPE") unsupported(j, cat("model '", excerpt(type), "'"), "BPE");
    only_fields(j, {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
                    "byte_fallback", "ignore_merges", "vocab", "merges"});
    const Json* dropout = j.find("dropout");
    if (dropout && !dropout->is_null() && dropout->as_number() != 0)
        unsupported(*dropout, cat("dropout ", dropout->as_number(), " (random merges at encode time)"), "null or 0");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const Json* v = j.find(affix);
        if (v && !v->is_null() && !v->as_string().empty()) unsupported(*v, cat("a non-empty ", affix), "null or \"\"");
    }
    if (bool_or(j, "byte_fallback", false))
        unsupported(j.at("byte_fallback"), "byte_fallback (SentencePiece-style <0x..> tokens)", "false");
    t.ignore_merges = bool_or(j, "ignore_merges", false);
    t.fuse_unk = bool_or(j, "fuse_unk", false);

    for (const Json::Member& m : j.at("vocab").as_object()) {
        const int32_t id = m.second.as_int();
        const size_t slot = id_slot(t, id, m.second);
        t.vocab.emplace(m.first, id);
        ITTT_CHECK(!t.has_id[slot], m.second.where(), ": token id ", id, " is also the id of ", quoted(t.id_to_token[slot]));
        t.id_to_token[slot] = m.first;
        t.has_id[slot] = true;
    }
    const Json* unk = j.find("unk_token");
    if (unk && !unk->is_null()) {
        auto it = t.vocab.find(unk->as_string());
        ITTT_CHECK(it != t.vocab.end(), unk->where(), ": unk_token ", quoted(unk->as_string()), " is not in the vocabulary");
        t.unk_id = it->second;
    }

    // Merges come as ["a", "b"] (tokenizers >= 0.20) or "a b" (older files).
    const std::vector<Json>& merges = j.at("merges").as_array();
    t.merges.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const Json& m = merges[rank];
        std::string a, b;
        if (m.is_string()) {
            const std::string& s = m.as_string();
            size_t space = s.find(' ');
            ITTT_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, m.where(),
                       ": expected \"left right\" (two tokens and one space), found ", quoted(s));
            a = s.substr(0, space);
            b = s.substr(space + 1);
        } else {
            ITTT_CHECK(m.is_array() && m.size() == 2, m.where(), ": expected a merge as [\"left\", \"right\"] or \"left right\"");
            a = m.at(0).as_string();
            b = m.at(1).as_string();
        }
        auto ia = t.vocab.find(a), ib = t.vocab.find(b), im = t.vocab.find(a + b);
        for (auto [it, name] : {std::make_pair(ia, &a), std::make_pair(ib, &b)})
            ITTT_CHECK(it != t.vocab.end(), m.where(), ": merge token ", quoted(*name), " is not in the vocabulary");
        ITTT_CHECK(im != t.vocab.end(), m.where(), ": the merged token ", quoted(a + b), " is not in the vocabulary");
        // A pair listed twice keeps its first (lowest) rank, as in `tokenizers`.
        t.merges.emplace(Impl::pair_key(ia->second, ib->second), std::make_pair(static_cast<int32_t>(rank), im->second));
    }
    t.merge_count = merges.size();
}

void parse_added_tokens(Impl& t, const Json& j) {
    for (const Json& a : j.as_array()) {
        only_fields(a, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
        AddedToken tok;
        tok.id = a.at("id").as_int();
        tok.content = a.at("content").as_string();
        ITTT_CHECK(!tok.content.empty(), a.at("content").where(), ": an added token cannot be empty");
        for (const char* flag : {"single_word", "lstrip", "rstrip"})
            if (bool_or(a, flag, false)) unsupported(a.at(flag), cat("added token ", quoted(tok.content), " with ", flag, " true"), "false");
        tok.special = bool_or(a, "special", false);
        tok.normalized = bool_or(a, "normalized", !tok.special);
        const size_t id = id_slot(t, tok.id, a.at("id"));
        ITTT_CHECK(!t.has_id[id] || t.id_to_token[id] == tok.content, a.at("id").where(), ": added token ", quoted(tok.content),
                   " has id ", tok.id, ", which the vocabulary gives to ", quoted(t.id_to_token[id]));
        t.id_to_token[id] = tok.content;
        t.has_id[id] = true;
        t.added.push_back(tok);
    }
    t.special.assign(t.id_to_token.size(), false);
    for (AddedToken& tok : t.added) {
        t.special[static_cast<size_t>(tok.id)] = tok.special;
        if (tok.normalized) tok.content = t.normalized(tok.content);  // matched against normalized text
    }
}

void parse_post_processor(const Json& j) {
    if (j.is_null()) return;
    const std::string type = type_of(j);
    // ByteLevel as a post-processor only trims offsets; it adds no ids.
    if (type != "ByteLevel") unsupported(j, cat("post_processor '", excerpt(type), "' (it would add ids such as BOS)"), "ByteLevel or null");
}

void parse_decoder(Impl& t, const Json& j) {
    if (!j.is_null() && type_of(j) == "ByteLevel") return;
    t.decoder_problem = cat(j.where(), ": decoder ",
                            j.is_null() ? std::string("null") : quoted(type_of(j)), " is not supported (supported: ByteLevel)");
}

}  // namespace

Tokenizer Tokenizer::parse(const std::string& json_text, const std::string& source) {
    Json root = Json::parse(json_text, source);
    auto t = std::make_shared<Impl>();
    t->source = source;
    only_fields(root, {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor",
                       "decoder", "model"});
    for (const char* k : {"truncation", "padding"}) {
        const Json* v = root.find(k);
        if (v && !v->is_null()) unsupported(*v, cat(k, " settings (they change encode's output length)"), "null");
    }
    parse_normalizer(*t, root.find("normalizer") ? root.at("normalizer") : Json());
    parse_pre_tokenizer(*t, root.find("pre_tokenizer") ? root.at("pre_tokenizer") : Json());
    parse_model(*t, root.at("model"));
    parse_added_tokens(*t, root.find("added_tokens") ? root.at("added_tokens") : Json::array());
    parse_post_processor(root.find("post_processor") ? root.at("post_processor") : Json());
    if (root.find("decoder")) parse_decoder(*t, root.at("decoder"));
    else t->decoder_problem = cat(source, ": there is no decoder (supported: ByteLevel)");

    int specials = 0;
    for (const AddedToken& a : t->added) specials += a.special;
    std::string norm;
    for (NormForm f : t->normalizers) norm += cat(norm.empty() ? "" : "+", norm_name(f));
    std::string pre;
    for (const PreTokenizerStep& s : t->pre)
        pre += cat(pre.empty() ? "" : " + ",
                   s.kind == PreTokenizerStep::Kind::ByteLevel ? std::string(s.regex ? "ByteLevel(regex)" : "ByteLevel")
                                                               : cat("Split(", kBehaviorNames[static_cast<int>(s.behavior)],
                                                                     s.invert ? ", inverted" : "", ")"));
    t->description = cat("byte-level BPE, ", t->vocab.size(), " tokens, ", t->merge_count, " merges, ", t->added.size(),
                         " added tokens (", specials, " special), normalizer ", norm.empty() ? "none" : norm, ", pre-tokenizer ",
                         pre.empty() ? "none" : pre);
    Tokenizer out;
    out.impl_ = std::move(t);
    return out;
}

Tokenizer Tokenizer::load(const std::string& path) { return parse(read_file(path), path); }

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
    const Impl& t = *impl_;
    require_utf8(text, "tokenizer: the text");
    std::vector<int32_t> ids;
    for (auto& [raw, raw_id] : t.split_added(text, false)) {
        if (raw_id >= 0) {
            ids.push_back(raw_id);
            continue;
        }
        for (auto& [piece, id] : t.split_added(t.normalized(raw), true)) {
            if (id >= 0) ids.push_back(id);
            else t.encode_text(piece, ids);
        }
    }
    return ids;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
    const Impl& t = *impl_;
    ITTT_CHECK(t.decoder_problem.empty(), t.decoder_problem);
    std::string out;
    for (int32_t id : ids) {
        const std::string& tok = token(id);
        if (skip_special_tokens && t.special[static_cast<size_t>(id)]) continue;
        out += byte_level_to_bytes(tok);
    }
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
    return utf8_lossy(decode_bytes(ids, skip_special_tokens));
}

int Tokenizer::vocab_size() const { return static_cast<int>(impl_->id_to_token.size()); }

bool Tokenizer::has_id(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < impl_->has_id.size() && impl_->has_id[static_cast<size_t>(id)];
}

const std::string& Tokenizer::token(int32_t id) const {
    const Impl& t = *impl_;
    ITTT_CHECK(has_id(id), t.source, ": token id ", id, " is not in the vocabulary (ids run over [0, ", t.id_to_token.size(), "))");
    return t.id_to_token[static_cast<size_t>(id)];
}

int32_t Tokenizer::token_id(const std::string& token) const {
    for (const AddedToken& a : impl_->added)
        if (a.content == token) return a.id;
    auto it = impl_->vocab.find(token);
    return it == impl_->vocab.end() ? -1 : it->second;
}

bool Tokenizer::is_special(int32_t id) const {
    token(id);  // range check
    return impl_->special[static_cast<size_t>(id)];
}

std::string Tokenizer::describe() const { return impl_->description; }

std::string utf8_lossy(const std::string& bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        size_t valid = 0, n = utf8_sequence(bytes, i, &valid);
        if (n > 0) {
            out.append(bytes, i, n);
            i += n;
        } else {
            out += "\xEF\xBF\xBD";  // U+FFFD for the maximal subpart: the lead byte and its valid continuations
            i += std::max<size_t>(valid, 1);
        }
    }
    return out;
}

}  // namespace ittt
