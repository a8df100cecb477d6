#include "io/json.h"

#include <charconv>
#include <cmath>
#include <unordered_set>

#include "runtime/error.h"

namespace ittt {

namespace {

// 2^53: every integer up to here is exact in a double, none much beyond it is.
constexpr double kMaxExactInteger = 9007199254740992.0;
constexpr int kMaxDepth = 256;  // deeper input is refused instead of overflowing the stack

std::string number_text(double x) {
    char buf[64];
    std::to_chars_result r;
    if (x == std::trunc(x) && std::fabs(x) <= kMaxExactInteger) {
        if (x == 0 && std::signbit(x)) return "-0";
        r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(x));
    } else {
        // Shortest text that reads back to the same double, locale-free.
        r = std::to_chars(buf, buf + sizeof buf, x);
    }
    return std::string(buf, r.ptr);
}

// The length of the well-formed UTF-8 sequence starting at s[i] (Unicode's
// table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF), or 0
// when there is none; then *subpart is the length of the maximal ill-formed
// subpart there (the lead byte and the continuation bytes that fit it).
size_t utf8_sequence(const std::string& s, size_t i, size_t* subpart) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    int extra = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the first continuation byte
    if (c >= 0xC2 && c <= 0xDF) extra = 1;
    else if (c >= 0xE0 && c <= 0xEF) extra = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) extra = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    *subpart = 1;
    if (extra == 0) return 0;
    for (int k = 1; k <= extra; ++k) {
        const size_t at = i + static_cast<size_t>(k);
        const unsigned char d = at < s.size() ? static_cast<unsigned char>(s[at]) : 0;
        if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return 0;
        *subpart = static_cast<size_t>(k) + 1;
    }
    return static_cast<size_t>(extra) + 1;
}

void append_escaped(std::string& out, const std::string& s) {
    out += '"';
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            size_t subpart = 0;
            const size_t n = utf8_sequence(s, i, &subpart);
            if (n > 0) {
                out.append(s, i, n);  // UTF-8 passes through as is
                i += n;
            } else {
                out += "\xEF\xBF\xBD";  // U+FFFD: JSON text must be UTF-8
                i += subpart;
            }
            continue;
        }
        ++i;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    static const char hex[] = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

std::string child_path(const std::string& parent, const std::string& key) { return parent.empty() ? key : parent + "." + key; }
std::string element_path(const std::string& parent, size_t i) { return cat(parent, "[", i, "]"); }

}  // namespace

const char* json_type_name(Json::Type t) {
    switch (t) {
        case Json::Type::Null: return "null";
        case Json::Type::Bool: return "a boolean";
        case Json::Type::Number: return "a number";
        case Json::Type::String: return "a string";
        case Json::Type::Array: return "an array";
        case Json::Type::Object: return "an object";
    }
    return "?";
}

// ---------------------------------------------------------------------------
// Parser: recursive descent over the RFC 8259 grammar, one function per rule.

class JsonParser {
public:
    JsonParser(const std::string& text, const std::string& source)
        : text_(text), source_name_(source), source_(std::make_shared<const std::string>(source)) {}

    Json parse_document() {
        skip_whitespace();
        Json root = parse_value(0, "");
        skip_whitespace();
        if (pos_ != text_.size()) error("expected end of input after the top-level value");
        return root;
    }

private:
    const std::string& text_;
    std::string source_name_;
    std::shared_ptr<const std::string> source_;
    size_t pos_ = 0;

    // "line 3, column 15" of a byte offset; columns count bytes, from 1.
    [[noreturn]] void error_at(size_t at, const std::string& what) const {
        size_t line = 1, line_start = 0;
        for (size_t i = 0; i < at && i < text_.size(); ++i)
            if (text_[i] == '\n') {
                ++line;
                line_start = i + 1;
            }
        fail(cat(source_name_, ":", line, ":", at - line_start + 1, ": ", what));
    }
    [[noreturn]] void error(const std::string& expected) const { error_at(pos_, cat(expected, ", found ", describe_here())); }

    std::string describe_here() const {
        if (pos_ >= text_.size()) return "end of input";
        unsigned char c = static_cast<unsigned char>(text_[pos_]);
        if (c >= 0x20 && c < 0x7F) return cat("'", static_cast<char>(c), "'");
        char buf[8];
        static const char hex[] = "0123456789abcdef";
        buf[0] = '0', buf[1] = 'x', buf[2] = hex[c >> 4], buf[3] = hex[c & 15], buf[4] = 0;
        return cat("byte ", buf);
    }

    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return at_end() ? '\0' : text_[pos_]; }

    void skip_whitespace() {
        while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
    }

    Json located(Json v, const std::string& path) const {
        v.source_ = source_;
        v.path_ = path;
        return v;
    }

    Json parse_value(int depth, const std::string& path) {
        if (depth > kMaxDepth) error(cat("nesting deeper than ", kMaxDepth, " levels; expected a value"));
        char c = peek();
        if (c == '{') return parse_object(depth, path);
        if (c == '[') return parse_array(depth, path);
        if (c == '"') return located(Json(parse_string()), path);
        if (c == '-' || (c >= '0' && c <= '9')) return located(Json(parse_number()), path);
        if (c == 't') return located(Json(parse_literal("true", true)), path);
        if (c == 'f') return located(Json(parse_literal("false", false)), path);
        if (c == 'n') {
            parse_literal("null", false);
            return located(Json(), path);
        }
        error("expected a value (object, array, string, number, true, false or null)");
    }

    bool parse_literal(const char* word, bool value) {
        size_t n = std::char_traits<char>::length(word);
        if (text_.compare(pos_, n, word) != 0) error(cat("expected '", word, "'"));
        pos_ += n;
        return value;
    }

    Json parse_object(int depth, const std::string& path) {
        Json obj = located(Json::object(), path);
        ++pos_;  // '{'
        skip_whitespace();
        if (peek() == '}') {
            ++pos_;
            return obj;
        }
        // A hash set, not obj.find(): a tokenizer.json vocabulary has 150k keys,
        // and a linear search per key would make parsing quadratic.
        std::unordered_set<std::string> seen;
        for (;;) {
            if (peek() != '"') error("expected a string key");
            size_t key_pos = pos_;
            std::string key = parse_string();
            if (!seen.insert(key).second) error_at(key_pos, cat("duplicate key \"", excerpt(key), "\""));
            skip_whitespace();
            if (peek() != ':') error(cat("expected ':' after key \"", excerpt(key), "\""));
            ++pos_;
            skip_whitespace();
            obj.object_.emplace_back(key, parse_value(depth + 1, child_path(path, key)));
            skip_whitespace();
            if (peek() == ',') {
                ++pos_;
                skip_whitespace();
                continue;
            }
            if (peek() == '}') {
                ++pos_;
                return obj;
            }
            error("expected ',' or '}' after an object member");
        }
    }

    Json parse_array(int depth, const std::string& path) {
        Json arr = located(Json::array(), path);
        ++pos_;  // '['
        skip_whitespace();
        if (peek() == ']') {
            ++pos_;
            return arr;
        }
        for (;;) {
            arr.array_.push_back(parse_value(depth + 1, element_path(path, arr.array_.size())));
            skip_whitespace();
            if (peek() == ',') {
                ++pos_;
                skip_whitespace();
                continue;
            }
            if (peek() == ']') {
                ++pos_;
                return arr;
            }
            error("expected ',' or ']' after an array element");
        }
    }

    uint32_t parse_hex4() {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = peek();
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
            if (d < 0) error("expected 4 hex digits after \\u");
            v = v * 16 + static_cast<uint32_t>(d);
            ++pos_;
        }
        return v;
    }

    // Checks one UTF-8 sequence starting at pos_ and copies it: JSON text must
    // be UTF-8, and a tensor name with a broken byte is garbage, not a name.
    void copy_utf8_sequence(std::string& out) {
        unsigned char c = static_cast<unsigned char>(text_[pos_]);
        int extra;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) extra = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) extra = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) extra = 3, cp = c & 0x07;
        else error("expected valid UTF-8 in a string");
        size_t start = pos_;
        for (int i = 1; i <= extra; ++i) {
            size_t at = start + static_cast<size_t>(i);
            unsigned char d = at < text_.size() ? static_cast<unsigned char>(text_[at]) : 0;
            if ((d & 0xC0) != 0x80) error("expected valid UTF-8 in a string (a truncated multi-byte sequence)");
            cp = (cp << 6) | (d & 0x3F);
        }
        // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            error("expected valid UTF-8 in a string (an overlong or out-of-range sequence)");
        out.append(text_, start, static_cast<size_t>(extra) + 1);
        pos_ = start + static_cast<size_t>(extra) + 1;
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (at_end()) error("expected '\"' to close the string");
            unsigned char c = static_cast<unsigned char>(text_[pos_]);
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (c < 0x20) error("expected no raw control characters in a string (escape them, e.g. \\n)");
            if (c >= 0x80) {
                copy_utf8_sequence(out);
                continue;
            }
            if (c != '\\') {
                out += static_cast<char>(c);
                ++pos_;
                continue;
            }
            ++pos_;  // backslash
            char e = peek();
            ++pos_;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    uint32_t cp = parse_hex4();
                    // Characters past U+FFFF come as a UTF-16 surrogate pair.
                    if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        pos_ -= 6;
                        error("expected a high surrogate (\\uD800-\\uDBFF) before a low one");
                    }
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (text_.compare(pos_, 2, "\\u") != 0) error("expected a \\uDC00-\\uDFFF low surrogate after a high one");
                        pos_ += 2;
                        uint32_t low = parse_hex4();
                        if (low < 0xDC00 || low > 0xDFFF) {
                            pos_ -= 6;
                            error("expected a \\uDC00-\\uDFFF low surrogate after a high one");
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    }
                    append_utf8(out, cp);
                    break;
                }
                default:
                    pos_ -= 1;
                    error("expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX) after '\\'");
            }
        }
    }

    double parse_number() {
        size_t start = pos_;
        auto digits = [&] {
            size_t n = 0;
            while (!at_end() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_, ++n;
            return n;
        };
        if (peek() == '-') ++pos_;
        if (peek() == '0') {
            ++pos_;
            if (peek() >= '0' && peek() <= '9') error("expected no leading zeros in a number");
        } else if (digits() == 0) {
            error("expected a digit");
        }
        if (peek() == '.') {
            ++pos_;
            if (digits() == 0) error("expected a digit after '.'");
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (digits() == 0) error("expected a digit in the exponent");
        }
        double x = 0;
        auto r = std::from_chars(text_.data() + start, text_.data() + pos_, x);
        // from_chars reports overflow and underflow alike (1e400, 1e-400);
        // neither belongs in a config, so both are refused.
        if (r.ec == std::errc::result_out_of_range)
            error_at(start, cat("number ", excerpt(text_.substr(start, pos_ - start)), " is out of the range of a double"));
        if (r.ec != std::errc() || r.ptr != text_.data() + pos_) error_at(start, "expected a number");
        return x;
    }
};

Json Json::parse(const std::string& text, const std::string& source_name) { return JsonParser(text, source_name).parse_document(); }

// ---------------------------------------------------------------------------
// Construction, access.

Json Json::array(std::vector<Json> items) {
    Json j;
    j.type_ = Type::Array;
    j.array_ = std::move(items);
    return j;
}

Json Json::object() {
    Json j;
    j.type_ = Type::Object;
    return j;
}

std::string Json::where() const {
    std::string src = source_ ? *source_ : "JSON value";
    if (path_.empty()) return src;
    return cat(src, ": field '", excerpt(path_), "'");  // a key path may hold a 10 MB key
}

void Json::set_source(const std::string& source_name, const std::string& path) {
    tag(std::make_shared<const std::string>(source_name), path);
}

void Json::tag(const std::shared_ptr<const std::string>& source, const std::string& path) {
    source_ = source;
    path_ = path;
    for (size_t i = 0; i < array_.size(); ++i) array_[i].tag(source, element_path(path, i));
    for (Member& m : object_) m.second.tag(source, child_path(path, m.first));
}

void Json::type_error(const char* expected) const {
    std::string found = json_type_name(type_);
    if (type_ == Type::Number) found = cat("the number ", number_text(number_));
    if (type_ == Type::String) found = cat("the string \"", excerpt(string_, 40), "\"");
    fail(cat(where(), ": expected ", expected, ", found ", found));
}

bool Json::as_bool() const {
    if (type_ != Type::Bool) type_error("a boolean (true or false)");
    return bool_;
}

double Json::as_number() const {
    if (type_ != Type::Number) type_error("a number");
    return number_;
}

int64_t Json::as_int64() const {
    if (type_ != Type::Number || number_ != std::trunc(number_) || std::fabs(number_) > kMaxExactInteger)
        type_error("an integer");
    return static_cast<int64_t>(number_);
}

int Json::as_int() const {
    int64_t v = as_int64();
    if (v < INT32_MIN || v > INT32_MAX) type_error("an integer in the range of a 32-bit int");
    return static_cast<int>(v);
}

const std::string& Json::as_string() const {
    if (type_ != Type::String) type_error("a string");
    return string_;
}

const std::vector<Json>& Json::as_array() const {
    if (type_ != Type::Array) type_error("an array");
    return array_;
}

const std::vector<Json::Member>& Json::as_object() const {
    if (type_ != Type::Object) type_error("an object");
    return object_;
}

bool Json::contains(const std::string& key) const { return find(key) != nullptr; }

const Json* Json::find(const std::string& key) const {
    if (type_ != Type::Object) return nullptr;
    for (const Member& m : object_)
        if (m.first == key) return &m.second;
    return nullptr;
}

const Json& Json::at(const std::string& key) const {
    as_object();  // a type error names this value, not the missing key
    const Json* v = find(key);
    if (!v) fail(cat(source_ ? *source_ : "JSON value", ": missing required field '", excerpt(child_path(path_, key)), "'"));
    return *v;
}

void Json::set(const std::string& key, Json value) {
    if (type_ == Type::Null) type_ = Type::Object;  // j.set() on a default Json builds an object
    as_object();
    for (Member& m : object_)
        if (m.first == key) {
            m.second = std::move(value);
            return;
        }
    object_.emplace_back(key, std::move(value));
}

bool Json::erase(const std::string& key) {
    for (auto it = object_.begin(); it != object_.end(); ++it)
        if (it->first == key) {
            object_.erase(it);
            return true;
        }
    return false;
}

size_t Json::size() const {
    if (type_ == Type::Array) return array_.size();
    if (type_ == Type::Object) return object_.size();
    type_error("an array or an object");
}

const Json& Json::at(size_t index) const {
    const std::vector<Json>& a = as_array();
    if (index >= a.size()) fail(cat(where(), ": index ", index, " is past the end of an array of ", a.size()));
    return a[index];
}

void Json::push_back(Json value) {
    if (type_ == Type::Null) type_ = Type::Array;
    if (type_ != Type::Array) type_error("an array");
    array_.push_back(std::move(value));
}

bool Json::operator==(const Json& other) const {
    if (type_ != other.type_) return false;
    switch (type_) {
        case Type::Null: return true;
        case Type::Bool: return bool_ == other.bool_;
        case Type::Number: return number_ == other.number_;
        case Type::String: return string_ == other.string_;
        case Type::Array: return array_ == other.array_;
        case Type::Object: return object_ == other.object_;
    }
    return false;
}

// ---------------------------------------------------------------------------
// Writer.

namespace {
// The path of the first NaN or infinity under j, checked before writing so the
// error can name the field even in a value built in code.
bool find_non_finite(const Json& j, const std::string& path, std::string& found) {
    if (j.is_number()) {
        if (std::isfinite(j.as_number())) return false;
        found = path;
        return true;
    }
    if (j.is_array())
        for (size_t i = 0; i < j.size(); ++i)
            if (find_non_finite(j.at(i), element_path(path, i), found)) return true;
    if (j.is_object())
        for (const Json::Member& m : j.as_object())
            if (find_non_finite(m.second, child_path(path, m.first), found)) return true;
    return false;
}
}  // namespace

std::string Json::dump(int indent) const {
    std::string bad;
    if (find_non_finite(*this, path_, bad)) {
        std::string field = bad.empty() ? "" : cat(": field '", bad, "'");
        fail(cat(source_ ? *source_ : "JSON value", field, ": cannot write NaN or infinity as JSON (it has no spelling)"));
    }
    JsonWriter w(indent < 0 ? JsonLayout::Compact : JsonLayout::Indented, indent < 0 ? 0 : indent);
    w.value(*this);
    return w.text();
}

// ---------------------------------------------------------------------------
// JsonWriter.

JsonWriter::JsonWriter(JsonLayout layout, int indent) : layout_(layout), indent_(indent) {}

void JsonWriter::newline(size_t depth) {
    out_ += '\n';
    out_.append(static_cast<size_t>(indent_) * depth, ' ');
}

// Inside an object a value needs its key first; inside an array it follows
// the separator; at the top there is room for one value only.
void JsonWriter::before_value() {
    ITTT_CHECK(!done_, "JsonWriter: a second top-level value after ", excerpt(out_, 60));
    if (open_.empty()) return;
    Open& o = open_.back();
    if (o.object) {
        ITTT_CHECK(o.key_written, "JsonWriter: an object member needs key() before its value, after ", excerpt(out_, 60));
        o.key_written = false;
        return;
    }
    if (o.items++ > 0) out_ += layout_ == JsonLayout::Compact || (layout_ == JsonLayout::Indented && !o.one_line) ? "," : ", ";
    if (layout_ == JsonLayout::Indented && !o.one_line) newline(open_.size());
}

JsonWriter& JsonWriter::key(const std::string& k) {
    ITTT_CHECK(!open_.empty() && open_.back().object && !open_.back().key_written, "JsonWriter: key \"", excerpt(k, 60),
               "\" outside an object or right after another key");
    Open& o = open_.back();
    if (o.items++ > 0) out_ += layout_ == JsonLayout::Spaced ? ", " : ",";
    if (layout_ == JsonLayout::Indented) newline(open_.size());
    append_escaped(out_, k);
    out_ += layout_ == JsonLayout::Compact ? ":" : ": ";
    o.key_written = true;
    return *this;
}

JsonWriter& JsonWriter::begin_object() {
    before_value();
    out_ += '{';
    open_.push_back({true, false});
    return *this;
}

JsonWriter& JsonWriter::begin_array(bool one_line) {
    before_value();
    out_ += '[';
    open_.push_back({false, one_line || layout_ != JsonLayout::Indented});
    return *this;
}

void JsonWriter::close(bool object) {
    ITTT_CHECK(!open_.empty() && open_.back().object == object && !open_.back().key_written, "JsonWriter: ",
               object ? "end_object" : "end_array", "() does not close the innermost open container, after ", excerpt(out_, 60));
    const Open o = open_.back();
    open_.pop_back();
    if (layout_ == JsonLayout::Indented && o.items > 0 && (object || !o.one_line)) newline(open_.size());
    out_ += object ? '}' : ']';
    done_ = open_.empty();
}

JsonWriter& JsonWriter::end_object() {
    close(true);
    return *this;
}

JsonWriter& JsonWriter::end_array() {
    close(false);
    return *this;
}

JsonWriter& JsonWriter::value(std::nullptr_t) {
    before_value();
    out_ += "null";
    done_ = open_.empty();
    return *this;
}

JsonWriter& JsonWriter::value(bool b) {
    before_value();
    out_ += b ? "true" : "false";
    done_ = open_.empty();
    return *this;
}

JsonWriter& JsonWriter::value(double x) {
    if (!std::isfinite(x)) return value(nullptr);
    before_value();
    out_ += number_text(x);
    done_ = open_.empty();
    return *this;
}

JsonWriter& JsonWriter::value(float x) {
    if (!std::isfinite(x)) return value(nullptr);
    before_value();
    char buf[32];
    std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, x);  // shortest text of the float itself
    out_.append(buf, r.ptr);
    done_ = open_.empty();
    return *this;
}

JsonWriter& JsonWriter::integer(int64_t bits, bool is_unsigned) {
    before_value();
    char buf[32];
    std::to_chars_result r = is_unsigned ? std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(bits))
                                         : std::to_chars(buf, buf + sizeof buf, bits);
    out_.append(buf, r.ptr);
    done_ = open_.empty();
    return *this;
}

JsonWriter& JsonWriter::value(const std::string& s) {
    before_value();
    append_escaped(out_, s);
    done_ = open_.empty();
    return *this;
}

JsonWriter& JsonWriter::value(const char* s) { return value(std::string(s)); }

JsonWriter& JsonWriter::value(const Json& j) {
    switch (j.type()) {
        case Json::Type::Null: return value(nullptr);
        case Json::Type::Bool: return value(j.as_bool());
        case Json::Type::Number: return value(j.as_number());
        case Json::Type::String: return value(j.as_string());
        case Json::Type::Array: {
            bool all_scalar = true;  // arrays of scalars stay on one line when indented
            for (const Json& e : j.as_array()) all_scalar = all_scalar && !e.is_array() && !e.is_object();
            begin_array(all_scalar);
            for (const Json& e : j.as_array()) value(e);
            return end_array();
        }
        case Json::Type::Object:
            begin_object();
            for (const Json::Member& m : j.as_object()) key(m.first).value(m.second);
            return end_object();
    }
    return *this;
}

const std::string& JsonWriter::text() const {
    ITTT_CHECK(done_, "JsonWriter: the text is incomplete (", open_.size(), " container(s) still open): ", excerpt(out_, 60));
    return out_;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace ittt
