// SHA-256 (FIPS 180-4), used to record which calibration data a checkpoint came from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lrc {

std::string sha256_hex(std::string_view data);
std::string sha256_file_hex(const std::string& path);  // throws lrc::Error if unreadable

}  // namespace lrc
