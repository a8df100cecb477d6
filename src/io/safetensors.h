// safetensors.h: the safetensors file format, read and written by hand.
//
//   [8 bytes]  N, little-endian u64: the header's length
//   [N bytes]  JSON: {"<name>": {"dtype": "F32", "shape": [64, 128],
//                                "data_offsets": [begin, end]}, ...,
//                     "__metadata__": {"<key>": "<string>"}}   (optional)
//              padded with spaces so the data starts 8-byte aligned
//   [rest]     the data buffer; offsets are relative to its start, row-major,
//              little-endian, and the tensors tile it exactly (no gaps, no overlap)
//
// The format is deliberately dumb: no compression, no pickles, nothing to
// execute, so a file from the Hub can be checked byte for byte before use. The
// reader does check everything, and refuses a file with a message naming it
// and the tensor at fault rather than returning half-read weights.
//
//   save_safetensors("model.safetensors", {{"lm_head.weight", w}}, {{"format", "pt"}});
//   load_into("model.safetensors", {{"lm_head.weight", &model.lm_head}});
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace ittt {

struct NamedTensor {
    std::string name;
    Tensor tensor;
};

// Writes F32, F64 and I32 tensors in the given order (GPU tensors are copied
// to the host first). Names must be unique, non-empty and not "__metadata__".
// Written atomically (io/atomic_file.h).
// With `bf16`, F32 and F64 tensors are stored as BF16, rounded to nearest even
// as torch rounds (NaN stays NaN); I32 tensors stay I32.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, bool bf16 = false);
// float -> bfloat16 bits, round to nearest, ties to even (the top 16 bits of an
// exactly representable value come back unchanged).
uint16_t f32_to_bf16(float x);

struct SafetensorsFile {
    std::vector<NamedTensor> tensors;  // in header order, CPU tensors
    std::map<std::string, std::string> metadata;
    // Tensors gathered from several files (the shards of a checkpoint): the
    // file each came from, so a message names the shard, not the index.
    std::map<std::string, std::string> origin;
    const Tensor* find(const std::string& name) const;  // nullptr when absent
    // The file `name` came from, else `fallback`.
    const std::string& file_of(const std::string& name, const std::string& fallback) const;
};

// F32, F64 and I32 load as they are; BF16 and F16 load widened to F32, which
// holds every value of both exactly: subnormals, signed zeros and infinities
// included, NaNs with their sign and payload (shifted into place, not quieted,
// as numpy widens). Hugging Face checkpoints are mostly BF16. Anything else
// (I64, F8, BOOL, ...) is refused, naming the tensor and its dtype.
SafetensorsFile load_safetensors(const std::string& path);
// The same checks on bytes already in memory; `source` names them in errors.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);

// Fills each destination from the tensor of the same name, requiring: every
// expected name present, exactly the destination's shape, no tensor in the
// file left over. Floats convert between F32 and F64 to the destination's
// dtype; destinations may live on the GPU. Everything is checked before the
// first byte is copied, so a refused file leaves the destinations untouched.
// `shapes_from` names where the expected shapes came from, for the message:
//   model.safetensors: tensor 'model.layers.0.mlp.down_proj.weight' has shape
//   (64, 192), expected (64, 128) from config.json
void load_into(const std::string& path, const std::vector<std::pair<std::string, Tensor*>>& expected,
               const std::string& shapes_from = "config.json");
// The same from tensors already read; `source` names them in errors (a file, or
// the index of a sharded checkpoint: then a problem with one tensor names the
// shard it came from, file.origin).
void load_into(const SafetensorsFile& file, const std::string& source, const std::vector<std::pair<std::string, Tensor*>>& expected,
               const std::string& shapes_from = "config.json");

}  // namespace ittt
