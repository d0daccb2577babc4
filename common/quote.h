// The one way kck quotes user text (names, keys, paths, server messages) in
// an error or log line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kck {

// `text` in double quotes for an error message: '"' and '\' get a backslash,
// control characters and bytes that are not UTF-8 become \xNN, and long text is
// cut, so the message stays one line of valid UTF-8.
std::string QuoteForError(std::string_view text);

// Length of the well-formed UTF-8 sequence at text[i] (Unicode table 3-7: no
// overlongs, no surrogates, nothing above U+10FFFF), or 0 when there is none.
size_t Utf8SequenceLength(std::string_view text, size_t i);

}  // namespace kck
