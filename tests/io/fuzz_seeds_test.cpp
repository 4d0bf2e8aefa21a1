// The fuzzers' seed corpus (fuzz/corpus/, written by fuzz/make_corpus.py) must stay valid:
// every IDX seed decodes, every checkpoint seed parses and writes back to bytes that parse
// to the same entries. A format change that breaks a seed fails here, not silently in the
// fuzzers' coverage.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <convkit/data/idx.h>
#include <convkit/io/checkpoint.h>
#include <convkit/io/file.h>

#include "data/data_files.h"

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> seeds(const std::string& target) {
  const fs::path dir = fs::path(CONVKIT_INCLUDE_DIR).parent_path() / "fuzz" / "corpus" / target;
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

TEST(FuzzSeeds, IdxSeedsDecode) {
  const auto files = seeds("idx");
  ASSERT_GE(files.size(), 8u);
  int gz = 0;
  for (const fs::path& f : files) {
    const auto bytes = convkit::detail::read_file(f.string(), "seed");
    gz += convkit::data::detail::is_gzip(bytes);
    const convkit::data::IdxArray a = convkit::data::read_idx(f.string());
    convkit::Index count = 1;
    for (convkit::Index d : a.dims) count *= d;
    EXPECT_EQ(static_cast<std::size_t>(count), a.values.size()) << f;
  }
  EXPECT_GE(gz, 3) << "the corpus should hold gzip seeds too";
  for (const fs::path& f : seeds("idx_gz")) {  // first byte: where the fuzzer splits gzip members
    const auto bytes = convkit::detail::read_file(f.string(), "seed");
    ASSERT_GE(bytes.size(), 2u);
    EXPECT_NO_THROW(convkit::data::decode_idx({bytes.begin() + 1, bytes.end()}, f.string())) << f;
  }
}

TEST(FuzzSeeds, CheckpointSeedsParseAndRoundTrip) {
  const auto files = seeds("checkpoint");
  ASSERT_GE(files.size(), 4u);
  int as_float = 0, as_double = 0;
  for (const fs::path& f : files) {
    const auto bytes = convkit::detail::read_file(f.string(), "seed");
    const auto check = [&](auto tag) {
      using C = convkit::Checkpoint<decltype(tag)>;
      const C c = C::from_bytes(bytes, f.string());
      const std::vector<std::uint8_t> again = c.to_bytes();
      EXPECT_EQ(again.size(), bytes.size()) << f;
      const C d = C::from_bytes(again, "round trip");
      EXPECT_EQ(d.texts(), c.texts()) << f;
      ASSERT_EQ(d.tensors().size(), c.tensors().size()) << f;
      for (const auto& [name, t] : c.tensors()) EXPECT_TRUE(d.tensor(name).shape() == t.shape()) << name;
    };
    const bool is_float = bytes.size() > 12 && bytes[12] == 4;
    if (is_float) {
      check(float{});
      ++as_float;
    } else {
      check(double{});
      ++as_double;
    }
  }
  EXPECT_GE(as_float, 1);
  EXPECT_GE(as_double, 1);
}

TEST(Checkpoint, ToBytesIsWhatSaveWrites) {
  convkit::Checkpoint<float> c;
  c.put("w", convkit::Tensor<float>(convkit::Shape{2, 3}, 1.5f));
  c.put_text("epoch", "7");
  convkit::testing::data_files::TempDir dir;
  const std::string path = dir.file("to_bytes.ckpt");
  c.save(path);
  EXPECT_EQ(convkit::detail::read_file(path, "checkpoint"), c.to_bytes());
  const auto back = convkit::Checkpoint<float>::from_bytes(c.to_bytes(), "memory");
  EXPECT_EQ(back.text("epoch"), "7");
  EXPECT_EQ(back.tensor("w")[5], 1.5f);
}

}  // namespace
