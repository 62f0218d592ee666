// NFC quick check (UAX #15): whether a code point leaves NFC's output unchanged wherever it
// stands. Text made only of such code points is already NFC, so an NFC normalizer is the
// identity on it (the table: src/io/nfc_quick_check.cpp, scripts/make-nfc-quick-check.py).
#pragma once

namespace lrc {

// True when c's NFC_Quick_Check property is Yes (neither No nor Maybe).
bool nfc_quick_check_yes(char32_t c);

}  // namespace lrc
