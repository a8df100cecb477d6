#include "io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/atomic_file.h"
#include "io/json.h"
#include "runtime/error.h"

namespace ittt {

// The format is little-endian; so are x86-64 and AArch64 Linux. Rather than
// byte-swap code that would never run, refuse to build elsewhere.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace {

const char* kMetadataKey = "__metadata__";

// The dtypes a file may hold and what they load as.
struct FileDType {
    const char* name;
    size_t size;
    DType loads_as;
};
const FileDType kFileDTypes[] = {
    {"F32", 4, DType::F32}, {"F64", 8, DType::F64}, {"I32", 4, DType::I32},
    {"BF16", 2, DType::F32}, {"F16", 2, DType::F32},
};

const FileDType* find_file_dtype(const std::string& name) {
    for (const FileDType& d : kFileDTypes)
        if (name == d.name) return &d;
    return nullptr;
}

// bf16 is the top half of an f32: shifting back is exact.
float bf16_to_f32(uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// IEEE half -> float; every half is exactly representable as a float.
float f16_to_f32(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F;
    uint32_t mantissa = h & 0x3FF;
    if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
        float f = std::ldexp(static_cast<float>(mantissa), -24);
        return sign ? -f : f;
    }
    uint32_t bits = exponent == 31 ? sign | 0x7F800000u | (mantissa << 13)          // inf / NaN
                                   : sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

struct Entry {
    std::string name;
    const FileDType* dtype;
    Shape shape;
    int64_t begin, end;
};

std::string range_str(int64_t b, int64_t e) { return cat("[", b, ", ", e, ")"); }

Entry parse_entry(const std::string& source, const std::string& name, const Json& info) {
    ITTT_CHECK(!name.empty(), source, ": a tensor has an empty name");
    info.as_object();
    for (const Json::Member& m : info.as_object())
        ITTT_CHECK(m.first == "dtype" || m.first == "shape" || m.first == "data_offsets", source, ": tensor '", name,
                   "' has an unknown field '", m.first, "' (expected only dtype, shape and data_offsets)");
    Entry e;
    e.name = name;
    const std::string& dtype = info.at("dtype").as_string();
    e.dtype = find_file_dtype(dtype);
    ITTT_CHECK(e.dtype, source, ": tensor '", name, "' has dtype '", dtype,
               "', which is not supported (F32, F64, I32; BF16 and F16 read as F32)");

    int64_t numel = 1;
    const Json& shape = info.at("shape");
    for (size_t i = 0; i < shape.as_array().size(); ++i) {
        int64_t d = shape.at(i).as_int64();
        ITTT_CHECK(d >= 0, source, ": tensor '", name, "' has shape[", i, "] = ", d, ", expected >= 0");
        ITTT_CHECK(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d, source, ": tensor '", name,
                   "' has a shape whose size overflows 64 bits");
        numel *= d;
        e.shape.push_back(d);
    }
    const Json& offsets = info.at("data_offsets");
    ITTT_CHECK(offsets.as_array().size() == 2, offsets.where(), ": expected [begin, end], found an array of ",
               offsets.as_array().size());
    e.begin = offsets.at(0).as_int64();
    e.end = offsets.at(1).as_int64();
    ITTT_CHECK(e.begin >= 0 && e.begin <= e.end, source, ": tensor '", name, "' has data_offsets ", range_str(e.begin, e.end),
               ", expected 0 <= begin <= end");
    int64_t elem = static_cast<int64_t>(e.dtype->size);
    ITTT_CHECK(numel <= std::numeric_limits<int64_t>::max() / elem, source, ": tensor '", name, "' is too large");
    ITTT_CHECK(numel * elem == e.end - e.begin, source, ": tensor '", name, "' has dtype ", dtype, " and shape ",
               shape_str(e.shape), ", so ", numel * elem, " bytes, but its data_offsets ", range_str(e.begin, e.end), " span ",
               e.end - e.begin);
    return e;
}

// The tensors must tile the buffer exactly: a gap or an overlap means a broken
// writer or a tampered file, and trailing bytes mean the header lies.
void check_layout(const std::string& source, std::vector<Entry>& entries, int64_t buffer_size) {
    for (const Entry& e : entries)
        ITTT_CHECK(e.end <= buffer_size, source, ": tensor '", e.name, "' has data_offsets ", range_str(e.begin, e.end),
                   " past the end of the data buffer (", buffer_size, " bytes): the file is truncated or the header is wrong");
    std::vector<const Entry*> order;
    for (const Entry& e : entries) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    int64_t cursor = 0;
    const Entry* previous = nullptr;
    for (const Entry* e : order) {
        ITTT_CHECK(e->begin >= cursor, source, ": tensors '", previous ? previous->name : "", "' ",
                   previous ? range_str(previous->begin, previous->end) : "", " and '", e->name, "' ",
                   range_str(e->begin, e->end), " overlap in the data buffer");
        ITTT_CHECK(e->begin == cursor, source, ": bytes ", range_str(cursor, e->begin),
                   " of the data buffer belong to no tensor (a gap before tensor '", e->name, "')");
        cursor = e->end;
        previous = e;
    }
    ITTT_CHECK(cursor == buffer_size, source, ": the data buffer has ", buffer_size, " bytes but the tensors cover only ",
               cursor, " (trailing bytes after the last tensor)");
}

Tensor decode(const Entry& e, const char* data) {
    Tensor t = Tensor::empty(e.shape, e.dtype->loads_as);
    if (t.numel() == 0) return t;
    if (std::strcmp(e.dtype->name, "BF16") == 0 || std::strcmp(e.dtype->name, "F16") == 0) {
        bool bf16 = e.dtype->name[0] == 'B';
        float* out = t.data<float>();
        for (int64_t i = 0; i < t.numel(); ++i) {
            uint16_t h;
            std::memcpy(&h, data + 2 * i, 2);
            out[i] = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
        }
    } else {
        std::memcpy(t.raw(), data, t.bytes());  // the buffer need not be aligned; memcpy does not care
    }
    return t;
}

std::string join_names(const std::vector<std::string>& names, size_t limit) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < limit; ++i) s += cat(i ? ", " : "", "'", names[i], "'");
    if (names.size() > limit) s += cat(" and ", names.size() - limit, " more");
    return s;
}

}  // namespace

uint16_t f32_to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0)
        return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN: keep it a NaN (quiet), sign kept
    const uint32_t lsb = (bits >> 16) & 1u;
    return static_cast<uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata, bool bf16) {
    Json header = Json::object();
    if (!metadata.empty()) {
        Json meta = Json::object();
        for (const auto& [k, v] : metadata) meta.set(k, v);
        header.set(kMetadataKey, meta);
    }
    std::vector<Tensor> host;  // keeps GPU tensors' host copies alive until written
    std::vector<ByteSpan> pieces(2);
    int64_t offset = 0;
    for (const NamedTensor& nt : tensors) {
        ITTT_CHECK(!nt.name.empty(), path, ": cannot save a tensor with an empty name");
        ITTT_CHECK(nt.name != kMetadataKey, path, ": '", kMetadataKey, "' is reserved and cannot name a tensor");
        ITTT_CHECK(!header.contains(nt.name), path, ": tensor '", nt.name, "' is listed twice");
        ITTT_CHECK(nt.tensor.defined(), path, ": tensor '", nt.name, "' is undefined");
        host.push_back(nt.tensor.device() == Device::CPU ? nt.tensor : nt.tensor.to(Device::CPU));
        const bool narrow = bf16 && nt.tensor.dtype() != DType::I32;
        if (narrow) {
            // BF16 bits in an I32 tensor of half the length (rounded up): the writer only needs bytes.
            std::vector<float> x = host.back().to_f32_vector();
            std::vector<int32_t> packed((x.size() + 1) / 2, 0);
            for (size_t i = 0; i < x.size(); ++i) {
                uint16_t h = f32_to_bf16(x[i]);
                std::memcpy(reinterpret_cast<char*>(packed.data()) + 2 * i, &h, 2);
            }
            host.back() = Tensor::from_vector(packed, {static_cast<int64_t>(packed.size())});
        }
        int64_t bytes = narrow ? 2 * nt.tensor.numel() : static_cast<int64_t>(host.back().bytes());
        Json shape = Json::array();
        for (int64_t d : nt.tensor.shape()) shape.push_back(d);
        Json info = Json::object();
        info.set("dtype", narrow ? "BF16" : dtype_name(nt.tensor.dtype()));
        info.set("shape", shape);
        info.set("data_offsets", Json::array({offset, offset + bytes}));
        header.set(nt.name, info);
        offset += bytes;
    }
    std::string text = header.dump();
    // Spaces are JSON whitespace; padding puts the data on an 8-byte boundary
    // so a reader that maps the file can use the tensors in place.
    text.append((8 - text.size() % 8) % 8, ' ');
    uint64_t length = text.size();
    pieces[0] = {&length, 8};
    pieces[1] = {text.data(), text.size()};
    for (size_t i = 0; i < host.size(); ++i) {
        const bool narrow = bf16 && tensors[i].tensor.dtype() != DType::I32;
        const size_t bytes = narrow ? 2 * static_cast<size_t>(tensors[i].tensor.numel()) : host[i].bytes();
        if (bytes > 0) pieces.push_back({host[i].raw(), bytes});
    }
    write_file_atomic(path, pieces);
}

const Tensor* SafetensorsFile::find(const std::string& name) const {
    for (const NamedTensor& nt : tensors)
        if (nt.name == name) return &nt.tensor;
    return nullptr;
}

const std::string& SafetensorsFile::file_of(const std::string& name, const std::string& fallback) const {
    auto it = origin.find(name);
    return it == origin.end() ? fallback : it->second;
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
    ITTT_CHECK(bytes.size() >= 8, source, ": the file is ", bytes.size(),
               " bytes, too short for the 8-byte header length (not a safetensors file, or truncated)");
    uint64_t header_length;
    std::memcpy(&header_length, bytes.data(), 8);
    uint64_t rest = bytes.size() - 8;
    ITTT_CHECK(header_length <= rest, source, ": header length ", header_length, " is larger than the ", rest,
               " bytes after it (not a safetensors file, or truncated)");
    Json header = Json::parse(bytes.substr(8, header_length), source + " header");
    header.as_object();
    const char* buffer = bytes.data() + 8 + header_length;
    int64_t buffer_size = static_cast<int64_t>(rest - header_length);

    SafetensorsFile file;
    std::vector<Entry> entries;
    for (const Json::Member& m : header.as_object()) {
        if (m.first == kMetadataKey) {
            for (const Json::Member& kv : m.second.as_object()) file.metadata[kv.first] = kv.second.as_string();
            continue;
        }
        entries.push_back(parse_entry(source, m.first, m.second));
    }
    check_layout(source, entries, buffer_size);
    for (const Entry& e : entries) file.tensors.push_back({e.name, decode(e, buffer + e.begin)});
    return file;
}

SafetensorsFile load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

void load_into(const std::string& path, const std::vector<std::pair<std::string, Tensor*>>& expected,
               const std::string& shapes_from) {
    load_into(load_safetensors(path), path, expected, shapes_from);
}

void load_into(const SafetensorsFile& file, const std::string& path, const std::vector<std::pair<std::string, Tensor*>>& expected,
               const std::string& shapes_from) {

    // Each problem with the file it is in: a shard's tensor is that shard's problem, not the index's.
    std::vector<std::pair<std::string, std::string>> problems;
    std::vector<const Tensor*> sources(expected.size(), nullptr);
    std::map<std::string, bool> wanted;
    for (size_t i = 0; i < expected.size(); ++i) {
        const auto& [name, dst] = expected[i];
        ITTT_CHECK(dst && dst->defined(), "load_into(", path, "): the destination for '", name, "' is undefined");
        ITTT_CHECK(!wanted.count(name), "load_into(", path, "): tensor '", name, "' is expected twice");
        wanted[name] = true;
        const Tensor* src = file.find(name);
        if (!src) {
            problems.push_back({path, cat("tensor '", name, "' is missing (expected shape ", shape_str(dst->shape()), " from ",
                                          shapes_from, ")")});
            continue;
        }
        const std::string& in = file.file_of(name, path);
        if (src->shape() != dst->shape()) {
            problems.push_back({in, cat("tensor '", name, "' has shape ", shape_str(src->shape()), ", expected ",
                                        shape_str(dst->shape()), " from ", shapes_from)});
            continue;
        }
        bool src_float = src->dtype() != DType::I32, dst_float = dst->dtype() != DType::I32;
        if (src_float != dst_float) {
            problems.push_back({in, cat("tensor '", name, "' is ", dtype_name(src->dtype()), " in the file, cannot load it into ",
                                        dtype_name(dst->dtype()), " (only F32 <-> F64 convert)")});
            continue;
        }
        sources[i] = src;
    }
    std::vector<std::string> extra;
    std::string extra_in;  // the one file holding every unexpected tensor, else the source
    for (const NamedTensor& nt : file.tensors)
        if (!wanted.count(nt.name)) {
            const std::string& in = file.file_of(nt.name, path);
            extra_in = extra.empty() || extra_in == in ? in : path;
            extra.push_back(nt.name);
        }
    if (!extra.empty())
        problems.push_back({extra_in, cat(extra.size(), " unexpected tensor", extra.size() > 1 ? "s" : "", " not in the model built from ",
                                          shapes_from, ": ", join_names(extra, 10))});
    if (!problems.empty()) {
        // The first few problems are enough to see a pattern (a wrong config
        // makes every layer mismatch); listing hundreds helps nobody. They are
        // named by the file they are in: the one file when all are in one, else
        // the source, each problem of another file saying which.
        const size_t shown = 5;
        bool one_file = true;
        for (const auto& p : problems) one_file = one_file && p.first == problems.front().first;
        const std::string& prefix = one_file ? problems.front().first : path;
        std::string msg = cat(prefix, ": ");
        for (size_t i = 0; i < problems.size() && i < shown; ++i)
            msg += cat(i ? "; " : "", problems[i].second, problems[i].first == prefix ? "" : cat(" (in ", problems[i].first, ")"));
        if (problems.size() > shown) msg += cat("; and ", problems.size() - shown, " more problems");
        fail(msg);
    }
    for (size_t i = 0; i < expected.size(); ++i) {
        Tensor* dst = expected[i].second;
        const Tensor& src = *sources[i];
        dst->copy_from(src.dtype() == dst->dtype() ? src : src.to_dtype(dst->dtype()));
    }
}

}  // namespace ittt
