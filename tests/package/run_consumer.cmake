# Builds and runs tests/package/consumer against convkit in one mode (ctest runs this script):
#   cmake -DMODE=find_package|add_subdirectory|fetchcontent|pkg-config -DSOURCE_DIR=... -DBINARY_DIR=...
#         -DWORK_DIR=... [-DCXX=...] -P run_consumer.cmake
# find_package and pkg-config first install convkit from SOURCE_DIR into WORK_DIR/prefix.
cmake_minimum_required(VERSION 3.16)
foreach(v MODE SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_consumer.cmake: -D${v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(prefix ${WORK_DIR}/prefix)
if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg-config")
  # A fresh configure of the library alone (no tests, examples or benchmarks), then install.
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -DCONVKIT_BUILD_TESTS=OFF -DCONVKIT_BUILD_EXAMPLES=OFF
      -DCONVKIT_BUILD_BENCHMARKS=OFF -DCMAKE_INSTALL_PREFIX=${prefix})
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
endif()

set(consumer ${SOURCE_DIR}/tests/package/consumer)
if(MODE STREQUAL "pkg-config")
  find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
  set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig:${prefix}/share/pkgconfig")
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs convkit OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config does not know convkit under ${prefix}")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  if(NOT CXX)
    set(CXX c++)
  endif()
  run(${CXX} -std=c++17 -O1 ${consumer}/main.cpp ${flags} -o ${WORK_DIR}/consumer)
else()
  run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/build -DCONSUMER_MODE=${MODE} -DCONVKIT_SOURCE_DIR=${SOURCE_DIR}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
  file(COPY ${WORK_DIR}/build/consumer DESTINATION ${WORK_DIR}/bin)
  file(RENAME ${WORK_DIR}/bin/consumer ${WORK_DIR}/consumer)
endif()
run(${WORK_DIR}/consumer)
file(REMOVE_RECURSE ${WORK_DIR})
