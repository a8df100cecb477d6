// tasks.h: the toy tasks (induction, MQAR, theorem probe, needle, text), made from a seed.
//
// Every example is conceptually a stream s_0 .. s_n of n+1 tokens. The model
// reads tokens = s_0 .. s_{n-1}; the target at position t is s_{t+1}, or -1
// (IGNORE_TARGET) where position t is not scored. So a target is always "the
// next token", and the last scored target may be the token just past the
// window (the theorem probe's answer v* is s_n: the query k* is the last token
// the model reads). Loss and accuracy count only the scored positions.
//
// Vocabulary (fixed for every task):
//   0 PAD    padding / the "zeros" filler of MQAR
//   1 BOS    start of sequence (induction, theorem probe, needle)
//   2 MAGIC  opens a needle: [MAGIC] key [IS] v_1 .. v_L
//   3 IS     separates a needle's key from its values
//   4 .. V-1 ordinary tokens. Byte-level text maps byte b to b + 4, so V = 260.
// "Lower half" / "upper half" below mean the ordinary tokens split at
// 4 + (V-4)/2: keys come from the lower half, values from the upper half.
//
// Tasks and their options (parse_task_config; defaults in TaskConfig):
//   induction  copy_length           [BOS] r_1..r_m r_1..r_m PAD..; scored on the
//                                    second copy (at the second r_i, target r_{i+1})
//   mqar       pairs gap filler spread
//                                    k_1 v_1 .. k_D v_D, then the D keys again as
//                                    queries, each followed by its value; scored at
//                                    each query (target: its value). No BOS (Zoology).
//                                    Query slots are 2 tokens (key, value) at 2D, 2D+2, ..
//                                    spread=S > 0: pair j somewhere in positions
//                                    [jS/D, (j+1)S/D) among filler, query slots from S
//   theorem    chunk window pair_position
//                                    [BOS] .. k* v* .. filler .. k*; scored at the
//                                    final k* (target v*, which is s_n)
//   needle     keys values queries depth filler pattern_length
//                                    [BOS] haystack with needles [MAGIC] k [IS] v_1..v_L,
//                                    then queries [MAGIC] k [IS] v_1..v_L; scored where
//                                    the next token is one of the query's values
//   text       path score_last max_length docs
//                                    bytes of a file, windows of n+1 bytes at seeded
//                                    offsets; every position scored (or the last few).
//                                    docs=bounded (the default when <path>.docs exists):
//                                    the batch carries the document starts inside each
//                                    window and the target that crosses into the next
//                                    document is not scored; docs=packed: one stream
//
//   TaskConfig task = parse_task_config("mqar", parse_option_list("pairs=8,gap=256"));
//   Batch batch = make_batch(task, /*vocab_size=*/260, /*B=*/16, /*n=*/512, /*seed=*/1);
//   Tensor tokens = batch.tokens_tensor();   // I32 (B, n)
//
// Example b of a batch is made from Rng(seed).fork(b): the same seed gives the
// same batch on every machine, and example b does not depend on B.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace ittt {

namespace token {
constexpr int32_t PAD = 0;
constexpr int32_t BOS = 1;
constexpr int32_t MAGIC = 2;
constexpr int32_t IS = 3;
constexpr int32_t FIRST_ORDINARY = 4;
constexpr int TEXT_VOCAB_SIZE = 256 + FIRST_ORDINARY;
inline int32_t from_byte(uint8_t b) { return static_cast<int32_t>(b) + FIRST_ORDINARY; }
}  // namespace token

constexpr int32_t IGNORE_TARGET = -1;

enum class TaskKind { Induction, Mqar, TheoremProbe, Needle, Text };
const char* task_kind_name(TaskKind kind);  // the name parse_task_config accepts

// MQAR's filler: random ordinary tokens (never one of the example's keys, so the
// answer to a query is unique) or PAD (Zoology's zeros). The needle's filler: a
// short random pattern repeated, or random tokens; never a key or a value.
enum class Filler { Random, Pad, Pattern };
const char* filler_name(Filler f);

// How the text task treats the documents of a corpus (its sidecar <path>.docs):
//   Default  Bounded when the sidecar exists, else Packed (resolved by parse_task_config)
//   Bounded  document starts go into the batch (Batch::document_starts); the target that
//            crosses into the next document is IGNORE_TARGET
//   Packed   the file is one stream: windows run across documents (the behaviour before sidecars)
enum class TextDocs { Default, Bounded, Packed };
const char* text_docs_name(TextDocs d);  // "default", "bounded", "packed"

struct TaskConfig {
    TaskKind kind = TaskKind::Induction;

    // ---- induction ----
    int copy_length = 0;  // m; 0 = the largest m with 1 + 2m <= n

    // ---- mqar ----
    int pairs = 8;  // D key-value pairs, all queried
    // Both tokens of a pair lie at least `gap` positions before its query:
    // query_position - value_position >= gap. 0 = no constraint beyond "after the pairs".
    int gap = 0;
    Filler mqar_filler = Filler::Random;  // random | pad
    // 0: the pairs packed at the start, k_1 v_1 .. k_D v_D (Zoology). S > 0: pair j at a
    // random place inside positions [floor(jS/D), floor((j+1)S/D)), filler between, and
    // the query slots start at S. With S/D dividing the TTT chunk, every chunk of the
    // first S positions holds C*D/S whole pairs, so the fast weight learns them chunk by chunk.
    int spread = 0;

    // ---- theorem probe ----
    int chunk = 64;          // the TTT chunk C: the pair must lie in an earlier chunk than the query
    int window = 64;         // the attention window: more than `window` filler tokens separate v* from the query
    int pair_position = -1;  // position of k*; -1 = uniform over the valid positions

    // ---- needle ----
    int keys = 1;     // needles in the haystack (distinct keys)
    int values = 1;   // L values per needle
    int queries = 1;  // needles 0 .. queries-1 are queried, in random order
    // Percent (0..100) of the haystack's filler tokens that come before needle 0;
    // -1 = uniform. Other needles go at random places.
    int depth = 50;
    Filler needle_filler = Filler::Pattern;  // pattern | random
    int pattern_length = 8;

    // ---- text ----
    std::string path;
    int score_last = 0;  // score only the last k positions (0 = all): the final block of a perplexity sweep
    // Windows end at byte offsets drawn as if n were max_length, so runs with any
    // n <= max_length score the same final bytes (0 = n).
    int max_length = 0;
    // The file's bytes, loaded by parse_task_config (make_batch loads `path` when empty).
    std::shared_ptr<const std::vector<uint8_t>> text;
    TextDocs docs = TextDocs::Default;
    // Bounded: byte offsets of the documents' first bytes, ascending, the first 0 (the sidecar's
    // first column, load_document_offsets); loaded by parse_task_config.
    std::shared_ptr<const std::vector<int64_t>> document_offsets;

    // "mqar pairs=8 gap=256 filler=random": the task's options with their effective values.
    std::string describe() const;
};

// One option of a task, for --help listings and error messages.
struct TaskOptionInfo {
    const char* name;
    const char* help;
};
const std::vector<std::string>& task_names();
const std::vector<TaskOptionInfo>& task_options(TaskKind kind);

// Builds a task's config from its name and key=value options. Throws an Error
// naming the task and the option for an unknown name (listing the valid ones)
// or a value out of range; for text, when the file cannot be read.
TaskConfig parse_task_config(const std::string& name, const std::map<std::string, std::string>& options);
// "gap=256,pairs=8" -> {gap: 256, pairs: 8}; "" -> {}. Throws on "x" or a repeated key.
std::map<std::string, std::string> parse_option_list(const std::string& list);

// The text task holds its whole file in memory: at most this many bytes (1 GiB).
constexpr int64_t kMaxTextFileBytes = int64_t{1} << 30;
// Reads a whole file. An Error naming the path when it is missing or
// unreadable, not a regular file (/dev/zero, a FIFO, a directory: nothing is
// read from them), or larger than kMaxTextFileBytes (checked before reading).
std::shared_ptr<const std::vector<uint8_t>> load_text_file(const std::string& path);
// Reads a corpus's document sidecar (src/tools/exp/corpus.sh writes X.txt.docs next to X.txt):
// one line per document, "<byte offset of its first byte><TAB><its source path>", sorted, the
// first offset 0, none past text_size (the corpus's bytes). Returns the offsets, duplicates
// (empty documents) dropped. An Error naming the file, the line and what was expected otherwise.
std::vector<int64_t> load_document_offsets(const std::string& sidecar, int64_t text_size);

// Where the interesting tokens of an example are, for a step-through driver.
enum class MarkerKind {
    FirstCopy,   // induction: r_{index+1} in the first copy
    SecondCopy,  // induction: r_{index+1} in the second copy
    Key,         // k of pair/needle `index`
    Value,       // v of pair `index`; needle `index`'s value number `part`
    Needle,      // the MAGIC that opens needle `index`
    Query,       // the repeated key that asks for pair/needle `index`
    Answer,      // after a query: the value (number `part`) it asks for, teacher-forced
};
const char* marker_kind_name(MarkerKind kind);

struct Marker {
    int position;  // in tokens: 0 .. n-1 (a token past the window, s_n, gets no marker)
    MarkerKind kind;
    int index;     // pair, needle or copy index, from 0
    int part = 0;  // which of a needle's values (0 .. L-1)
};

struct Example {
    std::vector<int32_t> tokens;   // n
    std::vector<int32_t> targets;  // n: the next token where scored, else IGNORE_TARGET
    std::vector<Marker> markers;   // in order of position
    int64_t source_offset = -1;    // text: byte offset of tokens[0] in the file
    // Text with docs=bounded: positions in [0, n) where a document begins, ascending, the first 0
    // (the window's first token, mid-document or not); empty for the other tasks.
    std::vector<int> document_starts;

    std::vector<int> scored_positions() const;
    std::vector<Marker> markers_of(MarkerKind kind) const;
};

struct Batch {
    int B = 0, n = 0;
    std::vector<int32_t> tokens;   // (B, n) row-major
    std::vector<int32_t> targets;  // (B, n)
    std::vector<Example> examples;
    // Document boundaries (ForwardOptions::document_starts): B lists, row b's document starts,
    // each ascending from 0; empty (no list at all) when the task has none (docs=packed, toy tasks).
    std::vector<std::vector<int>> document_starts;

    Tensor tokens_tensor() const;   // I32 (B, n) on the CPU
    Tensor targets_tensor() const;  // I32 (B, n) on the CPU
    int64_t scored_count() const;
};

// Makes B examples of n tokens. Throws an Error naming the parameters when the
// task cannot fit in n tokens or in the vocabulary.
Batch make_batch(const TaskConfig& task, int vocab_size, int B, int n, uint64_t seed);
// One example: the one make_batch puts at row b for this seed.
Example make_example(const TaskConfig& task, int vocab_size, int n, uint64_t seed, int b);

struct Accuracy {
    int64_t correct = 0;               // scored positions predicted right
    int64_t scored = 0;                // scored positions
    int64_t examples_all_correct = 0;  // examples with every scored position right
    int64_t examples = 0;
    double fraction() const { return scored > 0 ? static_cast<double>(correct) / static_cast<double>(scored) : 0.0; }
};

// predictions: (B, n) token ids, row-major.
Accuracy count_correct(const Batch& batch, const std::vector<int32_t>& predictions);
// predictions: I32 (B, n) ids, or F32/F64 (B, n, V) logits (argmax, first maximum on ties); any device.
Accuracy count_correct(const Batch& batch, const Tensor& predictions_or_logits);
// Argmax over the last dim of F32/F64 logits (..., V): the ids, row-major.
std::vector<int32_t> argmax_last_dim(const Tensor& logits);

}  // namespace ittt
