// libFuzzer target: config.json parsing and validation (io/config_json.h,
// io/model_config.h) on arbitrary text. Every input must parse into a config
// that passes ModelConfig::validate() or be refused with ittt::Error; a
// config that parses must round-trip: written out and parsed again, it gives
// the same text.
#include <cstdint>
#include <string>

#include "io/config_json.h"
#include "io/json.h"
#include "model/memory_budget.h"
#include "runtime/error.h"

namespace {
void check_writer(const std::string& text) {
    ittt::JsonWriter w(ittt::JsonLayout::Compact);
    w.begin_object().field(text, text).end_object();
    const ittt::Json back = ittt::Json::parse(w.text(), "written");  // an Error here is a finding: it escapes
    const std::string& key = back.as_object().at(0).first;
    if (key != back.as_object().at(0).second.as_string()) __builtin_trap();
    ittt::JsonWriter again(ittt::JsonLayout::Compact);
    again.value(key);
    ittt::JsonWriter first(ittt::JsonLayout::Compact);
    first.value(text);
    if (again.text() != first.text()) __builtin_trap();  // the replacement is idempotent, and valid UTF-8 passes unchanged
    bool ascii_no_control = true;
    for (unsigned char c : text) ascii_no_control = ascii_no_control && c >= 0x20 && c < 0x80;
    if (ascii_no_control && key != text) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    check_writer(text);
    ittt::ModelConfig cfg;
    try {
        cfg = ittt::parse_config_json(text, "fuzz input");
    } catch (const ittt::Error&) {
        return 0;
    }
    cfg.validate();  // must not throw: parse_config_json validated it
    const std::string once = ittt::config_to_json(cfg);
    const std::string twice = ittt::config_to_json(ittt::parse_config_json(once, "round trip"));
    if (once != twice) __builtin_trap();
    // The size estimates must be finite and non-negative for every valid config.
    const double params = ittt::parameter_count(cfg), bytes = ittt::forward_bytes(cfg, 3, 17, true);
    if (!(params > 0) || !(bytes > 0) || params > 1e300 || bytes > 1e300) __builtin_trap();
    return 0;
}
