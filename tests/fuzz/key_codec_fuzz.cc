// Fuzzes the key codec (primers/key_codec.h) with arbitrary bytes.
//
// The input is read two ways:
//  - as a key, decoded against a few parameter lists under its own primer
//    name: whenever DecodeKey succeeds, EncodeKey of the values gives the
//    key back byte for byte (one text form per value);
//  - as values separated by 0xFF (a byte UTF-8 never uses), encoded under
//    every parameter list of that length: whenever EncodeKey succeeds,
//    DecodeKey of the key gives the values back.
// Error messages must stay one line of valid UTF-8 (QuoteForError).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "primers/key_codec.h"

namespace {

using kck::ParamSpec;
using kck::ParamType;

const std::vector<std::vector<ParamSpec>>& ParamLists() {
  static const std::vector<std::vector<ParamSpec>> lists = {
      {},
      {{"author_id", ParamType::kInt}},
      {{"query", ParamType::kStr}},
      {{"available", ParamType::kBool}},
      {{"day", ParamType::kDate}},
      {{"author_id", ParamType::kInt}, {"genre", ParamType::kStr}},
      {{"a", ParamType::kStr}, {"b", ParamType::kStr}},
      {{"s", ParamType::kStr}, {"n", ParamType::kInt}},
      {{"author_id", ParamType::kInt}, {"title", ParamType::kStr}, {"published", ParamType::kBool},
       {"since", ParamType::kDate}},
  };
  return lists;
}

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "key_codec_fuzz: %s: %s\n", what, kck::QuoteForError(detail).c_str());
  std::abort();
}

// An error message is one line of valid UTF-8 without NUL bytes.
void CheckMessage(const kck::Status& status) {
  const std::string& m = status.message();
  if (m.empty()) Fail("empty error message", m);
  if (m.find('\n') != std::string::npos) Fail("error message spans lines", m);
  static const ParamSpec kText{"message", ParamType::kStr};
  if (!kck::CheckCanonical("fuzz", kText, m).ok()) Fail("error message is not valid UTF-8", m);
}

void DecodeAsKey(std::string_view key) {
  auto name = kck::KeyPrimerName(key);
  if (!name.ok()) {
    CheckMessage(name.status());
    // A key without a valid primer name decodes under no primer.
    auto values = kck::DecodeKey(key, "p", {});
    if (values.ok()) Fail("decoded a key without a valid primer name", key);
    CheckMessage(values.status());
    return;
  }
  for (const auto& params : ParamLists()) {
    auto values = kck::DecodeKey(key, *name, params);
    if (!values.ok()) {
      CheckMessage(values.status());
      continue;
    }
    if (values->size() != params.size()) Fail("decoded the wrong number of values", key);
    auto again = kck::EncodeKey(*name, params, *values);
    if (!again.ok()) Fail("a decoded key does not encode", key);
    if (*again != key) Fail("encode(decode(key)) != key", key);
  }
  // Another primer never owns the key.
  if (*name != "other" && kck::DecodeKey(key, "other", {}).ok()) Fail("decoded under another primer", key);
}

void EncodeAsValues(std::string_view data) {
  std::vector<std::string> values;
  size_t start = 0;
  for (size_t i = 0; i <= data.size(); ++i) {
    if (i == data.size() || static_cast<unsigned char>(data[i]) == 0xFF) {
      values.emplace_back(data.substr(start, i - start));
      start = i + 1;
    }
  }
  for (const auto& params : ParamLists()) {
    if (params.size() != values.size()) continue;
    auto key = kck::EncodeKey("p", params, values);
    if (!key.ok()) {
      CheckMessage(key.status());
      continue;
    }
    auto decoded = kck::DecodeKey(*key, "p", params);
    if (!decoded.ok()) Fail("an encoded key does not decode", *key);
    if (*decoded != values) Fail("decode(encode(values)) != values", *key);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  DecodeAsKey(input);
  EncodeAsValues(input);
  std::string quoted = kck::QuoteForError(input);
  if (quoted.find('\n') != std::string::npos) Fail("QuoteForError kept a newline", input);
  return 0;
}
