// Fuzz target: the IDX reader on arbitrary file contents, plain or gzip (told apart by the
// magic bytes, as read_idx does). Anything but convkit::FormatError escaping is a crash;
// a successful read must hold exactly the elements its sizes multiply to.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <convkit/data/idx.h>

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> file(data, data + size);
  try {
    const convkit::data::IdxArray a = convkit::data::decode_idx(file, "fuzz-input");
    std::uint64_t count = 1;
    for (convkit::Index d : a.dims) count *= static_cast<std::uint64_t>(d);
    CONVKIT_FUZZ_ASSERT(!a.dims.empty() && a.dims.size() <= 4);
    CONVKIT_FUZZ_ASSERT(count == a.values.size());
    if (!convkit::data::detail::is_gzip(file)) CONVKIT_FUZZ_ASSERT(a.values.size() + 4 + 4 * a.dims.size() == size);
  } catch (const convkit::FormatError&) {
  }
  return 0;
}
