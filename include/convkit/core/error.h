// convkit/core/error.h — the exception hierarchy and the check macro.
//
// Every failure the library reports is an exception derived from convkit::Error whose
// message says what was expected and what was got (DESIGN.md §7). CONVKIT_CHECK builds
// that message only when the check fails, so a passing check costs one branch.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

// Keeps a function out of line (GCC, clang, MSVC; elsewhere the compiler decides).
#if defined(__GNUC__) || defined(__clang__)
#define CONVKIT_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define CONVKIT_NOINLINE __declspec(noinline)
#else
#define CONVKIT_NOINLINE
#endif

namespace convkit {

/// Base of every exception thrown by convkit.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message), detail_(message) {}
  /// An error inside a container's child: the message is "path: detail".
  Error(const std::string& path, const std::string& detail)
      : std::runtime_error(path + ": " + detail), path_(path), detail_(detail) {}

  /// The dotted path of the child that failed ("features.12"), empty outside containers.
  const std::string& path() const { return path_; }
  /// The message without the path.
  const std::string& detail() const { return detail_; }

 private:
  std::string path_;
  std::string detail_;
};

/// A tensor had the wrong rank, size or channel count.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A hyperparameter or value was out of its valid range (stride 0, p = 1.5, label 12 of 10).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// An operation was called in the wrong state (backward before forward).
class StateError : public Error {
 public:
  using Error::Error;
};

/// A file could not be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A file's contents do not follow the expected format.
class FormatError : public Error {
 public:
  using Error::Error;
};

/// Anomaly detection (core/anomaly.h) found a NaN or an infinity a layer or loss produced.
class NumericalError : public Error {
 public:
  using Error::Error;
};

namespace detail {

/// Streams a message with fill(os, context) and throws Exception(message): one instance per
/// exception type, called out of line, so that each check's failure path compiles to a call
/// and its own `<<` chain only, not a whole stream built inline at each of hundreds of checks
/// (the LeNet-5 trainer's object code: 334 -> 313 KB).
template <typename Exception>
[[noreturn]] CONVKIT_NOINLINE void throw_streamed(void (*fill)(std::ostream&, const void*), const void* context) {
  std::ostringstream os;
  fill(os, context);
  throw Exception(os.str());
}

template <typename Exception, typename Fill>
[[noreturn]] void throw_with_message(const Fill& fill) {
  throw_streamed<Exception>([](std::ostream& os, const void* f) { (*static_cast<const Fill*>(f))(os); }, &fill);
}

/// Runs fn(); a convkit::Error it throws is rethrown as the same type with the child's `name`
/// in front of its path, so nested containers report "features.12: MaxPool2d(...): ...".
template <typename Fn>
decltype(auto) with_child_path(const std::string& name, Fn&& fn) {
  auto join = [&](const Error& e) { return e.path().empty() ? name : name + "." + e.path(); };
  try {
    return fn();
  } catch (const ShapeError& e) {
    throw ShapeError(join(e), e.detail());
  } catch (const ValueError& e) {
    throw ValueError(join(e), e.detail());
  } catch (const StateError& e) {
    throw StateError(join(e), e.detail());
  } catch (const IoError& e) {
    throw IoError(join(e), e.detail());
  } catch (const FormatError& e) {
    throw FormatError(join(e), e.detail());
  } catch (const NumericalError& e) {
    throw NumericalError(join(e), e.detail());
  } catch (const Error& e) {
    throw Error(join(e), e.detail());
  }
}

}  // namespace detail
}  // namespace convkit

/// Throws `ExceptionType(message)` when `condition` is false. `message` is a stream
/// expression (`"expected " << a << ", got " << b`) evaluated only on failure.
#define CONVKIT_CHECK(condition, ExceptionType, message)                               \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      ::convkit::detail::throw_with_message<ExceptionType>(                            \
          [&](std::ostream& convkit_os_) { convkit_os_ << message; });           \
    }                                                                                  \
  } while (false)

/// Internal invariant: compiled away unless CONVKIT_DEBUG_ASSERTS is defined.
#ifdef CONVKIT_DEBUG_ASSERTS
#include <cassert>
#define CONVKIT_ASSERT(condition) assert(condition)
#else
#define CONVKIT_ASSERT(condition) ((void)0)
#endif
