// Tests of the HTML step-through report (src/driver/html_report.*, `ittt step --html`):
// the page parses as balanced markup, every id it refers to exists, and it is
// self-contained (no http(s), no external file, no network call from its script).
// What it looks like in a browser is `make report-png`'s job (docs/img/step_report.png).
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "cli_util.h"
#include "driver/html_report.h"
#include "model/model_io.h"
#include "tiny_model.h"

using namespace ittt;
using namespace ittt::test;

namespace {

// What a parse of the page found: errors (with their byte offsets), ids, and every
// reference to an id (href="#x", data-chunk, data-query, data-first-*).
struct Markup {
    std::vector<std::string> errors;
    std::set<std::string> ids;
    std::vector<std::string> references;
    std::vector<std::string> attributes;  // "name=value" of every attribute
    std::string scripts, styles;          // their raw text
    int elements = 0;
};

bool is_void(const std::string& tag) {
    static const std::set<std::string> v = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"};
    return v.count(tag) > 0;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// `&` must open a character reference: &name; &#123; &#x1f;
bool valid_ampersands(const std::string& text) {
    for (size_t i = text.find('&'); i != std::string::npos; i = text.find('&', i + 1)) {
        size_t j = i + 1;
        if (j < text.size() && text[j] == '#') {
            ++j;
            const bool hex = j < text.size() && (text[j] == 'x' || text[j] == 'X');
            j += hex;
            const size_t digits = j;
            while (j < text.size() && (hex ? std::isxdigit(static_cast<unsigned char>(text[j])) : std::isdigit(static_cast<unsigned char>(text[j])))) ++j;
            if (j == digits) return false;
        } else {
            const size_t name = j;
            while (j < text.size() && std::isalnum(static_cast<unsigned char>(text[j]))) ++j;
            if (j == name) return false;
        }
        if (j >= text.size() || text[j] != ';') return false;
    }
    return true;
}

// A strict reading of the page: a doctype, then elements that open and close in
// order (void elements need no end tag; "/>" only for them and inside <svg>),
// attribute values in double quotes with & escaped, no stray < in text, script
// and style as raw text up to their end tags.
Markup parse(const std::string& html) {
    Markup m;
    auto error = [&](size_t at, const std::string& what) { m.errors.push_back(cat("at byte ", at, ": ", what)); };
    const std::string doctype = "<!DOCTYPE html>";
    if (html.compare(0, doctype.size(), doctype) != 0) error(0, "no <!DOCTYPE html> at the start");
    size_t i = html.compare(0, doctype.size(), doctype) == 0 ? doctype.size() : 0;
    std::vector<std::string> open;
    int svg_depth = 0;
    while (i < html.size()) {
        const size_t lt = html.find('<', i);
        const std::string text = html.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
        if (!valid_ampersands(text)) error(i, "an & that opens no character reference in text");
        if (text.find('>') != std::string::npos) error(i, "a stray > in text");
        if (lt == std::string::npos) break;
        i = lt;
        if (html.compare(i, 4, "<!--") == 0) {
            const size_t end = html.find("-->", i);
            if (end == std::string::npos) return error(i, "an unclosed comment"), m;
            i = end + 3;
            continue;
        }
        const bool closing = i + 1 < html.size() && html[i + 1] == '/';
        size_t j = i + (closing ? 2 : 1);
        const size_t name_start = j;
        while (j < html.size() && (std::isalnum(static_cast<unsigned char>(html[j])) || html[j] == '-')) ++j;
        const std::string tag = lower(html.substr(name_start, j - name_start));
        if (tag.empty() || !std::isalpha(static_cast<unsigned char>(tag[0]))) {
            error(i, "a < that opens no tag");
            i = j + 1;
            continue;
        }
        if (closing) {
            while (j < html.size() && html[j] == ' ') ++j;
            if (j >= html.size() || html[j] != '>') error(i, "a malformed end tag </" + tag);
            if (open.empty() || open.back() != tag) error(i, "</" + tag + "> closes " + (open.empty() ? std::string("nothing") : "<" + open.back() + ">"));
            else open.pop_back();
            if (tag == "svg") --svg_depth;
            i = j + 1;
            continue;
        }
        // Attributes: name="value", separated by spaces.
        bool self_closing = false;
        while (true) {
            while (j < html.size() && std::isspace(static_cast<unsigned char>(html[j]))) ++j;
            if (j >= html.size()) return error(i, "a tag <" + tag + " runs to the end"), m;
            if (html[j] == '>') break;
            if (html.compare(j, 2, "/>") == 0) {
                self_closing = true;
                ++j;
                break;
            }
            const size_t an = j;
            while (j < html.size() && (std::isalnum(static_cast<unsigned char>(html[j])) || html[j] == '-' || html[j] == ':')) ++j;
            const std::string attr = lower(html.substr(an, j - an));
            if (attr.empty() || j + 1 >= html.size() || html[j] != '=' || html[j + 1] != '"') {
                error(an, "attribute '" + attr + "' of <" + tag + "> without a double-quoted value");
                return m;
            }
            const size_t vs = j + 2, ve = html.find('"', vs);
            if (ve == std::string::npos) return error(an, "an unclosed attribute value"), m;
            const std::string value = html.substr(vs, ve - vs);
            if (value.find('<') != std::string::npos) error(vs, "a < inside attribute " + attr);
            if (!valid_ampersands(value)) error(vs, "an & that opens no character reference in attribute " + attr);
            m.attributes.push_back(attr + "=" + value);
            if (attr == "id") {
                if (!m.ids.insert(value).second) error(vs, "id '" + value + "' given twice");
            }
            if (attr == "href" && !value.empty() && value[0] == '#') m.references.push_back(value.substr(1));
            if ((attr == "data-chunk" || attr == "data-query" || attr == "data-first-chunk" || attr == "data-first-query") && !value.empty())
                m.references.push_back(value);
            j = ve + 1;
        }
        ++m.elements;
        i = j + 1;
        if (tag == "script" || tag == "style") {  // raw text up to the end tag
            const std::string end = "</" + tag + ">";
            const size_t e = html.find(end, i);
            if (e == std::string::npos) return error(i, "an unclosed <" + tag + ">"), m;
            (tag == "script" ? m.scripts : m.styles) += html.substr(i, e - i);
            i = e + end.size();
            continue;
        }
        if (self_closing && !is_void(tag) && svg_depth == 0) error(i, "<" + tag + "/> is not a void element outside <svg>");
        if (!self_closing && !is_void(tag)) {
            open.push_back(tag);
            if (tag == "svg") ++svg_depth;
        }
    }
    for (const std::string& tag : open) m.errors.push_back("<" + tag + "> never closed");
    return m;
}

// Everything the page must be: parsed without error, every reference an id on it,
// nothing fetched from anywhere.
void check_report(const std::string& html) {
    const Markup m = parse(html);
    for (const std::string& e : m.errors) FAIL_CHECK(e);
    CHECK(m.elements > 50);
    CHECK(m.references.size() > 10);  // chunk buttons, bands, strip groups, query links
    for (const std::string& ref : m.references) {
        INFO("a reference to '" << ref << "'");
        CHECK(m.ids.count(ref) == 1);
    }
    const std::string all = lower(html);
    CHECK(all.find("http://") == std::string::npos);
    CHECK(all.find("https://") == std::string::npos);
    for (const std::string& a : m.attributes) {
        INFO(a);
        CHECK(a.rfind("src=", 0) != 0);  // no external script, image or frame
        if (a.rfind("href=", 0) == 0) CHECK(a.rfind("href=#", 0) == 0);  // links stay on the page
        CHECK(lower(a).find("javascript:") == std::string::npos);
    }
    for (const char* tag : {"<link", "<iframe", "<object", "<embed", "<img", "<audio", "<video"}) CHECK(all.find(tag) == std::string::npos);
    CHECK(m.styles.find("url(") == std::string::npos);
    CHECK(m.styles.find("@import") == std::string::npos);
    CHECK(m.styles.find("@font-face") == std::string::npos);
    for (const char* call : {"fetch(", "XMLHttpRequest", "import(", "WebSocket", "EventSource", ".src"}) CHECK(m.scripts.find(call) == std::string::npos);
}


probe::ProbeRun small_run(const TaskConfig& task) {
    Model m(probe_config());
    m.init_random(8);
    randomise_ttt(m, 700, 0.5);
    probe::ProbeOptions o;
    o.task = task;
    o.seq_len = 16;
    o.seed = 5;
    o.examples = 2;
    o.top = 3;
    probe::ProbeRun run = probe::run_probe(m, o);
    run.summary.checkpoint = "a <model> & \"its\" 'name'";  // needs escaping everywhere it appears
    return run;
}

}  // namespace

TEST_CASE("html check: the parser this file trusts finds what it should", "[html]") {
    CHECK(parse("<!DOCTYPE html><html><body><p id=\"a\">x &amp; y</p></body></html>").errors.empty());
    CHECK_FALSE(parse("<!DOCTYPE html><html><body><p>x</body></html>").errors.empty());         // <p> never closed
    CHECK_FALSE(parse("<!DOCTYPE html><html><body><div/></body></html>").errors.empty());       // not void
    CHECK(parse("<!DOCTYPE html><svg><rect x=\"1\"/></svg>").errors.empty());                    // fine in SVG
    CHECK_FALSE(parse("<!DOCTYPE html><p class=x>1</p>").errors.empty());                       // unquoted
    CHECK_FALSE(parse("<!DOCTYPE html><p>a & b</p>").errors.empty());                           // bare &
    CHECK_FALSE(parse("<!DOCTYPE html><p>a < b</p>").errors.empty());                           // bare <
    CHECK_FALSE(parse("<!DOCTYPE html><p id=\"a\"></p><p id=\"a\"></p>").errors.empty());       // id twice
    CHECK(parse("<!DOCTYPE html><script>if (a < b && c) {}</script>").errors.empty());          // raw text
    Markup m = parse("<!DOCTYPE html><a href=\"#x\" data-chunk=\"y\">1</a><p id=\"x\"></p>");
    CHECK(m.references == std::vector<std::string>{"x", "y"});
    CHECK(m.ids == std::set<std::string>{"x"});
    CHECK(html::escape("<a & \"b\" 'c'>") == "&lt;a &amp; &quot;b&quot; &#39;c&#39;&gt;");
}

TEST_CASE("html report: well-formed, every id it names exists, self-contained", "[html][driver]") {
    SECTION("mqar, pairs spread over the chunks") {
        probe::ProbeRun run = small_run(parse_task_config("mqar", {{"pairs", "2"}, {"gap", "4"}, {"spread", "8"}}));
        const std::string page = html::format_report(run);
        check_report(page);
        const Markup m = parse(page);
        for (const probe::ChunkView& cv : run.step.chunks) CHECK(m.ids.count(cat("chunk-", cv.chunk)) == 1);  // one panel per chunk
        for (const probe::ProbeQuery& q : run.step.queries) CHECK(m.ids.count(cat("query-", q.pair)) == 1);  // and per query
        CHECK(page.find("a &lt;model&gt; &amp; &quot;its&quot; &#39;name&#39;") != std::string::npos);
        CHECK(page.find("<svg") != std::string::npos);  // the staircase, the taps, a query's bars
        CHECK(page.find("What each key retrieves") != std::string::npos);
        CHECK(page.find("Logit changes from chunk 0") != std::string::npos);
    }
    SECTION("the theorem probe: one query") {
        check_report(html::format_report(small_run(parse_task_config("theorem", {{"chunk", "4"}, {"window", "3"}}))));
    }
    SECTION("data/learned-mqar, the demo's setting") {
        Model m = load_model(repo_file("data/learned-mqar"));
        probe::ProbeOptions o;
        o.task = parse_task_config("mqar", {{"pairs", "8"}, {"gap", "96"}, {"spread", "256"}});
        o.seq_len = 384;
        o.examples = 1;
        check_report(html::format_report(probe::run_probe(m, o)));
    }
}

TEST_CASE("cli: step --html writes the page; the theory mode refuses it", "[html][cli]") {
    TempDir tmp("ittt_test_html");
    Result r = run_ittt(tmp, "step --ckpt " + repo_file("data/demo") +
                                 " --task mqar --task-opt pairs=4,gap=32 --seq-len 64 --examples 2 --no-steps --no-plots --html " +
                                 (tmp / "r.html"));
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Catch::Contains("HTML report: " + (tmp / "r.html")));
    check_report(read_text(tmp / "r.html"));
    check_usage_error(run_ittt(tmp, "step --theory --html x.html"), "step", "--html is a model-mode option");
    check_usage_error(run_ittt(tmp, "step --ckpt " + repo_file("data/demo") + " --compact --query 1"), "step",
                      "give --compact or --query j, not both");
    check_usage_error(run_ittt(tmp, "step --ckpt " + repo_file("data/demo") + " --task mqar --task-opt pairs=4,gap=32 --seq-len 64 "
                                    "--examples 1 --no-plots --query 7"),
                      "step", "--query 7: sequence 0 has no query ?7 (its queries: ?");
}
