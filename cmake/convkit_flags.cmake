# Flags for convkit's own targets (tests, examples, benchmarks) — never for consumers of
# the INTERFACE target, who choose their own.
function(convkit_own_target target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC 12 reports a false 'may be used uninitialized' inside its own AVX-512 intrinsic
      # headers when Eigen's packet code is inlined; nothing of ours is involved.
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    else()
      # clang's -Wpedantic flags GoogleTest's TYPED_TEST_SUITE(Fixture, Types), a variadic
      # macro called without its optional name-generator argument.
      target_compile_options(${target} PRIVATE -Wno-gnu-zero-variadic-macro-arguments)
    endif()
    if(CONVKIT_NATIVE)
      target_compile_options(${target} PRIVATE -march=native)
    endif()
    if(CONVKIT_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                               -fno-sanitize-recover=all)
      target_link_options(${target} PRIVATE -fsanitize=address,undefined)
      if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        # At -O1 the same AVX-512 headers also trip the definite 'is used uninitialized'.
        target_compile_options(${target} PRIVATE -Wno-uninitialized)
      endif()
    endif()
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W4 /permissive-)
  endif()
  target_link_libraries(${target} PRIVATE convkit::convkit)
endfunction()
