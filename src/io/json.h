// json.h: a small JSON value for config.json, trainer_state.json and the
// safetensors header, and the one JSON writer (JsonWriter, below) that writes
// every JSON text ittt produces: those files, and every --json output.
//
// Numbers are doubles (as in JavaScript); integral values print without a
// fraction, so 4096 round-trips as "4096", not "4096.0". Objects keep their key
// order, so a config we write reads in the order Hugging Face writes it.
//
// A parsed value remembers where it came from (the source name and its key
// path), so a wrong type anywhere in a file reads as
//   config.json: field 'hidden_size': expected a number, found a string
// without the caller threading names through every accessor.
//
//   Json j = Json::parse(read_file(path), path);
//   int d = j.at("hidden_size").as_int();          // throws, naming the field
//   Json out = Json::object();
//   out.set("hidden_size", 64);
//   std::string text = out.dump(2);
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ittt {

class Json {
public:
    enum class Type { Null, Bool, Number, String, Array, Object };
    using Member = std::pair<std::string, Json>;

    Json() = default;  // null
    Json(std::nullptr_t) {}
    Json(bool b) : type_(Type::Bool), bool_(b) {}
    // Any integer type (int, int64_t, size_t, ...); beyond 2^53 it rounds.
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    Json(T x) : type_(Type::Number), number_(static_cast<double>(x)) {}
    Json(double x) : type_(Type::Number), number_(x) {}
    Json(const char* s) : type_(Type::String), string_(s) {}
    Json(std::string s) : type_(Type::String), string_(std::move(s)) {}
    static Json array(std::vector<Json> items = {});
    static Json object();

    // Strict RFC 8259: no comments, no trailing commas, no NaN, no duplicate
    // keys, at most 256 levels of nesting. Errors read "<source>:<line>:<col>:
    // expected ..., found ...".
    static Json parse(const std::string& text, const std::string& source_name);
    // indent < 0: one line, no spaces. indent >= 0: one member per line; arrays
    // of scalars stay on one line (layer_types, ttt_layers read better so).
    // Written by JsonWriter (its rules for strings and numbers), except that
    // NaN and infinities are refused, with an Error naming the field: a file
    // that records a model or a run must not hold a number it cannot spell.
    std::string dump(int indent = -1) const;

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::Null; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_number() const { return type_ == Type::Number; }
    bool is_string() const { return type_ == Type::String; }
    bool is_array() const { return type_ == Type::Array; }
    bool is_object() const { return type_ == Type::Object; }

    // Typed reads: an Error naming the source and key path on a wrong type.
    bool as_bool() const;
    double as_number() const;
    int64_t as_int64() const;  // an integral number exactly representable (|x| <= 2^53)
    int as_int() const;        // as_int64() within the range of int
    const std::string& as_string() const;
    const std::vector<Json>& as_array() const;
    const std::vector<Member>& as_object() const;

    // Objects.
    bool contains(const std::string& key) const;
    const Json* find(const std::string& key) const;  // nullptr when absent (or not an object)
    const Json& at(const std::string& key) const;    // Error "missing required field"
    void set(const std::string& key, Json value);     // replaces in place or appends
    bool erase(const std::string& key);

    // Arrays.
    size_t size() const;  // elements of an array or members of an object
    const Json& at(size_t index) const;
    void push_back(Json value);

    // Structural equality; numbers compare as doubles, key order matters.
    bool operator==(const Json& other) const;
    bool operator!=(const Json& other) const { return !(*this == other); }

    // "config.json: field 'layer_types[3]'" or "config.json" at the root; for
    // messages that callers build themselves.
    std::string where() const;
    // Tags this value and all its children with a source name and root path,
    // as parse() does; lets a caller name a value it built or received.
    void set_source(const std::string& source_name, const std::string& path = "");

private:
    [[noreturn]] void type_error(const char* expected) const;
    void tag(const std::shared_ptr<const std::string>& source, const std::string& path);
    friend class JsonParser;

    Type type_ = Type::Null;
    bool bool_ = false;
    double number_ = 0;
    std::string string_;
    std::vector<Json> array_;
    std::vector<Member> object_;
    // Where this value came from, for messages; empty for values built in code.
    std::shared_ptr<const std::string> source_;
    std::string path_;
};

const char* json_type_name(Json::Type t);  // "a number", "an object", ...

// ---------------------------------------------------------------------------
// JsonWriter: JSON text written as it is built. Json::dump, every `--json`
// output line and every results file go through it, so one set of rules
// decides how everything is spelt:
//   - strings: '"', '\\' and the control characters U+0000..U+001F are escaped
//     (\" \\ \b \f \n \r \t, the rest \u00XX); other UTF-8 passes through as
//     is. JSON text must be UTF-8, so bytes that are not (a token's half of a
//     character, a file name in another encoding) are written as U+FFFD, one
//     per maximal ill-formed subpart, as the tokenizer's decode() does;
//   - integers: exactly, all 64 bits (a seed of 2^64 - 1 stays itself, which a
//     double could not hold);
//   - doubles: the shortest text that reads back to the same double (a float:
//     to the same float), locale-free; integral values without a fraction;
//   - NaN and infinities have no JSON spelling: written as null, which a
//     report's reader takes as "not a number" (Json::dump refuses them instead).
// Layouts: Compact {"a":1,"b":[1,2]}; Spaced {"a": 1, "b": [1, 2]} (the
// spacing of Python's json.dumps); Indented, one member per line (dump(2)).
//
//   JsonWriter w(JsonLayout::Spaced);
//   w.begin_object().field("step", 3).field("loss", 0.25);
//   w.key("ids").begin_array();
//   for (int id : ids) w.value(id);
//   w.end_array().end_object();
//   std::printf("%s\n", w.text().c_str());   // {"step": 3, "loss": 0.25, "ids": [1, 2]}
//
// Misuse (a value where a key is due, an unclosed container) is an Error: it
// is a bug in the caller, found by the first test that writes the output.
enum class JsonLayout { Compact, Spaced, Indented };

class JsonWriter {
public:
    explicit JsonWriter(JsonLayout layout = JsonLayout::Spaced, int indent = 2);

    JsonWriter& begin_object();
    JsonWriter& end_object();
    // one_line: with the Indented layout, the items stay on one line (arrays of
    // scalars); the other layouts write everything on one line anyway.
    JsonWriter& begin_array(bool one_line = false);
    JsonWriter& end_array();
    // The next member's key; its value follows with value() or begin_*().
    JsonWriter& key(const std::string& k);

    JsonWriter& value(std::nullptr_t);
    JsonWriter& value(bool b);
    JsonWriter& value(double x);
    JsonWriter& value(float x);  // the shortest text of the float, not of its double
    JsonWriter& value(const std::string& s);
    JsonWriter& value(const char* s);
    JsonWriter& value(const Json& j);  // NaN and infinities inside as null
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    JsonWriter& value(T x) {
        if constexpr (std::is_signed_v<T>) return integer(static_cast<int64_t>(x), false);
        else return integer(static_cast<int64_t>(static_cast<uint64_t>(x)), true);
    }

    // key(k).value(v)
    template <class T>
    JsonWriter& field(const std::string& k, const T& v) {
        key(k);
        return value(v);
    }
    // An array of the scalars in [first, last), on one line.
    template <class It>
    JsonWriter& array_of(It first, It last) {
        begin_array(true);
        for (; first != last; ++first) value(*first);
        return end_array();
    }
    // key(k), then the scalars of v as an array on one line.
    template <class T>
    JsonWriter& array(const std::string& k, const std::vector<T>& v) {
        key(k);
        return array_of(v.begin(), v.end());
    }

    // The text written; an Error unless every container is closed.
    const std::string& text() const;

private:
    struct Open {
        bool object;
        bool one_line;
        size_t items = 0;
        bool key_written = false;  // objects: a key waits for its value
    };
    JsonWriter& integer(int64_t bits, bool is_unsigned);
    void before_value();  // the separator, newline and checks due before a value
    void newline(size_t depth);
    void close(bool object);

    JsonLayout layout_;
    int indent_;
    std::string out_;
    std::vector<Open> open_;
    bool done_ = false;  // the top-level value is complete
};

// Appends code point cp (<= U+10FFFF) as UTF-8; the tokenizer writes byte-level text with it too.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace ittt
