// Tokenizer tests: ittt's C++ tokenizer against the ids the Hugging Face `tokenizers`
// library gives, on the fixture tests/fixtures/make_tokenizer_fixture.py writes (a
// byte-level BPE with Qwen2's settings, 3000 strings, 300 decodes, 15 variants of the
// normalizer / pre-tokenizer / added tokens / merges), and its refusals of what it does not support.
// Exact match everywhere: ids are integers and text is bytes, there is no tolerance.
#include "io/atomic_file.h"
#include "io/json.h"
#include "runtime/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace ittt;
using Catch::Contains;

namespace {

std::string fixture(const std::string& name) { return test::fixture_path("tokenizer/" + name); }

const std::string& tokenizer_text() {
    static const std::string text = read_file(fixture("tokenizer.json"));
    return text;
}
const Json& cases() {
    static const Json j = Json::parse(read_file(fixture("cases.json")), "cases.json");
    return j;
}

std::vector<int32_t> ids_of(const Json& a) {
    std::vector<int32_t> v;
    for (const Json& x : a.as_array()) v.push_back(x.as_int());
    return v;
}

// The text with control and non-ASCII bytes escaped, for a readable failure.
std::string shown(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7F) out += static_cast<char>(c);
        else out += cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    }
    return out;
}

std::string ids_str(const std::vector<int32_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += cat(i ? "," : "", v[i]);
    return s + "]";
}

// Encodes every case; prints the first mismatches; returns how many differ.
int count_mismatches(const Tokenizer& tok, const Json& list, const std::string& what, bool check_decode) {
    int bad = 0;
    for (const Json& c : list.as_array()) {
        const std::string& text = c.at("text").as_string();
        std::vector<int32_t> want = ids_of(c.at("ids")), got = tok.encode(text);
        std::string back, want_back;
        if (check_decode) {
            back = tok.decode(want);
            want_back = c.find("decoded") ? c.at("decoded").as_string() : text;
        }
        if (got != want || back != want_back) {
            if (++bad <= 5)
                std::printf("%s: \"%s\"\n  ittt       %s\n  tokenizers %s%s\n", what.c_str(), shown(text).c_str(), ids_str(got).c_str(),
                            ids_str(want).c_str(), back == want_back ? "" : cat("\n  decoded \"", shown(back), "\", expected \"",
                                                                                 shown(want_back), "\"").c_str());
        }
    }
    if (bad) std::printf("%s: %d of %zu strings differ\n", what.c_str(), bad, list.size());
    return bad;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// tokenizer.json with one field replaced ("a.b" paths one level deep at most).
std::string with_field(const std::string& key, const Json& value, const std::string& inner = "") {
    Json root = Json::parse(tokenizer_text(), "tokenizer.json");
    if (inner.empty()) {
        root.set(key, value);
    } else {
        Json section = root.at(key);
        section.set(inner, value);
        root.set(key, section);
    }
    return root.dump();
}

Json parse_json(const std::string& s) { return Json::parse(s, "test"); }

}  // namespace

TEST_CASE("tokenizer: the fixture's ids and decodes match `tokenizers` on every string", "[tokenizer]") {
    Tokenizer tok = Tokenizer::load(fixture("tokenizer.json"));
    INFO("reference: " << cases().at("library").as_string() << "; " << tok.describe());
    REQUIRE(cases().at("cases").size() >= 3000);
    CHECK(count_mismatches(tok, cases().at("cases"), "tokenizer.json", true) == 0);
    CHECK(tok.vocab_size() == 1205);
    CHECK(tok.token_id("<|im_end|>") == 1202);
    CHECK(tok.is_special(1202));
    CHECK_FALSE(tok.is_special(tok.token_id("<think>")));
    CHECK(tok.token_id("no such token") == -1);
}

TEST_CASE("tokenizer: decode of arbitrary ids, with and without special tokens, as `tokenizers`", "[tokenizer]") {
    Tokenizer tok = Tokenizer::load(fixture("tokenizer.json"));
    int bad = 0;
    for (const Json& c : cases().at("decode").as_array()) {
        std::vector<int32_t> ids = ids_of(c.at("ids"));
        std::string all = tok.decode(ids), skip = tok.decode(ids, true);
        if (all != c.at("text").as_string() || skip != c.at("text_skip_special").as_string()) {
            if (++bad <= 5)
                std::printf("decode %s: \"%s\" / \"%s\", expected \"%s\" / \"%s\"\n", ids_str(ids).c_str(), shown(all).c_str(),
                            shown(skip).c_str(), shown(c.at("text").as_string()).c_str(),
                            shown(c.at("text_skip_special").as_string()).c_str());
        }
    }
    CHECK(bad == 0);
    // The raw bytes: what a stream printed token by token shows once all bytes are out.
    std::vector<int32_t> ids = tok.encode("é 你好");
    CHECK(tok.decode_bytes(ids) == "é 你好");
    std::string cut;
    for (int32_t id : ids) cut += tok.decode_bytes({id});
    CHECK(cut == "é 你好");
}

TEST_CASE("tokenizer: every normalizer, Split behaviour, ByteLevel setting and merge form matches `tokenizers`", "[tokenizer]") {
    int variants = 0;
    for (const Json& v : cases().at("variants").as_array()) {
        const std::string name = v.at("name").as_string();
        std::string text;
        if (v.contains("legacy_merges")) {
            Json root = Json::parse(tokenizer_text(), "tokenizer.json");
            Json model = root.at("model");
            Json merges = Json::array();
            for (const Json& m : model.at("merges").as_array()) merges.push_back(m.at(0).as_string() + " " + m.at(1).as_string());
            model.set("merges", merges);
            root.set("model", model);
            text = root.dump();
        } else if (v.contains("normalizer")) {
            text = with_field("normalizer", v.at("normalizer"));
        } else if (v.contains("pre_tokenizer")) {
            text = with_field("pre_tokenizer", v.at("pre_tokenizer"));
        } else if (v.contains("added_tokens")) {
            text = with_field("added_tokens", v.at("added_tokens"));
        } else if (v.contains("model")) {
            text = with_field("model", v.at("model").at("ignore_merges"), "ignore_merges");
        } else {
            FAIL("variant '" << name << "' changes nothing this test knows");
        }
        Tokenizer tok = Tokenizer::parse(text, "tokenizer.json (" + name + ")");
        INFO("variant: " << name << "; " << tok.describe());
        CHECK(count_mismatches(tok, v.at("cases"), name, false) == 0);
        ++variants;
    }
    CHECK(variants == 15);
}

TEST_CASE("tokenizer: what it does not support is refused, naming the file and the field", "[tokenizer]") {
    auto load_error = [](const std::string& text) { return error_of([&] { Tokenizer::parse(text, "tok.json"); }); };
    CHECK_THAT(load_error(with_field("normalizer", parse_json(R"({"type": "Lowercase"})"))),
               Contains("tok.json: field 'normalizer': normalizer 'Lowercase' is not supported (supported: NFC, NFD, NFKC, NFKD"));
    CHECK_THAT(load_error(with_field("pre_tokenizer", parse_json(R"({"type": "Metaspace", "replacement": "_"})"))),
               Contains("field 'pre_tokenizer': pre-tokenizer 'Metaspace' is not supported (supported: Split, ByteLevel"));
    CHECK_THAT(load_error(with_field("pre_tokenizer",
                                     parse_json(R"({"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated", "invert": false})"))),
               Contains("field 'pre_tokenizer.pattern': the pattern does not compile with PCRE2 at offset 1"));
    CHECK_THAT(load_error(with_field("pre_tokenizer",
                                     parse_json(R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false})"))),
               Contains("behavior 'Sideways' is not supported"));
    CHECK_THAT(load_error(with_field("model", true, "byte_fallback")), Contains("field 'model.byte_fallback': byte_fallback"));
    CHECK_THAT(load_error(with_field("model", 0.1, "dropout")), Contains("field 'model.dropout': dropout 0.1"));
    CHECK_THAT(load_error(with_field("model", "##", "continuing_subword_prefix")), Contains("continuing_subword_prefix"));
    CHECK_THAT(load_error(with_field("model", "WordPiece", "type")), Contains("field 'model': model 'WordPiece' is not supported"));
    CHECK_THAT(load_error(with_field("model", 1, "new_setting")), Contains("field 'model': unknown field 'new_setting'"));
    CHECK_THAT(load_error(with_field("post_processor", parse_json(R"({"type": "TemplateProcessing"})"))),
               Contains("post_processor 'TemplateProcessing' (it would add ids such as BOS) is not supported"));
    CHECK_THAT(load_error(with_field("padding", parse_json(R"({"strategy": "BatchLongest"})"))), Contains("field 'padding': padding"));
    CHECK_THAT(load_error(with_field("added_tokens", parse_json(R"([{"id": 5000, "content": "<x>", "lstrip": true}])"))),
               Contains("added token '<x>' with lstrip true is not supported"));
    CHECK_THAT(load_error(with_field("added_tokens", parse_json(R"([{"id": 2000000000, "content": "<x>"}])"))),
               Contains("field 'added_tokens[0].id': token id 2000000000 is outside [0, 16777216)"));
    CHECK_THAT(load_error(with_field("added_tokens", parse_json(R"([{"id": 0, "content": "<x>"}])"))),
               Contains("added token '<x>' has id 0, which the vocabulary gives to"));
    {
        Json root = Json::parse(tokenizer_text(), "t");
        Json model = root.at("model");
        Json merges = model.at("merges");
        merges.push_back(Json::array({"no such", "token"}));
        model.set("merges", merges);
        root.set("model", model);
        CHECK_THAT(load_error(root.dump()), Contains("merge token 'no such' is not in the vocabulary"));
    }
    Tokenizer tok = Tokenizer::load(fixture("tokenizer.json"));
    CHECK_THAT(error_of([&] { tok.encode("ok \xC3\x28 bad"); }),
               Contains("the text is not valid UTF-8: byte 3 (0xC3) does not start a well-formed character"));
    CHECK_THAT(error_of([&] { tok.decode({1, 99999}); }), Contains("token id 99999 is not in the vocabulary (ids run over [0, 1205))"));
    Tokenizer no_decoder = Tokenizer::parse(with_field("decoder", parse_json(R"({"type": "Metaspace"})")), "tok.json");
    CHECK(no_decoder.encode("a b") == tok.encode("a b"));  // encoding does not need the decoder
    CHECK_THAT(error_of([&] { no_decoder.decode({1}); }), Contains("decoder 'Metaspace' is not supported (supported: ByteLevel)"));
}

TEST_CASE("utf8_lossy: one U+FFFD per maximal ill-formed subpart, valid text unchanged", "[tokenizer]") {
    const std::string R = "\xEF\xBF\xBD";
    CHECK(utf8_lossy("plain ascii") == "plain ascii");
    CHECK(utf8_lossy("\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80") == "\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80");  // é 你 😀
    CHECK(utf8_lossy("\xE4\xBD") == R);                   // a truncated 3-byte character: one replacement
    CHECK(utf8_lossy("\xE4\xBD" "a") == R + "a");
    CHECK(utf8_lossy("\x80\x80") == R + R);               // lone continuation bytes: one each
    CHECK(utf8_lossy("\xC0\xAF") == R + R);               // overlong lead byte: never valid
    CHECK(utf8_lossy("\xED\xA0\x80") == R + R + R);       // a surrogate: ED's second byte must be < A0
    CHECK(utf8_lossy("\xF0\x9F\x98") == R);               // 3 of 4 bytes
    CHECK(utf8_lossy("\xF4\x90\x80\x80") == R + R + R + R);  // above U+10FFFF
}
