// json.h: a small JSON value for config.json, trainer_state.json and the
// safetensors header.
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
    // NaN and infinities have no JSON spelling: an Error naming the field.
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
    void dump_to(std::string& out, int indent, int depth) const;
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

// Appends code point cp (<= U+10FFFF) as UTF-8; the tokenizer writes byte-level text with it too.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace ittt
