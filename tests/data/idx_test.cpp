// IDX reader: valid plain and .gz files, and every malformed file the tests can write: each
// a FormatError or IoError naming the file and the byte offset or count, never a crash.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <convkit/data/idx.h>

#include "data/data_files.h"

namespace {

using convkit::FormatError;
using convkit::Index;
using convkit::IoError;
using convkit::data::IdxArray;
using convkit::data::read_idx;
using namespace convkit::testing::data_files;

/// 2 × 3 × 4 bytes whose values encode their position.
Bytes sample_values() {
  Bytes v;
  for (int i = 0; i < 24; ++i) v.push_back(static_cast<std::uint8_t>(10 * i + 7));
  return v;
}

void expect_sample(const IdxArray& a) {
  EXPECT_EQ(a.dims, (std::vector<Index>{2, 3, 4}));
  EXPECT_EQ(a.values, sample_values());
}

TEST(Idx, ReadsPlainFile) {
  TempDir dir;
  const std::string path = dir.file("plain-idx3-ubyte");
  write_plain(path, idx_bytes({2, 3, 4}, sample_values()));
  expect_sample(read_idx(path));
}

TEST(Idx, ReadsGzipFile) {
  TempDir dir;
  const std::string path = dir.file("packed-idx3-ubyte.gz");
  write_gz(path, idx_bytes({2, 3, 4}, sample_values()));
  // the file on disk really is compressed
  const Bytes raw = read_plain(path);
  ASSERT_GE(raw.size(), 2u);
  EXPECT_EQ(raw[0], 0x1f);
  EXPECT_EQ(raw[1], 0x8b);
  expect_sample(read_idx(path));
}

TEST(Idx, ReadsOtherRanksAndSizes) {
  TempDir dir;
  // rank 1 with sizes above 255 (big-endian across several bytes)
  Bytes labels(300);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::uint8_t>(i % 10);
  write_plain(dir.file("labels"), idx_bytes({300}, labels));
  const IdxArray a = read_idx(dir.file("labels"));
  EXPECT_EQ(a.dims, (std::vector<Index>{300}));
  EXPECT_EQ(a.values, labels);
  // rank 4, and a large-ish gz file spanning several internal read buffers
  Bytes big(70000 * 2);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>((i * 31) >> 3);
  write_gz(dir.file("big.gz"), idx_bytes({2, 1, 70000, 1}, big));
  const IdxArray b = read_idx(dir.file("big.gz"));
  EXPECT_EQ(b.dims, (std::vector<Index>{2, 1, 70000, 1}));
  EXPECT_EQ(b.values, big);
  // zero items
  write_plain(dir.file("empty"), idx_bytes({0, 28, 28}, {}));
  const IdxArray e = read_idx(dir.file("empty"));
  EXPECT_EQ(e.dims, (std::vector<Index>{0, 28, 28}));
  EXPECT_TRUE(e.values.empty());
}

TEST(Idx, TruncatedDataNamesOffsetAndCounts) {
  TempDir dir;
  const std::string path = dir.file("short");
  Bytes b = idx_bytes({2, 3, 4}, sample_values());
  b.resize(b.size() - 5);
  write_plain(path, b);
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "expected 24 data bytes from byte offset 16, got 19 (truncated)")) << msg;
}

TEST(Idx, TrailingBytes) {
  TempDir dir;
  const std::string path = dir.file("long");
  Bytes b = idx_bytes({2, 3, 4}, sample_values());
  b.push_back(1);
  b.push_back(2);
  write_plain(path, b);
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "expected 24 data bytes from byte offset 16, got 26 (trailing bytes)")) << msg;
}

TEST(Idx, WrongMagic) {
  TempDir dir;
  const std::string path = dir.file("magic");
  Bytes b = idx_bytes({2, 3, 4}, sample_values());
  b[1] = 0x05;
  write_plain(path, b);
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "expected magic bytes 0x00 0x00 at byte offset 0, got 0 5")) << msg;
}

TEST(Idx, WrongElementType) {
  TempDir dir;
  const std::string path = dir.file("float-idx");
  write_plain(path, idx_bytes({2, 3, 4}, sample_values(), 0x0D));  // 0x0D = float
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "expected element type 0x08 (unsigned byte) at byte offset 2, got 0xd")) << msg;
}

TEST(Idx, WrongDimensionCount) {
  TempDir dir;
  const std::string zero = dir.file("rank0");
  write_plain(zero, Bytes{0, 0, 8, 0, 1, 2});
  std::string msg = message_of<FormatError>([&] { read_idx(zero); });
  EXPECT_TRUE(contains(msg, zero));
  EXPECT_TRUE(contains(msg, "expected 1 to 4 dimensions at byte offset 3, got 0")) << msg;

  const std::string five = dir.file("rank5");
  write_plain(five, idx_bytes({1, 1, 1, 1, 1}, Bytes{9}));
  msg = message_of<FormatError>([&] { read_idx(five); });
  EXPECT_TRUE(contains(msg, five));
  EXPECT_TRUE(contains(msg, "at byte offset 3, got 5")) << msg;
}

TEST(Idx, HeaderCutShort) {
  TempDir dir;
  const std::string tiny = dir.file("tiny");
  write_plain(tiny, Bytes{0, 0, 8});
  std::string msg = message_of<FormatError>([&] { read_idx(tiny); });
  EXPECT_TRUE(contains(msg, tiny));
  EXPECT_TRUE(contains(msg, "expected a 4-byte header at byte offset 0, got 3 bytes")) << msg;

  const std::string sizes = dir.file("sizes");
  write_plain(sizes, Bytes{0, 0, 8, 3, 0, 0, 0, 2, 0, 0});  // 3 sizes announced, 1.5 present
  msg = message_of<FormatError>([&] { read_idx(sizes); });
  EXPECT_TRUE(contains(msg, sizes));
  EXPECT_TRUE(contains(msg, "expected 3 dimension sizes at byte offset 4, but the file ends at byte 10")) << msg;

  const std::string empty = dir.file("empty");
  write_plain(empty, Bytes{});
  msg = message_of<FormatError>([&] { read_idx(empty); });
  EXPECT_TRUE(contains(msg, "got 0 bytes")) << msg;
}

TEST(Idx, HugeSizesAreRejectedWithoutAllocating) {
  TempDir dir;
  const std::string path = dir.file("huge");
  write_plain(path, idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 2}, Bytes{1, 2, 3}));
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "byte offset 4")) << msg;
}

TEST(Idx, TruncatedGzip) {
  TempDir dir;
  const std::string full = dir.file("full.gz");
  Bytes values(5000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::uint8_t>((i * 7919) % 251);
  write_gz(full, idx_bytes({5, 1000}, values));
  Bytes gz = read_plain(full);
  ASSERT_GT(gz.size(), 100u);
  for (std::size_t keep : {gz.size() - 4, gz.size() / 2, std::size_t{12}}) {
    const std::string path = dir.file("cut" + std::to_string(keep) + ".gz");
    write_plain(path, Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(keep)));
    const std::string msg = message_of<FormatError>([&] { read_idx(path); });
    EXPECT_TRUE(contains(msg, path)) << msg;
    EXPECT_TRUE(contains(msg, "gzip data after")) << msg;
    EXPECT_TRUE(contains(msg, "bytes")) << msg;
  }
}

TEST(Idx, GarbageGzip) {
  TempDir dir;
  const std::string path = dir.file("garbage.gz");
  // A gzip header (magic, deflate, no flags, mtime, xfl, OS) followed by bytes that are not
  // a valid deflate stream.
  Bytes b = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};
  for (int i = 0; i < 200; ++i) b.push_back(static_cast<std::uint8_t>(0xFF - (i * 37) % 64));
  write_plain(path, b);
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "corrupt gzip data after")) << msg;

  // A .gz name on a file that is neither gzip nor IDX: read as plain bytes, then rejected.
  const std::string text = dir.file("text.gz");
  write_plain(text, Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  const std::string tmsg = message_of<FormatError>([&] { read_idx(text); });
  EXPECT_TRUE(contains(tmsg, text));
  EXPECT_TRUE(contains(tmsg, "at byte offset 0")) << tmsg;
}

TEST(Idx, GzipOfMalformedIdxReportsTheDecompressedOffset) {
  TempDir dir;
  const std::string path = dir.file("bad-inside.gz");
  Bytes b = idx_bytes({2, 3, 4}, sample_values());
  b.pop_back();
  write_gz(path, b);
  const std::string msg = message_of<FormatError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "from byte offset 16, got 23 (truncated)")) << msg;
}

TEST(Idx, MissingFileIsIoError) {
  TempDir dir;
  const std::string path = dir.file("does-not-exist");
  const std::string msg = message_of<IoError>([&] { read_idx(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "cannot open it for reading")) << msg;
  // a directory opens but cannot be read: an IoError too, not a format problem
  const std::string dmsg = message_of<IoError>([&] { read_idx(dir.str()); });
  EXPECT_TRUE(contains(dmsg, "IDX file " + dir.str() + ": cannot read it after 0 bytes")) << dmsg;
}

TEST(Idx, ParseIdxDirectly) {
  const IdxArray a = convkit::data::parse_idx(idx_bytes({3}, Bytes{4, 5, 6}), "memory");
  EXPECT_EQ(a.dims, (std::vector<Index>{3}));
  EXPECT_EQ(a.values, (Bytes{4, 5, 6}));
  const std::string msg =
      message_of<FormatError>([] { convkit::data::parse_idx(idx_bytes({3}, Bytes{4, 5}), "memory"); });
  EXPECT_TRUE(contains(msg, "IDX file memory: expected 3 data bytes from byte offset 8, got 2")) << msg;
}

TEST(Idx, DecodeTellsGzipByItsMagicAndReadsConcatenatedMembers) {
  const Bytes plain = idx_bytes({2, 3, 4}, sample_values());
  expect_sample(convkit::data::decode_idx(plain, "memory"));
  TempDir dir;
  // Two gzip members, split inside the header, read as one file (as gzip -d does).
  write_gz(dir.file("a.gz"), Bytes(plain.begin(), plain.begin() + 6));
  write_gz(dir.file("b.gz"), Bytes(plain.begin() + 6, plain.end()));
  Bytes both = read_plain(dir.file("a.gz"));
  const Bytes second = read_plain(dir.file("b.gz"));
  both.insert(both.end(), second.begin(), second.end());
  expect_sample(convkit::data::decode_idx(both, "memory"));
  // The name does not matter: a gzip file without ".gz" is still inflated.
  write_plain(dir.file("no-suffix"), both);
  expect_sample(read_idx(dir.file("no-suffix")));
}

TEST(Idx, GzipIsInflatedOnlyAsFarAsAsked) {
  TempDir dir;
  write_gz(dir.file("zeros.gz"), Bytes(std::size_t{4} << 20, 0));  // 4 MiB of zeros, ~4 KiB compressed
  const Bytes gz = read_plain(dir.file("zeros.gz"));
  EXPECT_LT(gz.size(), 8192u);
  const auto head = convkit::data::detail::gunzip(gz, "memory", 20);
  EXPECT_EQ(head.bytes.size(), 20u);
  EXPECT_TRUE(head.more);
  const auto all = convkit::data::detail::gunzip(gz, "memory", std::size_t{8} << 20);
  EXPECT_EQ(all.bytes.size(), std::size_t{4} << 20);
  EXPECT_FALSE(all.more);
  // A header that declares 4 data bytes ahead of 1 MiB: rejected without inflating it all.
  write_gz(dir.file("long.gz"), idx_bytes({4}, Bytes(1 << 20, 7)));
  const std::string msg = message_of<FormatError>([&] { read_idx(dir.file("long.gz")); });
  EXPECT_TRUE(contains(msg, "expected 4 data bytes from byte offset 8, got more (trailing bytes)")) << msg;
}

}  // namespace
