// Tests of src/io: JSON, config.json, safetensors, atomic files, checkpoints.
//
// The readers are tested mostly on broken input: each corruption a real file
// can suffer (truncation, a lying header, a wrong dtype) must be refused with a
// message naming the file and the tensor or field, never half-read.
#include <sys/stat.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/config_json.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace ittt;
using Catch::Contains;

namespace {

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/ittt_test_io_XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

// Names in `dir` that contain ".tmp.": what an atomic write must never leave.
std::vector<std::string> temp_files_in(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name.find(".tmp.") != std::string::npos) out.push_back(name);
    }
    return out;
}

// A safetensors file written by hand: header text (padded to 8 bytes unless
// told otherwise) and raw data bytes, so tests can forge any corruption.
std::string forge_safetensors(std::string header, const std::string& data, bool pad = true) {
    if (pad) header.append((8 - header.size() % 8) % 8, ' ');
    uint64_t n = header.size();
    std::string bytes(reinterpret_cast<const char*>(&n), 8);
    return bytes + header + data;
}

std::string bytes_of_floats(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

ModelConfig every_field_changed() {
    ModelConfig c;
    c.vocab_size = 1000;
    c.hidden_size = 96;
    c.intermediate_size = 320;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 3;
    c.head_dim = 32;
    c.rope_theta = 12345.5;
    c.rms_norm_eps = 3e-7;
    c.tie_word_embeddings = false;
    c.sliding_window = 48;
    c.layer_types = {AttentionType::Sliding, AttentionType::Full, AttentionType::Sliding,
                     AttentionType::Sliding, AttentionType::Full, AttentionType::Full};
    c.initializer_range = 0.017;
    c.ttt_mode = true;
    c.ttt_layers = {1, 5};
    c.ttt_chunk = 128;
    c.ttt_lr = 3.0;
    c.ttt_proj = false;
    c.ttt_target = TttTargetSource::HiddenStates;
    c.ttt_clip_tau = 0.25;
    c.ttt_target_mode = TttTargetMode::NextToken;
    c.ttt_conv_offsets = {-1, 0, 1, 2};
    c.ttt_conv_init_std = 0.05;
    c.ttt_proj_init_identity = true;
    return c;
}

void check_same_config(const ModelConfig& a, const ModelConfig& b) {
    CHECK(a.vocab_size == b.vocab_size);
    CHECK(a.hidden_size == b.hidden_size);
    CHECK(a.intermediate_size == b.intermediate_size);
    CHECK(a.num_hidden_layers == b.num_hidden_layers);
    CHECK(a.num_attention_heads == b.num_attention_heads);
    CHECK(a.num_key_value_heads == b.num_key_value_heads);
    CHECK(a.head_dim == b.head_dim);
    CHECK(a.rope_theta == b.rope_theta);  // exact: doubles are written as shortest round-trip text
    CHECK(a.rms_norm_eps == b.rms_norm_eps);
    CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
    CHECK(a.sliding_window == b.sliding_window);
    CHECK(a.layer_types == b.layer_types);
    CHECK(a.initializer_range == b.initializer_range);
    CHECK(a.ttt_mode == b.ttt_mode);
    CHECK(a.ttt_layers == b.ttt_layers);
    CHECK(a.ttt_chunk == b.ttt_chunk);
    CHECK(a.ttt_lr == b.ttt_lr);
    CHECK(a.ttt_proj == b.ttt_proj);
    CHECK(a.ttt_target == b.ttt_target);
    CHECK(a.ttt_clip_tau == b.ttt_clip_tau);
    CHECK(a.ttt_target_mode == b.ttt_target_mode);
    CHECK(a.ttt_conv_offsets == b.ttt_conv_offsets);
    CHECK(a.ttt_conv_init_std == b.ttt_conv_init_std);
    CHECK(a.ttt_proj_init_identity == b.ttt_proj_init_identity);
}

const char* kMinimalConfig = R"({"vocab_size": 260, "hidden_size": 64, "intermediate_size": 192,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16})";

// kMinimalConfig with one key's value replaced (or added) by raw JSON text.
std::string config_with(const std::string& key, const std::string& value_text) {
    Json j = Json::parse(kMinimalConfig, "t");
    j.set(key, Json::parse(value_text, "t"));
    return j.dump(2);
}

}  // namespace

// ---------------------------------------------------------------------------
// JSON

TEST_CASE("json: parse and dump round-trip every type, keeping key order", "[io][json]") {
    const char* text = R"({"z": null, "b": true, "f": false, "i": 4096, "neg": -17, "x": 0.1,
        "e": 1.5e-7, "s": "hi", "a": [1, [2, 3], {"k": "v"}], "o": {"y": 1, "a": 2}, "empty_a": [], "empty_o": {}})";
    Json j = Json::parse(text, "t.json");
    REQUIRE(j.is_object());
    std::vector<std::string> keys;
    for (const auto& m : j.as_object()) keys.push_back(m.first);
    CHECK(keys == std::vector<std::string>{"z", "b", "f", "i", "neg", "x", "e", "s", "a", "o", "empty_a", "empty_o"});
    CHECK(j.at("i").as_int() == 4096);
    CHECK(j.at("x").as_number() == 0.1);
    CHECK(j.at("a").at(1).at(0).as_int() == 2);
    CHECK(j.at("o").as_object()[0].first == "y");

    for (int indent : {-1, 0, 2, 4}) {
        std::string out = j.dump(indent);
        CHECK(Json::parse(out, "dumped") == j);
        CHECK(Json::parse(out, "dumped").dump(indent) == out);
    }
    CHECK(j.at("i").dump() == "4096");  // integral values print as integers, not 4096.0
    CHECK(Json::parse("[1,2,3]", "t").dump(2) == "[1, 2, 3]");  // scalar arrays stay on one line
    CHECK(Json::parse(R"({"a":[{"b":1}]})", "t").dump() == R"({"a":[{"b":1}]})");
}

TEST_CASE("json: numbers round-trip bit for bit", "[io][json]") {
    const double values[] = {0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3.0, 1e-6, 3e-7, 12345.5, 1e6, 9007199254740992.0,
                             1e300, -2.5e-300, 5e-324, DBL_MAX, DBL_MIN, 0.02, 123456789012.0};
    for (double x : values) {
        std::string text = Json(x).dump();
        double y = Json::parse(text, "t").as_number();
        INFO(text);
        CHECK(std::memcmp(&x, &y, sizeof x) == 0);
    }
    CHECK(Json(1e6).dump() == "1000000");
    CHECK(Json(-0.0).dump() == "-0");
    CHECK(Json(int64_t{-42}).dump() == "-42");
    CHECK(Json(size_t{7}).dump() == "7");
    CHECK(Json::parse("1E3", "t").as_int() == 1000);
    CHECK(Json::parse("-0.5e+1", "t").as_number() == -5.0);
}

TEST_CASE("json: string escapes, \\uXXXX and surrogate pairs", "[io][json]") {
    Json j = Json::parse(R"("q\" b\\ s\/ \b\f\n\r\t \u00e9 \u20AC \ud83d\ude00 raw:é")", "t");
    CHECK(j.as_string() == "q\" b\\ s/ \b\f\n\r\t \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 raw:\xC3\xA9");
    std::string out = j.dump();
    CHECK(Json::parse(out, "t") == j);
    CHECK(Json(std::string("a\x01z")).dump() == "\"a\\u0001z\"");
    CHECK(Json("tab\there").dump() == "\"tab\\there\"");
}

TEST_CASE("json writer: quotes, backslashes, control characters and non-ASCII round-trip through the parser", "[io][json]") {
    std::string every_control;
    for (int c = 1; c < 0x20; ++c) every_control += static_cast<char>(c);
    const std::vector<std::string> strings = {
        "plain", "", "say \"hi\"", "back\\slash\\", "new\nline\r\n", "tab\t", every_control, std::string("nul\0inside", 11),
        "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xBD\xA0\xE5\xA5\xBD", "</script>\x7F", "\"\\\"\\\n\"",
    };
    for (JsonLayout layout : {JsonLayout::Compact, JsonLayout::Spaced, JsonLayout::Indented}) {
        JsonWriter w(layout);
        w.begin_object();
        for (size_t i = 0; i < strings.size(); ++i) w.field(strings[i] + "#" + std::to_string(i), strings[i]);  // as keys and as values
        w.key("list").begin_array();
        for (const std::string& s : strings) w.value(s);
        w.end_array().end_object();
        INFO(w.text());
        for (char c : w.text()) CHECK((static_cast<unsigned char>(c) >= 0x20 || (layout == JsonLayout::Indented && c == '\n')));
        Json back = Json::parse(w.text(), "written");
        REQUIRE(back.size() == strings.size() + 1);
        for (size_t i = 0; i < strings.size(); ++i) {
            CHECK(back.as_object()[i].first == strings[i] + "#" + std::to_string(i));
            CHECK(back.as_object()[i].second.as_string() == strings[i]);
            CHECK(back.at("list").at(i).as_string() == strings[i]);
        }
    }
    JsonWriter one;
    one.value(std::string("q\"b\\n\n\x01\x1f"));
    CHECK(one.text() == R"("q\"b\\n\n\u0001\u001f")");
}

TEST_CASE("json writer: bytes that are not UTF-8 become U+FFFD, one per maximal ill-formed subpart", "[io][json]") {
    const std::string fffd = "\xEF\xBF\xBD";
    struct Case {
        std::string in, out;
    };
    const std::vector<Case> cases = {
        {"a\xFF" "b", "a" + fffd + "b"},                      // never a UTF-8 byte
        {"\xC3", fffd},                                      // half of \xC3\xA9 (a token's share of a character)
        {"\xC3(", fffd + "("},                               // a lead byte without its continuation
        {"\xE2\x82", fffd},                                  // a truncated 3-byte sequence: one subpart
        {"\xE2\x82\xACz\xE2", "\xE2\x82\xAC" "z" + fffd},       // a whole one, then a cut one
        {"\xC0\xAF", fffd + fffd},                           // overlong '/': C0 is never a lead
        {"\xE0\x80\x80", fffd + fffd + fffd},                // overlong 3-byte form
        {"\xED\xA0\x80", fffd + fffd + fffd},                // a UTF-16 surrogate
        {"\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},     // past U+10FFFF
        {"\x80\x80", fffd + fffd},                           // continuation bytes alone
        {"\xF0\x9F\x98", fffd},                              // a truncated 4-byte sequence
    };
    for (const Case& c : cases) {
        JsonWriter w;
        w.value(c.in);
        INFO(w.text());
        CHECK(Json::parse(w.text(), "written").as_string() == c.out);
        CHECK(Json(c.in).dump() == w.text());  // Json::dump spells strings the same way
    }
}

TEST_CASE("json writer: exact 64-bit integers, shortest doubles and floats, NaN and infinities as null", "[io][json]") {
    JsonWriter w(JsonLayout::Compact);
    w.begin_object();
    w.field("u64", UINT64_MAX).field("i64", INT64_MIN).field("int", -3).field("size", size_t{7});
    w.field("d", 0.1).field("third", 1.0 / 3.0).field("whole", 4096.0).field("neg0", -0.0);
    w.field("f", 0.1f).field("f3", 3.0f);
    w.field("nan", std::nan("")).field("inf", std::numeric_limits<double>::infinity()).field("finf", -std::numeric_limits<float>::infinity());
    w.field("t", true).field("null", nullptr);
    w.end_object();
    CHECK(w.text() == R"({"u64":18446744073709551615,"i64":-9223372036854775808,"int":-3,"size":7,"d":0.1,"third":0.3333333333333333,)"
                      R"("whole":4096,"neg0":-0,"f":0.1,"f3":3,"nan":null,"inf":null,"finf":null,"t":true,"null":null})");
    Json back = Json::parse(w.text(), "written");
    CHECK(back.at("third").as_number() == 1.0 / 3.0);
    CHECK(static_cast<float>(back.at("f").as_number()) == 0.1f);
    CHECK(back.at("nan").is_null());
    // A Json value holding NaN: null through the writer, refused by dump().
    Json j = Json::object();
    j.set("loss", std::nan(""));
    JsonWriter jw;
    jw.value(j);
    CHECK(jw.text() == R"({"loss": null})");
    CHECK_THROWS_WITH(j.dump(), Contains("field 'loss': cannot write NaN"));
}

TEST_CASE("json writer: layouts, and misuse is an error", "[io][json]") {
    auto build = [](JsonLayout layout) {
        JsonWriter w(layout);
        w.begin_object().field("a", 1).array("b", std::vector<int>{1, 2}).key("c").begin_array().begin_object().field("d", "x");
        w.end_object().end_array().key("e").begin_object().end_object().array("f", std::vector<bool>{true, false}).end_object();
        return w.text();
    };
    CHECK(build(JsonLayout::Compact) == R"({"a":1,"b":[1,2],"c":[{"d":"x"}],"e":{},"f":[true,false]})");
    CHECK(build(JsonLayout::Spaced) == R"({"a": 1, "b": [1, 2], "c": [{"d": "x"}], "e": {}, "f": [true, false]})");
    CHECK(build(JsonLayout::Indented) == "{\n  \"a\": 1,\n  \"b\": [1, 2],\n  \"c\": [\n    {\n      \"d\": \"x\"\n    }\n  ],\n  \"e\": {},\n"
                                         "  \"f\": [true, false]\n}");
    CHECK(Json::parse(build(JsonLayout::Indented), "t").dump(2) == build(JsonLayout::Indented));  // dump() writes through it

    JsonWriter no_key;
    no_key.begin_object();
    CHECK_THROWS_WITH(no_key.value(1), Contains("needs key()"));
    JsonWriter open;
    open.begin_array().value(1);
    CHECK_THROWS_WITH(open.text(), Contains("incomplete"));
    CHECK_THROWS_WITH(open.end_object(), Contains("does not close"));
    JsonWriter twice;
    twice.value(1);
    CHECK_THROWS_WITH(twice.value(2), Contains("second top-level value"));
    JsonWriter key_in_array;
    key_in_array.begin_array();
    CHECK_THROWS_WITH(key_in_array.key("k"), Contains("outside an object"));
}

TEST_CASE("json: parse errors name the source, line, column and what was expected", "[io][json]") {
    auto error_of = [](const std::string& text) {
        try {
            Json::parse(text, "cfg.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    CHECK_THAT(error_of("{\n  \"a\": 1,\n  \"b\": ]\n}"), Contains("cfg.json:3:8: expected a value") && Contains("found ']'"));
    CHECK_THAT(error_of("{\"a\": 1,}"), Contains("cfg.json:1:9: expected a string key, found '}'"));
    CHECK_THAT(error_of("[1, 2,]"), Contains("cfg.json:1:7: expected a value"));
    CHECK_THAT(error_of("{\"a\" 1}"), Contains("cfg.json:1:6: expected ':' after key \"a\""));
    CHECK_THAT(error_of("{\"a\": 1 \"b\": 2}"), Contains("1:9: expected ',' or '}'"));
    CHECK_THAT(error_of("[1 2]"), Contains("1:4: expected ',' or ']'"));
    CHECK_THAT(error_of("\"abc"), Contains("1:5: expected '\"' to close the string, found end of input"));
    CHECK_THAT(error_of("012"), Contains("1:2: expected no leading zeros"));
    CHECK_THAT(error_of("1."), Contains("expected a digit after '.'"));
    CHECK_THAT(error_of("-"), Contains("expected a digit"));
    CHECK_THAT(error_of("1e400"), Contains("out of the range of a double"));
    CHECK_THAT(error_of("{} x"), Contains("1:4: expected end of input"));
    CHECK_THAT(error_of(""), Contains("1:1: expected a value") && Contains("end of input"));
    CHECK_THAT(error_of("NaN"), Contains("expected a value"));
    CHECK_THAT(error_of("tru"), Contains("expected 'true'"));
    CHECK_THAT(error_of("{\"a\": 1, \"a\": 2}"), Contains("1:10: duplicate key \"a\""));
    CHECK_THAT(error_of("\"\\x\""), Contains("1:3: expected an escape") && Contains("found 'x'"));
    CHECK_THAT(error_of("\"\\u12G4\""), Contains("expected 4 hex digits"));
    CHECK_THAT(error_of("\"\\udc00\""), Contains("1:2: expected a high surrogate"));
    CHECK_THAT(error_of("\"\\ud83d x\""), Contains("low surrogate"));
    CHECK_THAT(error_of("\"a\nb\""), Contains("raw control characters"));
    CHECK_THAT(error_of("\"\xff\""), Contains("1:2: expected valid UTF-8"));
    CHECK_THAT(error_of("\"\xC0\xAF\""), Contains("valid UTF-8"));       // overlong '/'
    CHECK_THAT(error_of("\"\xE2\x82\""), Contains("valid UTF-8"));       // truncated sequence
    CHECK_THAT(error_of("[1, // c\n 2]"), Contains("1:5: expected a value"));  // no comments
    CHECK_THAT(error_of(std::string(300, '[') + std::string(300, ']')), Contains("nesting deeper than 256"));
    CHECK_NOTHROW(Json::parse(std::string(200, '[') + std::string(200, ']'), "t"));
}

TEST_CASE("json: accessors name the key path and the expected type", "[io][json]") {
    Json j = Json::parse(R"({"hidden_size": "64", "a": {"b": [1, 2.5, "x"]}, "big": 1e10})", "config.json");
    CHECK_THROWS_WITH(j.at("hidden_size").as_int(),
                      Contains("config.json: field 'hidden_size': expected an integer, found the string \"64\""));
    CHECK_THROWS_WITH(j.at("hidden_size").as_number(), Contains("config.json: field 'hidden_size': expected a number, found a string") ||
                                                           Contains("expected a number, found the string"));
    CHECK_THROWS_WITH(j.at("a").at("b").at(1).as_int(), Contains("field 'a.b[1]': expected an integer, found the number 2.5"));
    CHECK_THROWS_WITH(j.at("a").at("b").at(2).as_bool(), Contains("field 'a.b[2]': expected a boolean"));
    CHECK_THROWS_WITH(j.at("a").at("b").at(5), Contains("field 'a.b': index 5 is past the end of an array of 3"));
    CHECK_THROWS_WITH(j.at("a").at("c"), Contains("config.json: missing required field 'a.c'"));
    CHECK_THROWS_WITH(j.at("big").as_int(), Contains("field 'big': expected an integer in the range of a 32-bit int"));
    CHECK(j.at("big").as_int64() == 10000000000LL);
    CHECK_THROWS_WITH(j.at("a").as_string(), Contains("field 'a': expected a string, found an object"));
    CHECK_THROWS_WITH(j.as_array(), Contains("config.json: expected an array, found an object"));
    CHECK(j.find("nope") == nullptr);

    Json built = Json::object();
    built.set("loss", std::nan(""));
    CHECK_THROWS_WITH(built.dump(), Contains("field 'loss': cannot write NaN or infinity"));
    Json list = Json::array({1, std::numeric_limits<double>::infinity()});
    CHECK_THROWS_WITH(list.dump(), Contains("field '[1]'"));
    built.set("loss", 1.5);  // set() replaces in place
    CHECK(built.size() == 1);
    CHECK(built.dump() == R"({"loss":1.5})");

    // A value built in code can be named after the fact.
    Json state = Json::object();
    state.set("optim", Json::object());
    state.set("steps", Json::array({1, "two"}));
    state.set_source("trainer_state.json");
    CHECK_THROWS_WITH(state.at("steps").at(1).as_int(), Contains("trainer_state.json: field 'steps[1]': expected an integer"));
    CHECK_THROWS_WITH(state.at("optim").at("lr"), Contains("trainer_state.json: missing required field 'optim.lr'"));
}

// ---------------------------------------------------------------------------
// config.json

TEST_CASE("config.json: every field round-trips, through text and through a file", "[io][config]") {
    ModelConfig c = every_field_changed();
    c.validate();
    std::string text = config_to_json(c);
    check_same_config(parse_config_json(text, "mem"), c);

    Json j = Json::parse(text, "mem");
    CHECK(j.at("model_type").as_string() == "qwen3");
    CHECK(j.at("architectures").at(0).as_string() == "Qwen3ForCausalLM");
    CHECK(j.at("hidden_act").as_string() == "silu");
    CHECK(j.at("use_sliding_window").as_bool());
    CHECK(j.at("layer_types").at(0).as_string() == "sliding_attention");
    CHECK(j.at("ttt_target").as_string() == "hidden_states");
    CHECK(j.at("ttt_target_mode").as_string() == "next_token");

    TempDir dir;
    save_config_json(dir.file("config.json"), c);
    check_same_config(load_config_json(dir.file("config.json")), c);
    CHECK(temp_files_in(dir.path).empty());

    // The defaults round-trip too (empty layer_types, sliding_window 0 -> null).
    ModelConfig d;
    std::string dt = config_to_json(d);
    CHECK(Json::parse(dt, "d").at("sliding_window").is_null());
    CHECK_FALSE(Json::parse(dt, "d").contains("layer_types"));
    // The init-only keys are written only when they differ from the release's init.
    CHECK_FALSE(Json::parse(dt, "d").contains("ttt_conv_init_std"));
    CHECK_FALSE(Json::parse(dt, "d").contains("ttt_proj_init"));
    CHECK(j.at("ttt_proj_init").as_string() == "identity");
    check_same_config(parse_config_json(dt, "d"), d);
}

TEST_CASE("config.json: absent keys take transformers' and the release's defaults, one line each", "[io][config]") {
    // Standard keys: transformers' Qwen3Config (5.24); ttt_* keys with TTT off: not reported.
    std::vector<std::string> lines;
    ModelConfig c = parse_config_json(R"({"vocab_size": 10, "hidden_size": 48, "intermediate_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 32})", "c.json", &lines);
    CHECK(c.num_key_value_heads == 32);
    CHECK(c.head_dim == 128);
    CHECK(c.rope_theta == 10000.0);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK_FALSE(c.tie_word_embeddings);
    CHECK(c.initializer_range == 0.02);
    CHECK(c.layer_types.empty());
    CHECK(c.sliding_window == 0);
    CHECK_FALSE(c.ttt_mode);
    CHECK(c.ttt_layers.empty());
    const std::vector<std::string> expected = {
        "c.json: 'num_key_value_heads' is absent: 32 (transformers' Qwen3Config default)",
        "c.json: 'head_dim' is absent: 128 (transformers' Qwen3Config default)",
        "c.json: 'rope_theta' is absent: 10000 (transformers' default_theta for RoPE)",
        "c.json: 'rms_norm_eps' is absent: 1e-06 (transformers' Qwen3Config default)",
        "c.json: 'tie_word_embeddings' is absent: false (transformers' Qwen3Config default)",
        "c.json: 'initializer_range' is absent: 0.02 (transformers' Qwen3Config default)",
        "c.json: 'hidden_act' is absent: \"silu\" (transformers' Qwen3Config default)",
        "c.json: 'attention_bias' is absent: false (transformers' Qwen3Config default)",
        "c.json: 'use_sliding_window' is absent: false (transformers' Qwen3Config default)",
    };
    CHECK(lines == expected);
    // null num_key_value_heads: as many as the query heads (transformers' rule).
    ModelConfig n = parse_config_json(config_with("num_key_value_heads", "null"), "c.json");
    CHECK(n.num_key_value_heads == n.num_attention_heads);

    // TTT on, every ttt_* key absent: the release's Qwen3Config values, one line each.
    Json j = Json::parse(kMinimalConfig, "t");
    j.set("num_hidden_layers", 31);
    j.set("ttt_mode", true);
    lines.clear();
    ModelConfig t = parse_config_json(j.dump(), "ttt.json", &lines);
    CHECK(t.ttt_layers == std::vector<int>{0, 6, 12, 18, 24, 30});
    CHECK(t.ttt_chunk == 8192);
    CHECK(t.ttt_lr == 0.3);
    CHECK(t.ttt_proj);
    CHECK(t.ttt_target == TttTargetSource::HiddenStates);
    CHECK(t.ttt_clip_tau == 0);
    CHECK(t.ttt_target_mode == TttTargetMode::Learned);
    CHECK(t.ttt_conv_offsets == std::vector<int>{-2, -1, 0, 1, 2});
    int ttt_lines = 0;
    for (const std::string& l : lines) ttt_lines += l.find("'ttt_") != std::string::npos;
    CHECK(ttt_lines == 8);
    CHECK(std::count(lines.begin(), lines.end(), "ttt.json: 'ttt_chunk' is absent: 8192 (the In-Place TTT release's default)") == 1);
    CHECK(std::count(lines.begin(), lines.end(),
                     "ttt.json: 'ttt_target' is absent: \"hidden_states\" (the In-Place TTT release's default)") == 1);
    // ttt_mode absent: follows the weights when the caller knows them.
    j.erase("ttt_mode");
    CHECK_FALSE(parse_config_json(j.dump(), "w.json", nullptr, TttTensors::Absent).ttt_mode);
    CHECK_FALSE(parse_config_json(j.dump(), "w.json").ttt_mode);
    lines.clear();
    CHECK(parse_config_json(j.dump(), "w.json", &lines, TttTensors::Present).ttt_mode);
    CHECK(std::count(lines.begin(), lines.end(),
                     "w.json: 'ttt_mode' is absent: true, as the weights hold ttt_* tensors (the In-Place TTT release's default)") == 1);
    // A default that does not fit is named as one: the release's layers reach 30.
    j.set("num_hidden_layers", 2);
    j.set("ttt_mode", true);
    CHECK_THROWS_WITH(parse_config_json(j.dump(), "small.json"),
                      Contains("small.json: ttt_layers has layer 6, expected 0..1") && Contains("absent keys that took a default: ") &&
                          Contains("ttt_layers"));

    // rope_theta: rope_parameters (transformers 5) before the top-level key (transformers 4).
    Json r = Json::parse(kMinimalConfig, "t");
    r.set("rope_theta", 5e5);
    CHECK(parse_config_json(r.dump(), "r").rope_theta == 5e5);
    r.set("rope_parameters", Json::parse(R"({"rope_type": "default", "rope_theta": 1e6})", "rp"));
    CHECK(parse_config_json(r.dump(), "r").rope_theta == 1e6);

    // Sliding windows as transformers reads them: only with use_sliding_window.
    Json w = Json::parse(kMinimalConfig, "t");
    w.set("sliding_window", 8);
    CHECK(parse_config_json(w.dump(), "w").sliding_window == 0);
    w.set("layer_types", Json::array({"sliding_attention", "full_attention"}));
    CHECK_THROWS_WITH(parse_config_json(w.dump(), "w.json"),
                      Contains("w.json: field 'layer_types[0]': \"sliding_attention\" but use_sliding_window is absent (false)") &&
                          Contains("full attention"));
    w.set("use_sliding_window", true);
    CHECK(parse_config_json(w.dump(), "w").window_for_layer(0) == 8);
    // A window no layer uses (max_window_layers 28 > 2 layers) is dropped, so the
    // config written reads back the same (a fuzzer's find).
    w.erase("layer_types");
    ModelConfig unused = parse_config_json(w.dump(), "w");
    CHECK(unused.sliding_window == 0);
    CHECK(config_to_json(parse_config_json(config_to_json(unused), "again")) == config_to_json(unused));
    // ittt's own configs spell out every key: nothing to report.
    lines.clear();
    parse_config_json(config_to_json(every_field_changed()), "mine", &lines);
    CHECK(lines.empty());
}

TEST_CASE("config.json: a Hub-style Qwen3 config with extra keys parses", "[io][config]") {
    // The shape of Qwen/Qwen3-0.6B's config.json, shrunk; unknown keys are ignored.
    const char* hub = R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";
    ModelConfig c = parse_config_json(hub, "Qwen3-0.6B/config.json");
    CHECK(c.vocab_size == 151936);
    CHECK(c.hidden_size == 1024);
    CHECK(c.num_hidden_layers == 28);
    CHECK(c.head_dim == 128);
    CHECK(c.rope_theta == 1e6);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK(c.sliding_window == 0);
    CHECK(c.layer_types.empty());
    CHECK_FALSE(c.ttt_mode);

    // The In-Place TTT release adds its keys to the same file.
    Json j = Json::parse(hub, "h");
    j.set("ttt_mode", true);
    j.set("ttt_layers", Json::array({3, 9, 15, 21, 27}));
    j.set("ttt_chunk", 4096);
    j.set("ttt_lr", 3);
    j.set("ttt_proj", true);
    j.set("ttt_target", "hidden_states");
    ModelConfig t = parse_config_json(j.dump(2), "ttt/config.json");
    CHECK(t.ttt_mode);
    CHECK(t.ttt_layers == std::vector<int>{3, 9, 15, 21, 27});
    CHECK(t.ttt_chunk == 4096);
    CHECK(t.ttt_lr == 3.0);
    CHECK(t.ttt_target == TttTargetSource::HiddenStates);

    // Sliding windows asked for the transformers way, without layer_types.
    j.set("use_sliding_window", true);
    j.set("sliding_window", 4096);
    j.set("max_window_layers", 20);
    ModelConfig s = parse_config_json(j.dump(), "s.json");
    REQUIRE(s.layer_types.size() == 28);
    CHECK(s.layer_type(19) == AttentionType::Full);
    CHECK(s.layer_type(20) == AttentionType::Sliding);
    CHECK(s.window_for_layer(27) == 4096);
}

TEST_CASE("config.json: errors name the file and the key", "[io][config]") {
    auto error_of = [](const std::string& text) {
        try {
            parse_config_json(text, "config.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    Json no_hidden = Json::parse(kMinimalConfig, "t");
    no_hidden.erase("hidden_size");
    CHECK_THAT(error_of(no_hidden.dump()), Contains("config.json: missing required field 'hidden_size'"));
    CHECK_THAT(error_of(config_with("hidden_size", "\"64\"")),
               Contains("config.json: field 'hidden_size': expected an integer, found the string \"64\""));
    CHECK_THAT(error_of(config_with("vocab_size", "260.5")), Contains("field 'vocab_size': expected an integer"));
    CHECK_THAT(error_of(config_with("rope_theta", "\"1e6\"")), Contains("field 'rope_theta': expected a number"));
    CHECK_THAT(error_of(config_with("tie_word_embeddings", "1")), Contains("field 'tie_word_embeddings': expected a boolean"));
    CHECK_THAT(error_of(config_with("ttt_mode", "\"yes\"")), Contains("field 'ttt_mode': expected a boolean"));
    CHECK_THAT(error_of(config_with("ttt_layers", "[0, \"1\"]")), Contains("field 'ttt_layers[1]': expected an integer"));
    CHECK_THAT(error_of(config_with("ttt_layers", "5")), Contains("field 'ttt_layers': expected an array"));
    CHECK_THAT(error_of(config_with("layer_types", "[\"full_attention\", \"local\"]")),
               Contains("config.json: field 'layer_types[1]': expected \"full_attention\" or \"sliding_attention\", found \"local\""));
    CHECK_THAT(error_of(config_with("ttt_target", "\"output\"")),
               Contains("field 'ttt_target': expected \"input_embed\" or \"hidden_states\""));
    CHECK_THAT(error_of(config_with("ttt_target_mode", "\"copy\"")), Contains("field 'ttt_target_mode': expected \"learned\""));
    CHECK_THAT(error_of(config_with("ttt_conv_offsets", "[-1, 0.5]")), Contains("field 'ttt_conv_offsets[1]'"));
    CHECK_THAT(error_of(config_with("sliding_window", "\"none\"")), Contains("field 'sliding_window': expected an integer"));
    // Keys this code cannot honour are refused, not ignored.
    CHECK_THAT(error_of(config_with("hidden_act", "\"gelu\"")),
               Contains("field 'hidden_act': expected \"silu\"") && Contains("found \"gelu\""));
    CHECK_THAT(error_of(config_with("attention_bias", "true")), Contains("field 'attention_bias': expected false"));
    CHECK_THAT(error_of(config_with("rope_scaling", R"({"rope_type": "yarn", "factor": 4})")),
               Contains("field 'rope_scaling': expected null (RoPE scaling is not implemented") && Contains("\"yarn\""));
    CHECK_THAT(error_of(config_with("rope_scaling", R"({"rope_type": "default"})")), Contains("field 'rope_scaling': expected null"));
    CHECK_THAT(error_of(config_with("rope_parameters", R"({"rope_type": "linear", "factor": 2})")),
               Contains("field 'rope_parameters.rope_type': expected \"default\""));
    CHECK_THAT(error_of(config_with("rope_parameters", R"({"rope_type": "default", "partial_rotary_factor": 0.5})")),
               Contains("field 'rope_parameters.partial_rotary_factor': expected 1"));
    CHECK_THAT(error_of(config_with("model_type", "\"llama\"")), Contains("field 'model_type': expected \"qwen3\""));
    // validate()'s messages arrive with the file's name.
    CHECK_THAT(error_of(config_with("num_key_value_heads", "3")),
               Contains("config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)"));
    CHECK_THAT(error_of(config_with("layer_types", "[\"full_attention\"]")),
               Contains("config.json: layer_types has 1 entries, expected num_hidden_layers = 2"));
    CHECK_THAT(error_of("[1, 2]"), Contains("config.json: expected an object, found an array"));
    CHECK_THAT(error_of("{\"vocab_size\": 1,}"), Contains("config.json:1:"));

    TempDir dir;
    CHECK_THROWS_WITH(load_config_json(dir.file("nope.json")), Contains("nope.json") && Contains("No such file"));
    ModelConfig bad;
    bad.head_dim = 15;
    CHECK_THROWS_WITH(save_config_json(dir.file("c.json"), bad), Contains("head_dim must be even"));
    CHECK_FALSE(path_exists(dir.file("c.json")));
}

// ---------------------------------------------------------------------------
// safetensors

TEST_CASE("safetensors: F32/F64/I32 round-trip bit for bit, metadata and order kept", "[io][safetensors]") {
    TempDir dir;
    std::string path = dir.file("t.safetensors");
    Tensor w = test::random_tensor({17, 5}, 1);
    Tensor d = test::random_tensor({3, 1, 4}, 2, 1.0, DType::F64);
    Tensor i = test::random_ints({9}, 3, -1000, 1000);
    Tensor scalar = Tensor::from_vector<float>({std::nanf("")}, {});  // 0-d, and a NaN survives as bits
    Tensor empty = Tensor::zeros({0, 3});
    Tensor slice = test::random_tensor({6, 2}, 4).rows(2, 5);  // a view into a larger buffer
    std::vector<NamedTensor> in = {{"z.weight", w}, {"a.double", d}, {"m.ints", i}, {"scalar", scalar}, {"empty", empty},
                                   {"slice", slice}};
    save_safetensors(path, in, {{"format", "pt"}, {"note", "ünïcode \"quoted\""}});
    CHECK(temp_files_in(dir.path).empty());

    SafetensorsFile f = load_safetensors(path);
    REQUIRE(f.tensors.size() == in.size());
    for (size_t k = 0; k < in.size(); ++k) {
        INFO(in[k].name);
        CHECK(f.tensors[k].name == in[k].name);
        CHECK(test::bitwise_equal(f.tensors[k].tensor, in[k].tensor));
    }
    CHECK(f.metadata.at("format") == "pt");
    CHECK(f.metadata.at("note") == "ünïcode \"quoted\"");
    REQUIRE(f.find("m.ints") != nullptr);
    CHECK(f.find("m.ints")->dtype() == DType::I32);
    CHECK(f.find("missing") == nullptr);

    // The layout: u64 header length, a multiple of 8, then exactly the data.
    std::string bytes = read_file(path);
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    size_t data_bytes = w.bytes() + d.bytes() + i.bytes() + scalar.bytes() + slice.bytes();
    CHECK(bytes.size() == 8 + n + data_bytes);
    Json header = Json::parse(bytes.substr(8, n), "h");
    CHECK(header.as_object()[0].first == "__metadata__");
    CHECK(header.at("a.double").at("dtype").as_string() == "F64");
    CHECK(header.at("a.double").at("data_offsets").at(0).as_int64() == static_cast<int64_t>(w.bytes()));

    // No tensors at all is a valid file too.
    save_safetensors(dir.file("none.safetensors"), {});
    CHECK(load_safetensors(dir.file("none.safetensors")).tensors.empty());
}

TEST_CASE("safetensors: BF16 and F16 read widened to F32", "[io][safetensors]") {
    // bf16 0x3FC0 = 1.5, 0xC000 = -2; f16 0x3C00 = 1, 0xC200 = -3, 0x0001 = 2^-24, 0x7C00 = +inf.
    const uint16_t bf16[] = {0x3FC0, 0xC000};
    const uint16_t f16[] = {0x3C00, 0xC200, 0x0001, 0x7C00};
    std::string data(reinterpret_cast<const char*>(bf16), 4);
    data += std::string(reinterpret_cast<const char*>(f16), 8);
    std::string header = R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[2,2],"data_offsets":[4,12]}})";
    SafetensorsFile f = parse_safetensors(forge_safetensors(header, data), "half.safetensors");
    REQUIRE(f.find("b"));
    CHECK(f.find("b")->dtype() == DType::F32);
    CHECK(f.find("b")->to_f32_vector() == std::vector<float>{1.5f, -2.0f});
    std::vector<float> h = f.find("h")->to_f32_vector();
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -3.0f);
    CHECK(h[2] == std::ldexp(1.0f, -24));
    CHECK(std::isinf(h[3]));
}

// Every 16-bit pattern, read through a forged file: the value by the formula in double
// (exact), compared bit for bit (so -0 stays -0); NaNs keep their sign and payload.
TEST_CASE("safetensors: every F16 and BF16 value widens to F32 exactly (subnormals, infinities, NaNs)", "[io][safetensors]") {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
    const std::string data(reinterpret_cast<const char*>(all.data()), 2 * all.size());
    auto bits_of = [](float f) {
        uint32_t b;
        std::memcpy(&b, &f, 4);
        return b;
    };
    struct Format {
        const char* dtype;
        int mantissa_bits, bias;
    };
    for (Format fmt : {Format{"F16", 10, 15}, Format{"BF16", 7, 127}}) {
        INFO(fmt.dtype);
        const std::string header = cat(R"({"x":{"dtype":")", fmt.dtype, R"(","shape":[65536],"data_offsets":[0,131072]}})");
        SafetensorsFile f = parse_safetensors(forge_safetensors(header, data), "all.safetensors");
        REQUIRE(f.find("x")->dtype() == DType::F32);
        std::vector<float> got = f.find("x")->to_f32_vector();
        const uint32_t mant_mask = (1u << fmt.mantissa_bits) - 1, exp_max = (1u << (15 - fmt.mantissa_bits)) - 1;
        int bad = 0, nans = 0, subnormals = 0;
        for (uint32_t i = 0; i < 65536; ++i) {
            const uint32_t sign = i >> 15, e = (i >> fmt.mantissa_bits) & exp_max, m = i & mant_mask;
            const uint32_t g = bits_of(got[i]);
            bool ok;
            if (e == exp_max && m != 0) {  // NaN: sign, all-ones exponent, payload shifted into place
                ok = g == ((sign << 31) | 0x7F800000u | (m << (23 - fmt.mantissa_bits)));
                ++nans;
            } else {
                double mag = e == exp_max ? HUGE_VAL
                             : e == 0     ? std::ldexp(static_cast<double>(m), 1 - fmt.bias - fmt.mantissa_bits)  // subnormal
                                          : std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -fmt.mantissa_bits),
                                                       static_cast<int>(e) - fmt.bias);
                subnormals += e == 0 && m != 0;
                ok = g == bits_of(static_cast<float>(sign ? -mag : mag));
            }
            if (!ok && ++bad <= 5) std::printf("%s 0x%04X read as 0x%08X\n", fmt.dtype, i, g);
        }
        CHECK(bad == 0);
        CHECK(nans == 2 * static_cast<int>(mant_mask));
        CHECK(subnormals == 2 * static_cast<int>(mant_mask));
        // BF16 is the top half of an F32, so its widening must equal the shift as well.
        if (std::string(fmt.dtype) == "BF16")
            for (uint32_t i = 0; i < 65536; ++i) REQUIRE(bits_of(got[i]) == (i << 16));
    }
}

TEST_CASE("safetensors: corrupt files are refused, naming the file and the tensor", "[io][safetensors]") {
    const std::string src = "bad.safetensors";
    auto error_of = [&](const std::string& bytes) {
        try {
            parse_safetensors(bytes, src);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    std::string two = bytes_of_floats({1, 2});
    auto one_tensor = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
        return cat(R"({"w":{"dtype":")", dtype, R"(","shape":)", shape, R"(,"data_offsets":)", offsets, "}}");
    };
    CHECK(error_of(forge_safetensors(one_tensor("F32", "[2]", "[0,8]"), two)) == "(no error)");

    CHECK_THAT(error_of("abc"), Contains("bad.safetensors: the file is 3 bytes, too short"));
    std::string huge = forge_safetensors(one_tensor("F32", "[2]", "[0,8]"), two);
    uint64_t big = 1ull << 40;
    std::memcpy(&huge[0], &big, 8);
    CHECK_THAT(error_of(huge), Contains("bad.safetensors: header length 1099511627776 is larger than the"));
    CHECK_THAT(error_of(forge_safetensors("{\"w\": [1,}", two)), Contains("bad.safetensors header:1:"));
    CHECK_THAT(error_of(forge_safetensors("[]", "")), Contains("bad.safetensors header: expected an object, found an array"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("I64", "[1]", "[0,8]"), two)),
               Contains("bad.safetensors: tensor 'w' has dtype 'I64', which is not supported"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[3]", "[0,8]"), two)),
               Contains("bad.safetensors: tensor 'w' has dtype F32 and shape (3), so 12 bytes, but its data_offsets [0, 8) span 8"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[-2]", "[0,8]"), two)), Contains("tensor 'w' has shape[0] = -2"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[2.5]", "[0,8]"), two)),
               Contains("field 'w.shape[0]': expected an integer"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[2]", "[8,0]"), two)), Contains("tensor 'w' has data_offsets [8, 0)"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[2]", "[0]"), two)), Contains("field 'w.data_offsets': expected [begin, end]"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[2]", "[8,16]"), two)),
               Contains("tensor 'w' has data_offsets [8, 16) past the end of the data buffer (8 bytes)"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[1]", "[0,4]"), two)), Contains("trailing bytes"));
    CHECK_THAT(error_of(forge_safetensors(one_tensor("F32", "[1]", "[4,8]"), two)),
               Contains("bytes [0, 4) of the data buffer belong to no tensor (a gap before tensor 'w')"));
    CHECK_THAT(error_of(forge_safetensors(
                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                   two)),
               Contains("tensors 'a' [0, 8) and 'b' [4, 8) overlap"));
    CHECK_THAT(error_of(forge_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"crc":1}})", two)),
               Contains("tensor 'w' has an unknown field 'crc'"));
    CHECK_THAT(error_of(forge_safetensors(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", two)),
               Contains("missing required field 'w.dtype'"));
    CHECK_THAT(error_of(forge_safetensors(R"({"__metadata__":{"format":1}})", "")),
               Contains("field '__metadata__.format': expected a string"));
    CHECK_THAT(error_of(forge_safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two)),
               Contains("duplicate key \"w\""));

    // A real file cut at several points: every cut is refused, none is half-read.
    TempDir dir;
    std::string path = dir.file("cut.safetensors");
    save_safetensors(path, {{"model.embed_tokens.weight", test::random_tensor({7, 3}, 5)},
                            {"model.norm.weight", test::random_tensor({3}, 6)}});
    std::string whole = read_file(path);
    uint64_t n;
    std::memcpy(&n, whole.data(), 8);
    for (size_t cut : {size_t{0}, size_t{4}, size_t{8}, size_t{8 + n / 2}, size_t{8 + n}, size_t{8 + n + 5}, whole.size() - 1}) {
        INFO("cut at " << cut << " of " << whole.size());
        write_file_atomic(path, whole.substr(0, cut));
        CHECK_THROWS_WITH(load_safetensors(path), Contains(path));
    }
    write_file_atomic(path, whole.substr(0, whole.size() - 1));
    CHECK_THROWS_WITH(load_safetensors(path), Contains("tensor 'model.norm.weight'") && Contains("past the end of the data buffer"));
    CHECK_THROWS_WITH(load_safetensors(dir.file("absent.safetensors")), Contains("absent.safetensors") && Contains("No such file"));

    // Invalid names and tensors are refused at save time, before writing.
    CHECK_THROWS_WITH(save_safetensors(dir.file("x"), {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}}),
                      Contains("tensor 'a' is listed twice"));
    CHECK_THROWS_WITH(save_safetensors(dir.file("x"), {{"__metadata__", Tensor::zeros({1})}}), Contains("reserved"));
    CHECK_THROWS_WITH(save_safetensors(dir.file("x"), {{"u", Tensor()}}), Contains("tensor 'u' is undefined"));
    CHECK_FALSE(path_exists(dir.file("x")));
}

TEST_CASE("safetensors: load_into checks names and shapes, converts F32 <-> F64", "[io][safetensors]") {
    TempDir dir;
    std::string path = dir.file("model.safetensors");
    Tensor embed = test::random_tensor({10, 4}, 7);
    Tensor down = test::random_tensor({4, 6}, 8, 1.0, DType::F64);
    Tensor ids = test::random_ints({3}, 9, 0, 10);
    save_safetensors(path, {{"model.embed_tokens.weight", embed}, {"model.layers.0.mlp.down_proj.weight", down}, {"ids", ids}});

    // F32 file -> F64 destination and back: exact, since F32 -> F64 is exact and
    // the F64 values came from the same normals.
    Tensor e64 = Tensor::zeros({10, 4}, DType::F64);
    Tensor d32 = Tensor::zeros({4, 6}, DType::F32);
    Tensor i32 = Tensor::zeros({3}, DType::I32);
    load_into(path, {{"model.embed_tokens.weight", &e64}, {"model.layers.0.mlp.down_proj.weight", &d32}, {"ids", &i32}});
    CHECK(test::bitwise_equal(e64.to_dtype(DType::F32), embed));
    CHECK(test::bitwise_equal(d32, down.to_dtype(DType::F32)));
    CHECK(test::bitwise_equal(i32, ids));

    // A shape mismatch: the message of the brief, word for word.
    Tensor wrong = Tensor::zeros({4, 5}, DType::F64);
    Tensor keep = Tensor::zeros({10, 4});
    keep.data<float>()[0] = 42.0f;
    CHECK_THROWS_WITH(load_into(path, {{"model.embed_tokens.weight", &keep}, {"model.layers.0.mlp.down_proj.weight", &wrong},
                                       {"ids", &i32}}),
                      Contains("model.safetensors: tensor 'model.layers.0.mlp.down_proj.weight' has shape (4, 6), expected "
                               "(4, 5) from config.json"));
    CHECK(keep.data<float>()[0] == 42.0f);  // nothing copied when anything is wrong

    // A missing tensor, and extras named.
    Tensor extra_dst = Tensor::zeros({2});
    CHECK_THROWS_WITH(load_into(path, {{"model.embed_tokens.weight", &keep}, {"model.layers.0.mlp.down_proj.weight", &d32},
                                       {"ids", &i32}, {"model.norm.weight", &extra_dst}}, "ckpt/config.json"),
                      Contains("tensor 'model.norm.weight' is missing (expected shape (2) from ckpt/config.json)"));
    CHECK_THROWS_WITH(load_into(path, {{"model.embed_tokens.weight", &keep}}),
                      Contains("2 unexpected tensors not in the model built from config.json: "
                               "'model.layers.0.mlp.down_proj.weight', 'ids'"));
    Tensor ints_as_float = Tensor::zeros({3});
    CHECK_THROWS_WITH(load_into(path, {{"model.embed_tokens.weight", &keep}, {"model.layers.0.mlp.down_proj.weight", &d32},
                                       {"ids", &ints_as_float}}),
                      Contains("tensor 'ids' is I32 in the file, cannot load it into F32"));
    CHECK_THROWS_WITH(load_into(path, {{"ids", &i32}, {"ids", &i32}}), Contains("tensor 'ids' is expected twice"));
}

TEST_CASE("safetensors: GPU tensors save and load through the host", "[io][safetensors][cuda]") {
    ITTT_SKIP_WITHOUT_CUDA();
    TempDir dir;
    std::string path = dir.file("gpu.safetensors");
    Tensor w = test::random_tensor({5, 3}, 11);
    save_safetensors(path, {{"w", w.to(Device::CUDA)}});
    Tensor dst = Tensor::zeros({5, 3}, DType::F32, Device::CUDA);
    load_into(path, {{"w", &dst}});
    CHECK(test::bitwise_equal(dst, w));
}

// ---------------------------------------------------------------------------
// atomic files

TEST_CASE("atomic write: replaces the file, leaves no temp file, keeps the old file on failure", "[io]") {
    TempDir dir;
    std::string path = dir.file("state.json");
    write_file_atomic(path, "old");
    write_file_atomic(path, std::vector<ByteSpan>{{"ne", 2}, {"w!", 2}});
    CHECK(read_file(path) == "new!");
    CHECK(temp_files_in(dir.path).empty());
    write_file_atomic(path, "");
    CHECK(read_file(path).empty());
    write_file_atomic(path, "kept");

    // The temporary name is taken by a directory: the write fails before the
    // rename, and the old file is untouched. (Works as root, unlike chmod.)
    std::string blocker = cat(path, ".tmp.", ::getpid());
    REQUIRE(::mkdir(blocker.c_str(), 0755) == 0);
    CHECK_THROWS_WITH(write_file_atomic(path, "clobbered"), Contains(path) && Contains("cannot create"));
    CHECK(read_file(path) == "kept");
    ::rmdir(blocker.c_str());
    CHECK(temp_files_in(dir.path).empty());

    // The target is a directory.
    std::string sub = dir.file("sub");
    make_directories(sub);
    CHECK_THROWS_WITH(write_file_atomic(sub, "x"), Contains("sub") && Contains("is a directory"));
    CHECK(is_directory(sub));
    CHECK(temp_files_in(dir.path).empty());

    // The parent is a file, or does not exist.
    CHECK_THROWS_WITH(write_file_atomic(path + "/x", "x"), Contains("Not a directory"));
    CHECK_THROWS_WITH(write_file_atomic(dir.file("no/such/dir/f"), "x"), Contains("No such file or directory"));
    CHECK(read_file(path) == "kept");

    // A read-only directory (meaningless as root, who may write anyway).
    if (::geteuid() != 0) {
        std::string ro = dir.file("ro");
        make_directories(ro);
        write_file_atomic(ro + "/f", "before");
        REQUIRE(::chmod(ro.c_str(), 0555) == 0);
        CHECK_THROWS_WITH(write_file_atomic(ro + "/f", "after"), Contains("Permission denied"));
        ::chmod(ro.c_str(), 0755);
        CHECK(read_file(ro + "/f") == "before");
        CHECK(temp_files_in(ro).empty());
    }

    CHECK_THROWS_WITH(read_file(dir.file("missing")), Contains("cannot read '") && Contains("missing': No such file"));
    CHECK_THROWS_WITH(read_file(sub), Contains("it is a directory"));
}

TEST_CASE("make_directories: mkdir -p with clear errors", "[io]") {
    TempDir dir;
    std::string deep = dir.file("a/b//c/");
    make_directories(deep);
    CHECK(is_directory(dir.file("a/b/c")));
    make_directories(deep);  // existing is fine
    write_file_atomic(dir.file("a/file"), "x");
    CHECK_THROWS_WITH(make_directories(dir.file("a/file/d")), Contains("'" + dir.file("a/file") + "' exists and is not a directory"));
    CHECK(join_path("d", "f") == "d/f");
    CHECK(join_path("d/", "f") == "d/f");
}

// ---------------------------------------------------------------------------
// checkpoints

TEST_CASE("checkpoint: save and load config, weights, optimizer and trainer state", "[io][checkpoint]") {
    TempDir tmp;
    std::string dir = tmp.file("runs/step_10");
    ModelConfig cfg = every_field_changed();
    Tensor embed = test::random_tensor({cfg.vocab_size, cfg.hidden_size}, 21);
    Tensor norm = test::random_tensor({cfg.hidden_size}, 22);
    std::vector<NamedTensor> weights = {{"model.embed_tokens.weight", embed}, {"model.norm.weight", norm}};
    std::vector<NamedTensor> optimizer = {{"adam.m.model.norm.weight", test::random_tensor({cfg.hidden_size}, 23)},
                                          {"adam.step", Tensor::from_vector<int32_t>({10}, {1})}};
    Json state = Json::object();
    state.set("step", 10);
    state.set("losses", Json::array({5.5, 4.25}));

    save_checkpoint(dir, cfg, weights, &optimizer, &state);
    CHECK(temp_files_in(dir).empty());
    check_same_config(load_checkpoint_config(dir), cfg);

    Tensor e = Tensor::zeros({cfg.vocab_size, cfg.hidden_size}), n = Tensor::zeros({cfg.hidden_size});
    load_checkpoint_weights(dir, {{"model.embed_tokens.weight", &e}, {"model.norm.weight", &n}});
    CHECK(test::bitwise_equal(e, embed));
    CHECK(test::bitwise_equal(n, norm));
    CHECK(load_safetensors(checkpoint_model_path(dir)).metadata.at("format") == "pt");  // what transformers checks

    REQUIRE(checkpoint_has_optimizer_state(dir));
    SafetensorsFile opt = load_checkpoint_optimizer_state(dir);
    CHECK(test::bitwise_equal(*opt.find("adam.m.model.norm.weight"), optimizer[0].tensor));
    CHECK(opt.find("adam.step")->to_i32_vector() == std::vector<int32_t>{10});
    REQUIRE(checkpoint_has_trainer_state(dir));
    CHECK(load_checkpoint_trainer_state(dir) == state);

    // Weights that do not fit the config: the message names the checkpoint's config.
    Tensor small = Tensor::zeros({cfg.hidden_size - 1});
    CHECK_THROWS_WITH(load_checkpoint_weights(dir, {{"model.embed_tokens.weight", &e}, {"model.norm.weight", &small}}),
                      Contains("model.safetensors: tensor 'model.norm.weight' has shape (96), expected (95) from " +
                               checkpoint_config_path(dir)));

    // Saving again without the optional parts removes the stale ones.
    save_checkpoint(dir, cfg, weights, nullptr, nullptr);
    CHECK_FALSE(checkpoint_has_optimizer_state(dir));
    CHECK_FALSE(checkpoint_has_trainer_state(dir));
    CHECK_THROWS_WITH(load_checkpoint_optimizer_state(dir), Contains("has no optimizer.safetensors"));
    CHECK_THROWS_WITH(load_checkpoint_trainer_state(dir), Contains("has no trainer_state.json"));

    // Bad inputs are refused before anything on disk changes.
    ModelConfig bad = cfg;
    bad.num_key_value_heads = 4;
    CHECK_THROWS_WITH(save_checkpoint(dir, bad, weights, nullptr, nullptr), Contains("num_key_value_heads"));
    Json nan_state = Json::object();
    nan_state.set("loss", std::nan(""));
    CHECK_THROWS_WITH(save_checkpoint(dir, cfg, weights, nullptr, &nan_state), Contains("field 'loss'"));
    check_same_config(load_checkpoint_config(dir), cfg);

    // Not a checkpoint.
    CHECK_THROWS_WITH(load_checkpoint_config(tmp.file("nowhere")), Contains("checkpoint directory") && Contains("does not exist"));
    make_directories(tmp.file("half"));
    save_safetensors(checkpoint_model_path(tmp.file("half")), weights);
    CHECK_THROWS_WITH(load_checkpoint_config(tmp.file("half")), Contains("has no config.json"));
    CHECK_THROWS_WITH(load_checkpoint_weights(tmp.file("half"), {}), Contains("has no config.json"));
}
