// Checkpoint: bit-exact round trips (float and double, ranks 0-4, empty tensors, texts), the
// file layout, atomic saving, every load error with its message, and strict load_parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <convkit/containers/sequential.h>
#include <convkit/io/checkpoint.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/conv2d.h>

#include "data/data_files.h"
#include "support/seed.h"

namespace {

using convkit::Checkpoint;
using convkit::FormatError;
using convkit::Index;
using convkit::IoError;
using convkit::NamedParameter;
using convkit::Parameter;
using convkit::Rng;
using convkit::Shape;
using convkit::Tensor;
using convkit::ValueError;
using namespace convkit::testing::data_files;

template <typename T>
Tensor<T> filled(const Shape& s, Rng& rng) {
  Tensor<T> t(s);
  for (T& v : t) v = static_cast<T>(rng.normal());
  return t;
}

template <typename T>
::testing::AssertionResult bit_equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shape " << a.shape() << " vs " << b.shape();
  for (Index i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

// An independent writer of the documented layout, to craft files the library would not write.
struct Raw {
  Bytes b;
  void u8(std::uint8_t v) { b.push_back(v); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
  void header(std::uint64_t entries, std::uint32_t version = 1, std::uint32_t scalar = 4) {
    str("CVKTCKPT");
    u32(version);
    u32(scalar);
    u64(entries);
  }
  void name(const std::string& n) {
    u32(static_cast<std::uint32_t>(n.size()));
    str(n);
  }
  /// Appends the FNV-1a 64 checksum of everything so far.
  Bytes finish() const {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::uint8_t c : b) h = (h ^ c) * 0x100000001b3ull;
    Raw out{b};
    out.u64(h);
    return out.b;
  }
};

/// Rewrites the trailing checksum of a file image after editing it.
Bytes with_checksum(Bytes b) {
  b.resize(b.size() - 8);
  return Raw{b}.finish();
}

template <typename T>
class CheckpointTyped : public ::testing::Test {};
TYPED_TEST_SUITE(CheckpointTyped, convkit::testing::Scalars);

TYPED_TEST(CheckpointTyped, RoundTripIsBitExact) {
  using T = TypeParam;
  TempDir dir;
  Rng rng = convkit::testing::seeded_rng(301);
  Checkpoint<T> c;
  Tensor<T> scalar{Shape{}};
  scalar[0] = static_cast<T>(-2.5);
  c.put("rank0", scalar);
  c.put("rank1", filled<T>(Shape{7}, rng));
  c.put("rank2", filled<T>(Shape{3, 5}, rng));
  c.put("rank3", filled<T>(Shape{2, 3, 4}, rng));
  c.put("rank4.weight", filled<T>(Shape{2, 3, 4, 5}, rng));
  c.put("empty", Tensor<T>());
  c.put("empty4", Tensor<T>(Shape{2, 0, 3, 1}));
  Tensor<T> special(Shape{8});
  special[0] = std::numeric_limits<T>::infinity();
  special[1] = -std::numeric_limits<T>::infinity();
  special[2] = std::numeric_limits<T>::quiet_NaN();
  special[3] = static_cast<T>(-0.0);
  special[4] = std::numeric_limits<T>::denorm_min();
  special[5] = std::numeric_limits<T>::max();
  special[6] = std::numeric_limits<T>::lowest();
  special[7] = std::numeric_limits<T>::epsilon();
  c.put("special", special);
  c.put_text("epoch", "12");
  c.put_text("empty text", "");
  c.put_text("binary", std::string("a\0b\n\xff", 5));

  const std::string path = dir.file("model.ckpt");
  c.save(path);
  const Checkpoint<T> back = Checkpoint<T>::load(path);
  ASSERT_EQ(back.tensors().size(), c.tensors().size());
  for (const auto& [name, t] : c.tensors()) {
    ASSERT_TRUE(back.has_tensor(name)) << name;
    EXPECT_TRUE(bit_equal(back.tensor(name), t)) << name;
  }
  EXPECT_EQ(back.tensor("rank0").shape().rank(), 0);
  EXPECT_EQ(back.tensor("empty").shape(), Tensor<T>().shape());
  EXPECT_EQ(back.tensor("empty4").shape(), (Shape{2, 0, 3, 1}));
  EXPECT_TRUE(std::signbit(back.tensor("special")[3]));
  EXPECT_EQ(back.texts(), c.texts());
  EXPECT_EQ(back.text("binary").size(), 5u);
  EXPECT_FALSE(back.has_text("rank1"));
  EXPECT_FALSE(back.has_tensor("epoch"));

  // Saving what was loaded gives the same bytes.
  back.save(dir.file("again.ckpt"));
  EXPECT_EQ(read_plain(dir.file("again.ckpt")), read_plain(path));
}

TYPED_TEST(CheckpointTyped, FileLayout) {
  using T = TypeParam;
  TempDir dir;
  Checkpoint<T> c;
  Tensor<T> t(Shape{2});
  t[0] = T(1);
  t[1] = T(-2);
  c.put("w", t);
  c.put_text("k", "vv");
  const std::string path = dir.file("layout.ckpt");
  c.save(path);
  Raw want;
  want.header(2, 1, sizeof(T));
  want.u8(1);
  want.name("w");
  want.u8(1);
  want.u64(2);
  for (Index i = 0; i < 2; ++i) {
    if (sizeof(T) == 4) {
      std::uint32_t bits;
      std::memcpy(&bits, &t[i], 4);
      want.u32(bits);
    } else {
      std::uint64_t bits;
      std::memcpy(&bits, &t[i], 8);
      want.u64(bits);
    }
  }
  want.u8(2);
  want.name("k");
  want.u64(2);
  want.str("vv");
  EXPECT_EQ(read_plain(path), want.finish());
}

TEST(Checkpoint, SaveLeavesNoTemporaryFile) {
  TempDir dir;
  Checkpoint<float> c;
  c.put("a", Tensor<float>(Shape{3}, 1.5f));
  const std::string path = dir.file("ok.ckpt");
  c.save(path);
  c.save(path);  // overwriting works too
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.str())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST(Checkpoint, SaveToMissingDirectoryIsIoError) {
  TempDir dir;
  Checkpoint<float> c;
  c.put("a", Tensor<float>(Shape{3}, 1.5f));
  const std::string path = dir.file("no/such/dir/x.ckpt");
  const std::string msg = message_of<IoError>([&] { c.save(path); });
  EXPECT_TRUE(contains(msg, "checkpoint " + path + ": cannot open " + path + ".tmp for writing")) << msg;
  EXPECT_FALSE(std::filesystem::exists(dir.file("no")));
}

TEST(Checkpoint, FailedSaveKeepsThePreviousCheckpoint) {
  TempDir dir;
  const std::string path = dir.file("good.ckpt");
  Checkpoint<double> good;
  good.put("w", Tensor<double>(Shape{4}, 0.25));
  good.save(path);
  const Bytes before = read_plain(path);

  Checkpoint<double> next;
  next.put("w", Tensor<double>(Shape{4}, 9.0));
  // The temporary file cannot be created: a directory sits at its name.
  std::filesystem::create_directory(path + ".tmp");
  const std::string msg = message_of<IoError>([&] { next.save(path); });
  EXPECT_TRUE(contains(msg, path + ".tmp")) << msg;
  EXPECT_EQ(read_plain(path), before);
  EXPECT_EQ(Checkpoint<double>::load(path).tensor("w")[0], 0.25);
  std::filesystem::remove(path + ".tmp");

  // The rename cannot replace the target (a non-empty directory): the temporary is removed.
  const std::string blocked = dir.file("blocked.ckpt");
  std::filesystem::create_directories(blocked + "/inside");
  const std::string rmsg = message_of<IoError>([&] { next.save(blocked); });
  EXPECT_TRUE(contains(rmsg, "cannot rename " + blocked + ".tmp")) << rmsg;
  EXPECT_FALSE(std::filesystem::exists(blocked + ".tmp"));
  EXPECT_TRUE(std::filesystem::is_directory(blocked + "/inside"));
}

TEST(Checkpoint, PutAndLookupErrors) {
  Checkpoint<float> c;
  c.put("a", Tensor<float>(Shape{1}));
  c.put_text("t", "x");
  EXPECT_TRUE(contains(message_of<ValueError>([&] { c.put("a", Tensor<float>(Shape{1})); }),
                       "expected a new, non-empty entry name, got 'a'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { c.put_text("a", "y"); }), "got 'a'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { c.put("t", Tensor<float>(Shape{1})); }), "got 't'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { c.put("", Tensor<float>(Shape{1})); }), "got ''"));
  EXPECT_TRUE(contains(message_of<FormatError>([&] { c.tensor("t"); }), "expected a tensor named 't', found none"));
  EXPECT_TRUE(contains(message_of<FormatError>([&] { c.text("a"); }), "expected a text entry named 'a', found none"));
}

class CheckpointLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    Checkpoint<float> c;
    Rng rng(302);
    c.put("c1.weight", filled<float>(Shape{2, 1, 3, 3}, rng));
    c.put("c1.bias", filled<float>(Shape{2}, rng));
    c.put_text("epoch", "3");
    path_ = dir_.file("f.ckpt");
    c.save(path_);
    bytes_ = read_plain(path_);
  }
  std::string write(const Bytes& b, const std::string& name = "edited.ckpt") {
    const std::string p = dir_.file(name);
    write_plain(p, b);
    return p;
  }
  TempDir dir_;
  std::string path_;
  Bytes bytes_;
};

TEST_F(CheckpointLoad, WrongMagic) {
  Bytes b = bytes_;
  b[3] = 'X';
  const std::string p = write(b);
  const std::string msg = message_of<FormatError>([&] { Checkpoint<float>::load(p); });
  EXPECT_TRUE(contains(msg, "checkpoint " + p + ": expected magic \"CVKTCKPT\" at byte offset 0")) << msg;
}

TEST_F(CheckpointLoad, WrongVersion) {
  Bytes b = bytes_;
  b[8] = 2;
  const std::string p = write(with_checksum(b));
  const std::string msg = message_of<FormatError>([&] { Checkpoint<float>::load(p); });
  EXPECT_TRUE(contains(msg, p));
  EXPECT_TRUE(contains(msg, "expected format version 1 at byte offset 8, got 2")) << msg;
}

TEST_F(CheckpointLoad, FloatFileLoadedAsDouble) {
  const std::string msg = message_of<FormatError>([&] { Checkpoint<double>::load(path_); });
  EXPECT_TRUE(contains(msg, path_));
  EXPECT_TRUE(contains(msg, "expected double data (scalar size 8) at byte offset 12, got scalar size 4")) << msg;
  TempDir other;
  Checkpoint<double> d;
  d.put("x", Tensor<double>(Shape{1}));
  d.save(other.file("d.ckpt"));
  const std::string back = message_of<FormatError>([&] { Checkpoint<float>::load(other.file("d.ckpt")); });
  EXPECT_TRUE(contains(back, "expected float data (scalar size 4) at byte offset 12, got scalar size 8")) << back;
}

TEST_F(CheckpointLoad, EveryFlippedByteIsCaught) {
  for (std::size_t i = 0; i < bytes_.size(); ++i) {
    Bytes b = bytes_;
    b[i] ^= 0x10;
    const std::string p = write(b);
    const std::string msg = message_of<FormatError>([&] { Checkpoint<float>::load(p); });
    if (i < 8) {
      EXPECT_TRUE(contains(msg, "expected magic")) << "byte " << i;
    } else {
      EXPECT_TRUE(contains(msg, "checksum at byte offset " + std::to_string(bytes_.size() - 8) +
                                    " does not match the contents"))
          << "byte " << i << ": " << msg;
    }
  }
}

TEST_F(CheckpointLoad, EveryTruncationIsCaught) {
  for (std::size_t n = 0; n < bytes_.size(); ++n) {
    const std::string p = write(Bytes(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(n)));
    const std::string msg = message_of<FormatError>([&] { Checkpoint<float>::load(p); });
    EXPECT_TRUE(contains(msg, p)) << n;
    if (n < 32) {
      EXPECT_TRUE(contains(msg, "expected at least 32 bytes (header and checksum), got " + std::to_string(n)));
    }
  }
}

TEST_F(CheckpointLoad, MissingFileIsIoError) {
  const std::string p = dir_.file("absent.ckpt");
  const std::string msg = message_of<IoError>([&] { Checkpoint<float>::load(p); });
  EXPECT_TRUE(contains(msg, "checkpoint " + p + ": cannot open it for reading")) << msg;
}

TEST_F(CheckpointLoad, MalformedEntriesWithValidChecksum) {
  auto load_msg = [&](const Raw& r) {
    const std::string p = write(r.finish());
    return message_of<FormatError>([&] { Checkpoint<float>::load(p); });
  };
  {  // unknown kind
    Raw r;
    r.header(1);
    r.u8(7);
    r.name("x");
    EXPECT_TRUE(contains(load_msg(r), "expected entry kind 1 or 2 at byte offset 24, got 7"));
  }
  {  // rank 5
    Raw r;
    r.header(1);
    r.u8(1);
    r.name("big");
    r.u8(5);
    EXPECT_TRUE(contains(load_msg(r), "tensor 'big' at byte offset 24 has rank 5, expected at most 4"));
  }
  {  // sizes far beyond the file: rejected before allocating
    Raw r;
    r.header(1);
    r.u8(1);
    r.name("huge");
    r.u8(2);
    r.u64(1u << 30);
    r.u64(1u << 30);
    EXPECT_TRUE(contains(load_msg(r), "tensor 'huge' at byte offset 24 has sizes larger than the file"));
  }
  {  // data shorter than the shape says
    Raw r;
    r.header(1);
    r.u8(1);
    r.name("w");
    r.u8(1);
    r.u64(3);
    r.u32(0);
    const std::string msg = load_msg(r);
    EXPECT_TRUE(contains(msg, "expected tensor data (12 bytes) at byte offset 39, but only 4 bytes remain")) << msg;
  }
  {  // text longer than the file
    Raw r;
    r.header(1);
    r.u8(2);
    r.name("t");
    r.u64(~std::uint64_t{0});
    r.str("abc");
    EXPECT_TRUE(contains(load_msg(r), "expected text"));
  }
  {  // more entries announced than present
    Raw r;
    r.header(2);
    r.u8(2);
    r.name("t");
    r.u64(1);
    r.str("a");
    EXPECT_TRUE(contains(load_msg(r), "expected entry kind (1 bytes) at byte offset 39, but only 0 bytes remain"));
  }
  {  // bytes after the last entry
    Raw r;
    r.header(0);
    r.u8(9);
    r.u8(9);
    EXPECT_TRUE(contains(load_msg(r), "2 unexpected bytes after the last entry at byte offset 24"));
  }
  {  // the same name twice
    Raw r;
    r.header(2);
    r.u8(2);
    r.name("dup");
    r.u64(0);
    r.u8(1);
    r.name("dup");
    r.u8(0);
    r.u32(0);
    EXPECT_TRUE(contains(load_msg(r), "entry 'dup' at byte offset 40 appears twice"));
  }
  {  // a valid minimal file: no entries
    Raw r;
    r.header(0);
    const std::string p = write(r.finish(), "empty.ckpt");
    const Checkpoint<float> c = Checkpoint<float>::load(p);
    EXPECT_TRUE(c.tensors().empty());
    EXPECT_TRUE(c.texts().empty());
  }
}

// ---------------------------------------------------------------------------------------------
// load_parameters

struct Model {
  Parameter<float> w{"weight", Shape{2, 3}}, b{"bias", Shape{2}};
  std::vector<NamedParameter<float>> named() { return {{"fc.weight", &w}, {"fc.bias", &b}}; }
  explicit Model(float base) {
    for (Index i = 0; i < w.value.numel(); ++i) w.value[i] = base + static_cast<float>(i);
    for (Index i = 0; i < b.value.numel(); ++i) b.value[i] = -base - static_cast<float>(i);
  }
};

void expect_unchanged(Model& m, float base) {
  const Model fresh(base);
  EXPECT_TRUE(bit_equal(m.w.value, fresh.w.value));
  EXPECT_TRUE(bit_equal(m.b.value, fresh.b.value));
}

TEST(LoadParameters, RoundTripWithPrefix) {
  TempDir dir;
  Model a(1.0f), b(50.0f);
  Checkpoint<float> c;
  convkit::save_parameters(c, a.named(), "model.");
  c.put("optimizer.fc.weight.momentum", Tensor<float>(Shape{2, 3}));  // outside the prefix: ignored
  c.put_text("epoch", "1");
  EXPECT_TRUE(c.has_tensor("model.fc.weight"));
  EXPECT_TRUE(c.has_tensor("model.fc.bias"));
  c.save(dir.file("p.ckpt"));
  convkit::load_parameters(Checkpoint<float>::load(dir.file("p.ckpt")), b.named(), "model.");
  expect_unchanged(b, 1.0f);
}

TEST(LoadParameters, MissingEntry) {
  Model a(1.0f), b(50.0f);
  Checkpoint<float> c;
  c.put("fc.weight", a.w.value);
  const std::string msg = message_of<FormatError>([&] { convkit::load_parameters(c, b.named(), ""); });
  EXPECT_TRUE(contains(msg, "missing entry 'fc.bias'")) << msg;
  expect_unchanged(b, 50.0f);
}

TEST(LoadParameters, UnexpectedEntry) {
  Model a(1.0f), b(50.0f);
  Checkpoint<float> c;
  convkit::save_parameters(c, a.named(), "m.");
  c.put("m.fc.extra", Tensor<float>(Shape{1}));
  const std::string msg = message_of<FormatError>([&] { convkit::load_parameters(c, b.named(), "m."); });
  EXPECT_TRUE(contains(msg, "unexpected entry 'm.fc.extra' matches no parameter")) << msg;
  expect_unchanged(b, 50.0f);
}

TEST(LoadParameters, MisShapedEntry) {
  Model a(1.0f), b(50.0f);
  Checkpoint<float> c;
  c.put("fc.weight", a.w.value);
  c.put("fc.bias", Tensor<float>(Shape{3}));
  const std::string msg = message_of<FormatError>([&] { convkit::load_parameters(c, b.named(), ""); });
  EXPECT_TRUE(contains(msg, "entry 'fc.bias' has shape (3), expected (2)")) << msg;
  expect_unchanged(b, 50.0f);  // weight was fine, but nothing is changed
  Checkpoint<float> t;
  t.put("fc.weight", a.w.value.reshaped(Shape{3, 2}));
  t.put("fc.bias", a.b.value);
  const std::string tmsg = message_of<FormatError>([&] { convkit::load_parameters(t, b.named(), ""); });
  EXPECT_TRUE(contains(tmsg, "entry 'fc.weight' has shape (3, 2), expected (2, 3)")) << tmsg;
  expect_unchanged(b, 50.0f);
}

TEST(SaveParameters, WholeModelRoundTripIncludesBuffersAndNamesTheFileOnError) {
  TempDir dir;
  Rng rng = convkit::testing::seeded_rng(77);
  auto make = [](Rng& r) {
    convkit::Sequential<float> net;
    net.add("conv", std::make_unique<convkit::Conv2d<float>>(convkit::Conv2dOptions(2, 3, 3), r));
    net.add("bn", std::make_unique<convkit::BatchNorm2d<float>>(3));
    return net;
  };
  convkit::Sequential<float> a = make(rng), b = make(rng);
  // A training forward moves a's running statistics away from b's.
  a.forward(filled<float>(Shape{2, 2, 5, 5}, rng));
  convkit::save_parameters(dir.file("m.ckpt"), a);
  convkit::load_parameters(dir.file("m.ckpt"), b);
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), 6u);  // conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var
  for (std::size_t k = 0; k < pa.size(); ++k) EXPECT_TRUE(bit_equal(pa[k].param->value, pb[k].param->value)) << pa[k].name;
  // Another architecture: the error names the file and the entry.
  convkit::Sequential<float> other;
  other.add("conv", std::make_unique<convkit::Conv2d<float>>(convkit::Conv2dOptions(2, 4, 3), rng));
  const std::string msg = message_of<FormatError>([&] { convkit::load_parameters(dir.file("m.ckpt"), other); });
  EXPECT_TRUE(contains(msg, "checkpoint " + dir.file("m.ckpt") + ": entry 'conv.weight' has shape (3, 2, 3, 3), expected (4, 2, 3, 3)")) << msg;
}

}  // namespace
