// Fuzz target: the IDX reader behind valid gzip. The input is an IDX candidate; it is
// gzip-compressed in memory (sometimes split into two gzip members) and both forms are
// decoded: they must agree, succeeding with the same array or failing alike.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <convkit/data/idx.h>

#include "fuzz_util.h"

namespace {

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
  z_stream z{};
  CONVKIT_FUZZ_ASSERT(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(size)) + 32);
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  CONVKIT_FUZZ_ASSERT(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

/// The decoded array, or the empty array with `failed` set.
convkit::data::IdxArray decode(const std::vector<std::uint8_t>& file, bool& failed) {
  failed = false;
  try {
    return convkit::data::decode_idx(file, "fuzz-input");
  } catch (const convkit::FormatError&) {
    failed = true;
    return {};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks where to split the rest into two gzip members (0: one member).
  const std::size_t split = std::min<std::size_t>(data[0], size - 1);
  const std::vector<std::uint8_t> plain(data + 1, data + size);
  std::vector<std::uint8_t> gz = gzip(plain.data(), split == 0 ? plain.size() : split);
  if (split != 0) {
    const std::vector<std::uint8_t> second = gzip(plain.data() + split, plain.size() - split);
    gz.insert(gz.end(), second.begin(), second.end());
  }
  bool plain_failed = false, gz_failed = false;
  const convkit::data::IdxArray a = decode(plain, plain_failed);
  const convkit::data::IdxArray b = decode(gz, gz_failed);
  CONVKIT_FUZZ_ASSERT(plain_failed == gz_failed);
  CONVKIT_FUZZ_ASSERT(a.dims == b.dims && a.values == b.values);
  return 0;
}
