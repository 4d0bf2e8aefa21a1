// convkit/io/file.h — reading a whole file into memory, with errors that name it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "convkit/core/error.h"

namespace convkit::detail {

/// Every byte of the file at `path`. `what` starts the messages ("checkpoint", "IDX file").
/// @throws IoError if it cannot be opened or read (a directory, an I/O error).
inline std::vector<std::uint8_t> read_file(const std::string& path, const char* what) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  CONVKIT_CHECK(f != nullptr, IoError, what << " " << path << ": cannot open it for reading");
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  CONVKIT_CHECK(!failed, IoError, what << " " << path << ": cannot read it after " << out.size() << " bytes");
  return out;
}

}  // namespace convkit::detail
