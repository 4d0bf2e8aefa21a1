// convkit/data/idx.h — reader for IDX files, the format of MNIST and Fashion-MNIST.
//
// Layout (big-endian): bytes 0–1 zero, byte 2 the element type (0x08 = unsigned byte, the
// only type MNIST uses), byte 3 the number of dimensions d, then d 32-bit sizes, then the
// elements in row-major order. Files ending in ".gz" are gzip-decompressed with zlib.
// Every mismatch (magic, type, sizes, length) is a FormatError naming the file and the byte
// offset; an unreadable file is an IoError.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/shape.h"

namespace convkit::data {

/// The contents of an IDX file of unsigned bytes.
struct IdxArray {
  std::vector<Index> dims;
  std::vector<std::uint8_t> values;
};

namespace detail {

/// All bytes of a file, decompressed if it is gzip (zlib reads plain files unchanged).
inline std::vector<std::uint8_t> read_all_bytes(const std::string& path) {
  std::FILE* probe = std::fopen(path.c_str(), "rb");
  CONVKIT_CHECK(probe != nullptr, IoError, "IDX file " << path << ": cannot open it for reading");
  std::fclose(probe);
  gzFile f = gzopen(path.c_str(), "rb");
  CONVKIT_CHECK(f != nullptr, IoError, "IDX file " << path << ": cannot open it for reading");
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const std::string why = gzerror(f, &code);
      const auto offset = out.size();
      gzclose(f);
      // Z_ERRNO: the file itself could not be read (a directory, an I/O error), not bad data.
      CONVKIT_CHECK(code != Z_ERRNO, IoError, "IDX file " << path << ": cannot read it after " << offset << " bytes (" << why << ")");
      CONVKIT_CHECK(false, FormatError,
                    "IDX file " << path << ": corrupt gzip data after " << offset << " bytes (" << why << ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  // gzread stops quietly at a truncated gzip stream; gzclose reports it.
  const int rc = gzclose(f);
  CONVKIT_CHECK(rc == Z_OK, FormatError,
                "IDX file " << path << ": truncated or corrupt gzip data after " << out.size() << " bytes");
  return out;
}

}  // namespace detail

/// Parses IDX bytes; `path` is only used in messages.
/// @throws FormatError for a bad magic, element type, dimension count or length.
inline IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  CONVKIT_CHECK(bytes.size() >= 4, FormatError,
                "IDX file " << path << ": expected a 4-byte header at byte offset 0, got " << bytes.size()
                            << " bytes in all");
  CONVKIT_CHECK(bytes[0] == 0 && bytes[1] == 0, FormatError,
                "IDX file " << path << ": expected magic bytes 0x00 0x00 at byte offset 0, got "
                            << int(bytes[0]) << " " << int(bytes[1]));
  CONVKIT_CHECK(bytes[2] == 0x08, FormatError,
                "IDX file " << path << ": expected element type 0x08 (unsigned byte) at byte offset 2, got 0x"
                            << std::hex << int(bytes[2]));
  const std::size_t d = bytes[3];
  CONVKIT_CHECK(d >= 1 && d <= 4, FormatError,
                "IDX file " << path << ": expected 1 to 4 dimensions at byte offset 3, got " << d);
  const std::size_t header = 4 + 4 * d;
  CONVKIT_CHECK(bytes.size() >= header, FormatError,
                "IDX file " << path << ": expected " << d << " dimension sizes at byte offset 4, but the file ends at byte "
                            << bytes.size());
  IdxArray a;
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < d; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    const std::uint32_t size = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                               (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    a.dims.push_back(static_cast<Index>(size));
    // Checked before multiplying, so the product cannot wrap around.
    CONVKIT_CHECK(size == 0 || count <= (std::uint64_t{1} << 40) / size, FormatError,
                  "IDX file " << path << ": dimension sizes at byte offset 4 multiply to more than 2^40 elements");
    count *= size;
  }
  CONVKIT_CHECK(bytes.size() - header == count, FormatError,
                "IDX file " << path << ": expected " << count << " data bytes from byte offset " << header
                            << ", got " << bytes.size() - header
                            << (bytes.size() - header < count ? " (truncated)" : " (trailing bytes)"));
  a.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

/// Reads an IDX file of unsigned bytes, plain or ".gz".
/// @throws IoError if it cannot be read; FormatError if it is not a valid IDX file.
inline IdxArray read_idx(const std::string& path) { return parse_idx(detail::read_all_bytes(path), path); }

}  // namespace convkit::data
