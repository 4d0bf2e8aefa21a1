# ctest: the trainer -> predict -> visualize pipeline on a small Fashion-MNIST run.
#   cmake -DBIN=<examples build dir> -DWORK_DIR=<scratch> -P run_pipeline.cmake
# Says "skipped: Fashion-MNIST not installed" (ctest's SKIP_REGULAR_EXPRESSION) when Debian's
# dataset-fashion-mnist is absent.
if(NOT EXISTS /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz)
  message("skipped: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
  return()
endif()
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
function(step expect_regex)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${ARGN}\n${out}${err}")
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${expect_regex}")
    message(FATAL_ERROR "failed (exit ${rc}; expected output matching '${expect_regex}')")
  endif()
endfunction()
step("epoch 2/2: .*checkpoint: lenet5.ckpt" ${BIN}/lenet5_mnist --dataset fashion-mnist --epochs 2 --limit 3000
     --save lenet5.ckpt --log lenet5.csv)
file(STRINGS ${WORK_DIR}/lenet5.csv log)
list(LENGTH log lines)
if(NOT lines EQUAL 3)
  message(FATAL_ERROR "lenet5.csv: expected a header and 2 epochs, got ${lines} lines")
endif()
step("wrote .*curve.png \\(2 epochs\\)" ${BIN}/visualize lenet5.ckpt --log lenet5.csv --image 3)
foreach(png c1_filters.png feature_maps.png curve.png)
  file(SIZE ${WORK_DIR}/${png} bytes)
  if(bytes LESS 500)
    message(FATAL_ERROR "${png}: only ${bytes} bytes")
  endif()
endforeach()
# Any picture goes through predict; the line lists three classes with percentages.
step("feature_maps.png: [A-Za-z-]+ [0-9.]+%, [A-Za-z-]+ [0-9.]+%, [A-Za-z-]+ [0-9.]+%"
     ${BIN}/predict lenet5.ckpt feature_maps.png)
execute_process(COMMAND ${BIN}/predict lenet5.ckpt no_such.png WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc
                ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "no_such.png: cannot read the image")
  message(FATAL_ERROR "predict on a missing file: expected an error, got exit ${rc}: ${err}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
