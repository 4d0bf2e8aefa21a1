// Fuzz target: Checkpoint<float> and Checkpoint<double> parsing arbitrary bytes. The input
// is parsed as it is and again with its last 8 bytes replaced by the right checksum, so the
// fuzzer gets past the checksum to the entries. Anything but convkit::FormatError escaping
// is a crash; a successful parse must write back to bytes that parse to the same entries.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <convkit/io/checkpoint.h>

#include "fuzz_util.h"

namespace {

template <typename T>
void parse(const std::vector<std::uint8_t>& bytes) {
  using convkit::Checkpoint;
  try {
    const Checkpoint<T> c = Checkpoint<T>::from_bytes(bytes, "fuzz-input");
    const std::vector<std::uint8_t> again = c.to_bytes();
    CONVKIT_FUZZ_ASSERT(again.size() == bytes.size());
    const Checkpoint<T> d = Checkpoint<T>::from_bytes(again, "round-trip");
    CONVKIT_FUZZ_ASSERT(d.texts() == c.texts());
    CONVKIT_FUZZ_ASSERT(d.tensors().size() == c.tensors().size());
    for (const auto& [name, t] : c.tensors()) {
      const convkit::Tensor<T>& u = d.tensor(name);
      CONVKIT_FUZZ_ASSERT(u.shape() == t.shape());
      CONVKIT_FUZZ_ASSERT(t.numel() == 0 ||
                          std::memcmp(u.data(), t.data(), sizeof(T) * static_cast<std::size_t>(t.numel())) == 0);
    }
  } catch (const convkit::FormatError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> bytes(data, data + size);
  parse<float>(bytes);
  parse<double>(bytes);
  if (size >= 8) {
    const std::uint64_t sum = convkit::detail::fnv1a(bytes.data(), size - 8);
    for (std::size_t i = 0; i < 8; ++i) bytes[size - 8 + i] = static_cast<std::uint8_t>(sum >> (8 * i));
    parse<float>(bytes);
    parse<double>(bytes);
  }
  return 0;
}
