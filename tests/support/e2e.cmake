# Helpers of the `kmbench` end-to-end scripts (include()d; EXE names kmbench).

# run(EXPECT_EXIT NEEDLES ARGS...) — NEEDLES: ;-list joined by '|' that stdout+stderr must hold.
function(run expect_exit needles)
  run_io("" "" ${expect_exit} "${needles}" ${ARGN})
endfunction()

# run_io(INPUT OUTPUT EXPECT_EXIT NEEDLES ARGS...) — as run(), with standard
# input read from INPUT and standard output written to OUTPUT (each a path,
# or "" for none: then NEEDLES are looked for in stdout too).
function(run_io input output expect_exit needles)
  set(io "")
  if(input)
    list(APPEND io INPUT_FILE ${input})
  endif()
  if(output)
    list(APPEND io OUTPUT_FILE ${output})
  else()
    list(APPEND io OUTPUT_VARIABLE out)
  endif()
  execute_process(COMMAND ${EXE} ${ARGN} ${io} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL expect_exit)
    message(FATAL_ERROR "kmbench ${ARGN}: exit ${rc}, expected ${expect_exit}\n${err}")
  endif()
  string(REPLACE "|" ";" needles "${needles}")
  foreach(n IN LISTS needles)
    string(FIND "${out}${err}" "${n}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "kmbench ${ARGN}: output lacks '${n}'\n${out}\n${err}")
    endif()
  endforeach()
endfunction()
