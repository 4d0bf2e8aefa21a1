// convkit/io/checkpoint.h — Checkpoint<T>: named tensors and texts, saved atomically.
//
// The architecture is code; a checkpoint holds only values. File layout (all integers
// little-endian, floats as their IEEE-754 bits):
//   0   8 bytes  magic "CVKTCKPT"
//   8   u32      format version (1)
//   12  u32      scalar size: 4 (float) or 8 (double)
//   16  u64      entry count
//   then per entry: u8 kind (1 tensor, 2 text), u32 name length, the name,
//     tensor: u8 rank, rank × u64 dims, the elements;   text: u64 length, the bytes
//   last u64     FNV-1a 64-bit hash of every byte before it
// save() writes "<path>.tmp", flushes it to the disk (fsync on POSIX), renames it over path
// and flushes the directory, so neither a crash nor a power cut leaves a half-written
// checkpoint where the last good one was. load() checks all of the above and
// names the file, the byte offset and the entry in every error.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <cerrno>

#include <fcntl.h>
#include <unistd.h>
#endif

#include "convkit/core/error.h"
#include "convkit/core/parameter.h"
#include "convkit/core/tensor.h"
#include "convkit/io/file.h"
#include "convkit/layers/layer.h"

namespace convkit {

namespace detail {

inline constexpr char kCheckpointMagic[9] = "CVKTCKPT";
inline constexpr std::uint32_t kCheckpointVersion = 1;

/// Writes bytes to file and, on POSIX systems, flushes them to the disk (fsync) before
/// returning, so the rename that follows never publishes a file the disk does not hold yet.
/// @throws IoError naming `path` (the checkpoint) and the file.
inline void write_durably(const std::string& file, const std::vector<std::uint8_t>& bytes, const std::string& path) {
#if defined(__unix__) || defined(__APPLE__)
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CONVKIT_CHECK(fd >= 0, IoError, "checkpoint " << path << ": cannot open " << file << " for writing");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const bool synced = done == bytes.size() && ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  CONVKIT_CHECK(synced && closed, IoError,
                "checkpoint " << path << ": writing " << bytes.size() << " bytes to " << file << " failed");
#else
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  CONVKIT_CHECK(f.good(), IoError, "checkpoint " << path << ": cannot open " << file << " for writing");
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  f.flush();
  CONVKIT_CHECK(f.good(), IoError, "checkpoint " << path << ": writing " << bytes.size() << " bytes to " << file << " failed");
#endif
}

/// After a rename: flushes the directory entry too (POSIX); best effort.
inline void sync_directory_of(const std::string& path) {
#if defined(__unix__) || defined(__APPLE__)
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
#else
  (void)path;
#endif
}

inline std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

class ByteWriter {
 public:
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <typename U>
  void uint(U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  template <typename T>
  void scalar(T v) {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    Bits bits;
    std::memcpy(&bits, &v, sizeof v);
    uint(bits);
  }
  std::vector<std::uint8_t> out;
};

class ByteReader {
 public:
  ByteReader(const std::vector<std::uint8_t>& data, std::size_t end, const std::string& path)
      : data_(data), end_(end), path_(path) {}

  void need(std::size_t n, const char* what) const {
    CONVKIT_CHECK(n <= end_ - pos_, FormatError,
                  "checkpoint " << path_ << ": expected " << what << " (" << n << " bytes) at byte offset " << pos_
                                << ", but only " << end_ - pos_ << " bytes remain");
  }
  template <typename U>
  U uint(const char* what) {
    need(sizeof(U), what);
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<U>(data_[pos_ + i]) << (8 * i));
    pos_ += sizeof(U);
    return v;
  }
  std::string text(std::size_t n, const char* what) {
    need(n, what);
    std::string s(data_.begin() + static_cast<std::ptrdiff_t>(pos_), data_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return s;
  }
  template <typename T>
  void scalars(T* dst, std::size_t n, const char* what) {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    need(n * sizeof(T), what);
    for (std::size_t i = 0; i < n; ++i) {
      const Bits bits = uint<Bits>(what);
      std::memcpy(dst + i, &bits, sizeof(T));
    }
  }
  std::size_t pos() const { return pos_; }

 private:
  const std::vector<std::uint8_t>& data_;
  std::size_t end_;
  std::size_t pos_ = 0;
  const std::string& path_;
};

}  // namespace detail

template <typename T>
class Checkpoint {
 public:
  /// Adds a tensor. @throws ValueError if the name is empty or already used.
  void put(const std::string& name, const Tensor<T>& t) {
    check_new(name);
    tensors_.emplace(name, t);
  }
  /// Adds a text value (epoch, RNG state, options). @throws ValueError as put().
  void put_text(const std::string& name, const std::string& value) {
    check_new(name);
    texts_.emplace(name, value);
  }

  bool has_tensor(const std::string& name) const { return tensors_.count(name) != 0; }
  bool has_text(const std::string& name) const { return texts_.count(name) != 0; }

  /// @throws FormatError if there is no such tensor.
  const Tensor<T>& tensor(const std::string& name) const {
    const auto it = tensors_.find(name);
    CONVKIT_CHECK(it != tensors_.end(), FormatError, "checkpoint: expected a tensor named '" << name << "', found none");
    return it->second;
  }
  /// @throws FormatError if there is no such text.
  const std::string& text(const std::string& name) const {
    const auto it = texts_.find(name);
    CONVKIT_CHECK(it != texts_.end(), FormatError, "checkpoint: expected a text entry named '" << name << "', found none");
    return it->second;
  }
  const std::map<std::string, Tensor<T>>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& texts() const { return texts_; }

  /// The checkpoint's file contents (layout at the top of this header): what save() writes.
  std::vector<std::uint8_t> to_bytes() const {
    detail::ByteWriter w;
    w.bytes(detail::kCheckpointMagic, 8);
    w.uint(detail::kCheckpointVersion);
    w.uint(static_cast<std::uint32_t>(sizeof(T)));
    w.uint(static_cast<std::uint64_t>(tensors_.size() + texts_.size()));
    for (const auto& [name, t] : tensors_) {
      w.uint(std::uint8_t{1});
      w.uint(static_cast<std::uint32_t>(name.size()));
      w.bytes(name.data(), name.size());
      w.uint(static_cast<std::uint8_t>(t.rank()));
      for (int i = 0; i < t.rank(); ++i) w.uint(static_cast<std::uint64_t>(t.dim(i)));
      for (Index i = 0; i < t.numel(); ++i) w.scalar(t[i]);
    }
    for (const auto& [name, value] : texts_) {
      w.uint(std::uint8_t{2});
      w.uint(static_cast<std::uint32_t>(name.size()));
      w.bytes(name.data(), name.size());
      w.uint(static_cast<std::uint64_t>(value.size()));
      w.bytes(value.data(), value.size());
    }
    w.uint(detail::fnv1a(w.out.data(), w.out.size()));
    return std::move(w.out);
  }

  /// Writes the checkpoint to "<path>.tmp", then renames it to path.
  /// @throws IoError if the file cannot be written (the previous file at path is untouched).
  void save(const std::string& path) const {
    const std::vector<std::uint8_t> bytes = to_bytes();
    const std::string tmp = path + ".tmp";
    detail::write_durably(tmp, bytes, path);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) std::filesystem::remove(tmp);
    CONVKIT_CHECK(!ec, IoError, "checkpoint " << path << ": cannot rename " << tmp << " to it (" << ec.message() << ")");
    detail::sync_directory_of(path);
  }

  /// Reads a checkpoint written by save() with the same scalar type.
  /// @throws IoError if the file cannot be read; FormatError for a bad magic, version,
  /// scalar type, checksum, truncation or duplicate entry.
  static Checkpoint load(const std::string& path) { return from_bytes(detail::read_file(path, "checkpoint"), path); }

  /// Parses what to_bytes() returns; `path` is only used in messages. Sizes in the data are
  /// checked against its length before anything is allocated for them.
  /// @throws FormatError as load().
  static Checkpoint from_bytes(const std::vector<std::uint8_t>& data, const std::string& path) {
    CONVKIT_CHECK(data.size() >= 32, FormatError,
                  "checkpoint " << path << ": expected at least 32 bytes (header and checksum), got " << data.size());
    CONVKIT_CHECK(std::memcmp(data.data(), detail::kCheckpointMagic, 8) == 0, FormatError,
                  "checkpoint " << path << ": expected magic \"CVKTCKPT\" at byte offset 0; not a convkit checkpoint");
    const std::size_t body = data.size() - 8;
    std::uint64_t stored = 0;
    for (std::size_t i = 0; i < 8; ++i) stored |= static_cast<std::uint64_t>(data[body + i]) << (8 * i);
    CONVKIT_CHECK(stored == detail::fnv1a(data.data(), body), FormatError,
                  "checkpoint " << path << ": checksum at byte offset " << body
                                << " does not match the contents (corrupt or truncated file)");
    detail::ByteReader r(data, body, path);
    r.text(8, "magic");
    const auto version = r.uint<std::uint32_t>("format version");
    CONVKIT_CHECK(version == detail::kCheckpointVersion, FormatError,
                  "checkpoint " << path << ": expected format version " << detail::kCheckpointVersion
                                << " at byte offset 8, got " << version);
    const auto scalar = r.uint<std::uint32_t>("scalar size");
    CONVKIT_CHECK(scalar == sizeof(T), FormatError,
                  "checkpoint " << path << ": expected " << (sizeof(T) == 4 ? "float" : "double")
                                << " data (scalar size " << sizeof(T) << ") at byte offset 12, got scalar size " << scalar);
    const auto count = r.uint<std::uint64_t>("entry count");
    Checkpoint c;
    for (std::uint64_t e = 0; e < count; ++e) {
      const std::size_t at = r.pos();
      const auto kind = r.uint<std::uint8_t>("entry kind");
      const auto name_len = r.uint<std::uint32_t>("entry name length");
      const std::string name = r.text(name_len, "entry name");
      CONVKIT_CHECK(!c.has_tensor(name) && !c.has_text(name), FormatError,
                    "checkpoint " << path << ": entry '" << name << "' at byte offset " << at << " appears twice");
      if (kind == 1) {
        const auto rank = r.uint<std::uint8_t>("tensor rank");
        CONVKIT_CHECK(rank <= Shape::kMaxRank, FormatError,
                      "checkpoint " << path << ": tensor '" << name << "' at byte offset " << at
                                    << " has rank " << int(rank) << ", expected at most " << Shape::kMaxRank);
        Index dims[Shape::kMaxRank] = {1, 1, 1, 1};
        std::uint64_t numel = 1;
        for (int i = 0; i < rank; ++i) {
          const auto d = r.uint<std::uint64_t>("tensor dimension");
          // Checked before multiplying, so the product cannot wrap around.
          CONVKIT_CHECK(d < (std::uint64_t{1} << 40) && (d == 0 || numel <= body / sizeof(T) / d), FormatError,
                        "checkpoint " << path << ": tensor '" << name << "' at byte offset " << at
                                      << " has sizes larger than the file");
          numel *= d;
          dims[i] = static_cast<Index>(d);
        }
        Tensor<T> t(Shape(dims, rank));
        r.scalars(t.data(), static_cast<std::size_t>(t.numel()), "tensor data");
        c.tensors_.emplace(name, std::move(t));
      } else if (kind == 2) {
        const auto len = r.uint<std::uint64_t>("text length");
        c.texts_.emplace(name, r.text(static_cast<std::size_t>(std::min<std::uint64_t>(len, body)), "text"));
      } else {
        CONVKIT_CHECK(false, FormatError,
                      "checkpoint " << path << ": expected entry kind 1 or 2 at byte offset " << at << ", got " << int(kind));
      }
    }
    CONVKIT_CHECK(r.pos() == body, FormatError,
                  "checkpoint " << path << ": " << body - r.pos() << " unexpected bytes after the last entry at byte offset "
                                << r.pos());
    return c;
  }

 private:
  void check_new(const std::string& name) const {
    CONVKIT_CHECK(!name.empty() && !has_tensor(name) && !has_text(name), ValueError,
                  "Checkpoint: expected a new, non-empty entry name, got '" << name << "'");
  }

  std::map<std::string, Tensor<T>> tensors_;
  std::map<std::string, std::string> texts_;
};

/// Adds every parameter as "<prefix><dotted name>".
template <typename T>
void save_parameters(Checkpoint<T>& c, const std::vector<NamedParameter<T>>& params, const std::string& prefix) {
  for (const NamedParameter<T>& p : params) c.put(prefix + p.name, p.param->value);
}

/// Loads every parameter from "<prefix><dotted name>", strictly: a missing entry, an entry
/// under prefix that no parameter claims, or a shape mismatch is a FormatError naming it.
/// Nothing is changed unless every entry matches.
/// Messages start with `source` ("checkpoint", or "checkpoint <path>").
template <typename T>
void load_parameters(const Checkpoint<T>& c, const std::vector<NamedParameter<T>>& params, const std::string& prefix,
                     const std::string& source = "checkpoint") {
  std::map<std::string, const Tensor<T>*> wanted;
  for (const NamedParameter<T>& p : params) {
    const std::string key = prefix + p.name;
    CONVKIT_CHECK(c.has_tensor(key), FormatError, source << ": missing entry '" << key << "' for parameter " << p.name);
    const Tensor<T>& t = c.tensor(key);
    CONVKIT_CHECK(t.shape() == p.param->value.shape(), FormatError,
                  source << ": entry '" << key << "' has shape " << t.shape() << ", expected "
                                        << p.param->value.shape());
    wanted.emplace(key, &t);
  }
  for (const auto& entry : c.tensors())
    CONVKIT_CHECK(entry.first.compare(0, prefix.size(), prefix) != 0 || wanted.count(entry.first) != 0,
                  FormatError, source << ": unexpected entry '" << entry.first << "' matches no parameter");
  for (const NamedParameter<T>& p : params) p.param->value = *wanted.at(prefix + p.name);
}

/// Saves every parameter and buffer of `model` under its dotted path to `path` (atomically).
/// @throws IoError if the file cannot be written.
template <typename T>
void save_parameters(const std::string& path, Layer<T>& model) {
  Checkpoint<T> c;
  save_parameters(c, model.named_parameters(), "");
  c.save(path);
}

/// Loads what save_parameters(path, model) wrote into a model of the same architecture,
/// strictly (see above); nothing changes unless every entry matches.
/// @throws IoError/FormatError naming the file and the entry.
template <typename T>
void load_parameters(const std::string& path, Layer<T>& model) {
  const Checkpoint<T> c = Checkpoint<T>::load(path);
  load_parameters(c, model.named_parameters(), "", "checkpoint " + path);
}

}  // namespace convkit
