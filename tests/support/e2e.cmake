# Helpers of the `kmbench` end-to-end scripts (include()d; EXE names kmbench).

# run(EXPECT_EXIT NEEDLES ARGS...) — NEEDLES: ;-list joined by '|' that stdout+stderr must hold.
function(run expect_exit needles)
  execute_process(COMMAND ${EXE} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expect_exit)
    message(FATAL_ERROR "kmbench ${ARGN}: exit ${rc}, expected ${expect_exit}\n${out}\n${err}")
  endif()
  string(REPLACE "|" ";" needles "${needles}")
  foreach(n IN LISTS needles)
    string(FIND "${out}${err}" "${n}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "kmbench ${ARGN}: output lacks '${n}'\n${out}\n${err}")
    endif()
  endforeach()
endfunction()
