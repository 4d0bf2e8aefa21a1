// convkit/data/idx.h — reader for IDX files, the format of MNIST and Fashion-MNIST.
//
// Layout (big-endian): bytes 0–1 zero, byte 2 the element type (0x08 = unsigned byte, the
// only type MNIST uses), byte 3 the number of dimensions d, then d 32-bit sizes, then the
// elements in row-major order. Gzip-compressed files (told apart by their magic bytes, not
// their name) are inflated with zlib.
// Every mismatch (magic, type, sizes, length) is a FormatError naming the file and the byte
// offset; an unreadable file is an IoError.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/shape.h"
#include "convkit/io/file.h"

namespace convkit::data {

/// The contents of an IDX file of unsigned bytes.
struct IdxArray {
  std::vector<Index> dims;
  std::vector<std::uint8_t> values;
};

namespace detail {

/// An IDX header: its length in bytes (4 + 4 × rank), the sizes and their product.
struct IdxHeader {
  std::size_t bytes = 0;
  std::vector<Index> dims;
  std::uint64_t count = 1;
};

/// Checks and reads the header at the start of `bytes`; `path` is only used in messages.
/// @throws FormatError for a bad magic, element type or dimension count, a header cut
/// short, or sizes whose product exceeds 2^40.
inline IdxHeader idx_header(const std::vector<std::uint8_t>& bytes, const std::string& path) {
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
  IdxHeader h;
  h.bytes = 4 + 4 * d;
  CONVKIT_CHECK(bytes.size() >= h.bytes, FormatError,
                "IDX file " << path << ": expected " << d << " dimension sizes at byte offset 4, but the file ends at byte "
                            << bytes.size());
  for (std::size_t i = 0; i < d; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    const std::uint32_t size = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                               (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    h.dims.push_back(static_cast<Index>(size));
    // Checked before multiplying, so the product cannot wrap around.
    CONVKIT_CHECK(size == 0 || h.count <= (std::uint64_t{1} << 40) / size, FormatError,
                  "IDX file " << path << ": dimension sizes at byte offset 4 multiply to more than 2^40 elements");
    h.count *= size;
  }
  return h;
}

/// True if `bytes` start with gzip's magic 1f 8b (an IDX file starts with 00 00).
inline bool is_gzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

/// The first `max_out` bytes that the gzip data `in` (one member or several, concatenated)
/// inflates to, and whether it holds more. Memory grows with the output actually produced,
/// never with a size the data claims.
/// @throws FormatError for corrupt or truncated gzip data or bytes after the last member.
struct Inflated {
  std::vector<std::uint8_t> bytes;
  bool more = false;
};
inline Inflated gunzip(const std::vector<std::uint8_t>& in, const std::string& path, std::size_t max_out) {
  z_stream z{};
  CONVKIT_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, Error, "IDX file " << path << ": zlib cannot start inflating");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&z};
  Inflated r;
  std::size_t fed = 0;  // bytes of `in` handed to zlib so far
  std::uint8_t buf[1 << 16];
  for (;;) {
    if (z.avail_in == 0 && fed < in.size()) {  // zlib counts input in 32 bits: feed at most 1 GiB at a time
      const std::size_t chunk = std::min<std::size_t>(in.size() - fed, std::size_t{1} << 30);
      z.next_in = const_cast<Bytef*>(in.data() + fed);
      z.avail_in = static_cast<uInt>(chunk);
      fed += chunk;
    }
    z.next_out = buf;
    z.avail_out = sizeof buf;
    const int rc = inflate(&z, Z_NO_FLUSH);
    const std::size_t produced = sizeof buf - z.avail_out;
    const std::size_t take = std::min(produced, max_out - r.bytes.size());
    r.bytes.insert(r.bytes.end(), buf, buf + take);
    if (take < produced) {
      r.more = true;
      return r;
    }
    const std::size_t left = z.avail_in + (in.size() - fed);  // input bytes not yet consumed
    if (rc == Z_STREAM_END) {
      if (left == 0) return r;
      const std::size_t at = in.size() - left;
      CONVKIT_CHECK(left >= 2 && in[at] == 0x1f && in[at + 1] == 0x8b, FormatError,
                    "IDX file " << path << ": " << left << " unexpected bytes after the gzip data at byte offset " << at);
      inflateReset(&z);  // another gzip member follows
      continue;
    }
    CONVKIT_CHECK(rc != Z_MEM_ERROR, Error, "IDX file " << path << ": zlib ran out of memory (out of memory)");
    CONVKIT_CHECK(rc == Z_OK || (rc == Z_BUF_ERROR && left > 0), FormatError,
                  "IDX file " << path << ": " << (rc == Z_BUF_ERROR ? "truncated or corrupt" : "corrupt")
                              << " gzip data after " << r.bytes.size() << " bytes"
                              << (z.msg != nullptr ? std::string(" (") + z.msg + ")" : std::string()));
  }
}

}  // namespace detail

/// Parses IDX bytes (not compressed); `path` is only used in messages.
/// @throws FormatError for a bad magic, element type, dimension count or length.
inline IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  const detail::IdxHeader h = detail::idx_header(bytes, path);
  const std::size_t data = bytes.size() - h.bytes;
  CONVKIT_CHECK(data == h.count, FormatError,
                "IDX file " << path << ": expected " << h.count << " data bytes from byte offset " << h.bytes << ", got "
                            << data << (data < h.count ? " (truncated)" : " (trailing bytes)"));
  IdxArray a;
  a.dims = h.dims;
  a.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(h.bytes), bytes.end());
  return a;
}

/// Decodes the bytes of an IDX file, gzip-compressed or not (told apart by gzip's magic).
/// Compressed data is inflated only as far as its IDX header says it reaches, so a small
/// file never makes the reader hold more than the header declares and the data supplies.
/// @throws FormatError if it is not a valid IDX file or not valid gzip data.
inline IdxArray decode_idx(const std::vector<std::uint8_t>& file, const std::string& path) {
  if (!detail::is_gzip(file)) return parse_idx(file, path);
  const detail::IdxHeader h = detail::idx_header(detail::gunzip(file, path, 4 + 4 * 4).bytes, path);
  const detail::Inflated all = detail::gunzip(file, path, h.bytes + static_cast<std::size_t>(h.count));
  CONVKIT_CHECK(!all.more, FormatError,
                "IDX file " << path << ": expected " << h.count << " data bytes from byte offset " << h.bytes
                            << ", got more (trailing bytes)");
  return parse_idx(all.bytes, path);
}

/// Reads an IDX file of unsigned bytes, plain or ".gz".
/// @throws IoError if it cannot be read; FormatError if it is not a valid IDX file.
inline IdxArray read_idx(const std::string& path) { return decode_idx(convkit::detail::read_file(path, "IDX file"), path); }

}  // namespace convkit::data
