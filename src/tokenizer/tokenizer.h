// tokenizer.h: a Hugging Face `tokenizer.json` of Qwen's kind (byte-level BPE),
// encode and decode, giving the ids the `tokenizers` library gives.
//
// encode(text) runs the same pipeline as `tokenizers`:
//   1. added tokens   split the text on the added tokens (<|im_start|>, ...): leftmost, longest
//                     first; each becomes its id, the text between goes on. Tokens with
//                     "normalized": true are matched after step 2, on the normalized text.
//   2. normalizer     NFC / NFD / NFKC / NFKD (ICU), a Sequence of them, or none
//   3. pre-tokenizer  Split (a regex or a string; behaviour Isolated, Removed, MergedWithPrevious,
//                     MergedWithNext or Contiguous; invert), ByteLevel (each byte -> one printable
//                     character; add_prefix_space; use_regex: the GPT-2 pattern), a Sequence of them
//   4. model          BPE: characters -> ids, then apply merges lowest rank first (leftmost on
//                     ties), with ignore_merges, unk_token and fuse_unk
//   post_processor    ByteLevel or none (neither adds ids)
// decode(ids) maps ids back to tokens (added tokens by content, special ones skipped on request),
// the ByteLevel decoder turns characters back into bytes, and bytes that are not valid UTF-8
// become U+FFFD as `tokenizers` does; decode_bytes() returns the raw bytes instead (what a
// stream of tokens printed one by one needs: a token may end inside a character).
//
// The split pattern needs Unicode classes (\p{L}, \p{N}, \s): it runs on PCRE2 with UTF and UCP.
// Anything else in the file (another model type, Metaspace, byte_fallback, lstrip on an
// added token, a TemplateProcessing post-processor, padding, ...) is refused at load with
// an Error naming the file, the field and what is supported; nothing is silently ignored.
//
//   Tokenizer tok = Tokenizer::load("ckpt/tokenizer.json");
//   std::vector<int32_t> ids = tok.encode("Hello<|im_end|>");
//   std::string text = tok.decode(ids);
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ittt {

class Tokenizer {
public:
    static Tokenizer load(const std::string& path);
    // The file's text; `source` names it in errors.
    static Tokenizer parse(const std::string& json_text, const std::string& source);

    // UTF-8 text -> ids. Invalid UTF-8 is refused, naming the byte offset.
    std::vector<int32_t> encode(const std::string& text) const;
    // ids -> UTF-8 text (invalid byte sequences become U+FFFD, one per maximal subpart).
    std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
    // ids -> the bytes the tokens stand for, unrepaired.
    std::string decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

    // Ids run over [0, vocab_size()): the trained vocabulary plus the added tokens.
    int vocab_size() const;
    // Whether id names a token (a file may leave holes in the id range).
    bool has_id(int32_t id) const;
    // The token's string as the file spells it (byte-level characters for BPE tokens).
    const std::string& token(int32_t id) const;
    // The id of a vocabulary or added token, -1 when there is none.
    int32_t token_id(const std::string& token) const;
    bool is_special(int32_t id) const;
    // One line: "byte-level BPE, 1200 tokens + 5 added (3 special), normalizer NFC, ..."
    std::string describe() const;

    struct Impl;

private:
    std::shared_ptr<const Impl> impl_;  // immutable once loaded: copies share it
};

// Bytes -> UTF-8 with each ill-formed subsequence replaced by U+FFFD (the Unicode
// "maximal subpart" practice, as Rust's String::from_utf8_lossy).
std::string utf8_lossy(const std::string& bytes);

}  // namespace ittt
