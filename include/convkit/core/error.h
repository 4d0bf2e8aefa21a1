// convkit/core/error.h — the exception hierarchy and the check macro.
//
// Every failure the library reports is an exception derived from convkit::Error whose
// message says what was expected and what was got (DESIGN.md §7). CONVKIT_CHECK builds
// that message only when the check fails, so a passing check costs one branch.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace convkit {

/// Base of every exception thrown by convkit.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

namespace detail {

template <typename Exception, typename Fill>
[[noreturn]] void throw_with_message(Fill&& fill) {
  std::ostringstream os;
  fill(os);
  throw Exception(os.str());
}

/// Runs fn(); a convkit::Error it throws is rethrown as the same type with "prefix: "
/// before its message (containers use it to name the failing child's path).
template <typename Fn>
decltype(auto) with_error_prefix(const std::string& prefix, Fn&& fn) {
  try {
    return fn();
  } catch (const ShapeError& e) {
    throw ShapeError(prefix + ": " + e.what());
  } catch (const ValueError& e) {
    throw ValueError(prefix + ": " + e.what());
  } catch (const StateError& e) {
    throw StateError(prefix + ": " + e.what());
  } catch (const IoError& e) {
    throw IoError(prefix + ": " + e.what());
  } catch (const FormatError& e) {
    throw FormatError(prefix + ": " + e.what());
  } catch (const Error& e) {
    throw Error(prefix + ": " + e.what());
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
          [&](std::ostringstream& convkit_os_) { convkit_os_ << message; });           \
    }                                                                                  \
  } while (false)

/// Internal invariant: compiled away unless CONVKIT_DEBUG_ASSERTS is defined.
#ifdef CONVKIT_DEBUG_ASSERTS
#include <cassert>
#define CONVKIT_ASSERT(condition) assert(condition)
#else
#define CONVKIT_ASSERT(condition) ((void)0)
#endif
