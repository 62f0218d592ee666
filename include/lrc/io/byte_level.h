// GPT-2's byte <-> unicode mapping ("byte-level" BPE). Every byte gets a printable unicode
// character: the printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves, the
// other 68 bytes (controls, space, ...) to U+0100.. in byte order, so ' ' -> 'Ġ' (U+0120) and
// '\n' -> 'Ċ' (U+010A). Byte-level vocabularies store tokens in this form.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lrc {

// The unicode code point standing for byte b.
uint32_t byte_to_codepoint(uint8_t b);
// The byte a code point stands for, or -1 if it is not one of the 256.
int codepoint_to_byte(uint32_t cp);

// Raw bytes -> their byte-level text (UTF-8).
std::string byte_level_encode(std::string_view bytes);
// Byte-level text -> raw bytes. False (out untouched) if some character is not one of the 256
// (e.g. an added token like "<|im_start|>" is fine, "▁" is not) or the text is not UTF-8.
bool byte_level_decode(std::string_view text, std::string* out);

// Appends the UTF-8 encoding of cp.
void append_utf8(uint32_t cp, std::string* out);
// Length of the valid UTF-8 sequence starting at s[i], 0 if invalid (bad lead or continuation
// byte, overlong, surrogate, > U+10FFFF, truncated). *cp gets the code point.
int utf8_sequence(std::string_view s, size_t i, uint32_t* cp);
// s with each byte that does not start a valid UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

}  // namespace lrc
