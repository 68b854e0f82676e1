# A driver's own trace end to end: examples/rx_driver recorded through the KPI
# (KMBENCH_RECORD) on one backend holds the driver's own counts per KPI family;
# the recording replays on every backend with --drain; a program that aborts
# leaves a recording that reads up to its last whole buffer and says it was cut;
# a path that cannot be written stops the driver at its first KPI call.
# EXE: kmbench; RX: the rx_driver example; CRASH: record_crash; TRACES: traces/; WORK: scratch folder.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
include(${CMAKE_CURRENT_LIST_DIR}/../support/e2e.cmake)

# The driver, recorded on slab.
execute_process(COMMAND ${CMAKE_COMMAND} -E env KMBENCH_BACKEND=slab KMBENCH_RECORD=${WORK}/rx.kmr ${RX}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rx_driver under KMBENCH_RECORD: exit ${rc}\n${out}\n${err}")
endif()
string(REGEX MATCHALL "family [^:]+: [0-9]+ allocs, [0-9]+ frees" families "${out}")
list(LENGTH families n_families)
if(n_families LESS 3)
  message(FATAL_ERROR "rx_driver printed ${n_families} families\n${out}")
endif()

# The recording holds the same counts, family by family, and was not cut.
execute_process(COMMAND ${EXE} trace info ${WORK}/rx.kmr --json OUTPUT_VARIABLE info RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "trace info on the recording: exit ${rc}")
endif()
string(JSON cut TYPE "${info}" record_cut)
if(NOT cut STREQUAL "NULL")
  message(FATAL_ERROR "a recording ended by exit() says it was cut:\n${info}")
endif()
string(JSON n_recorded LENGTH "${info}" call_families)
if(NOT n_recorded EQUAL n_families)
  message(FATAL_ERROR "${n_families} families made, ${n_recorded} recorded:\n${out}\n${info}")
endif()
foreach(f IN LISTS families)
  string(REGEX REPLACE "family ([^:]+): ([0-9]+) allocs, ([0-9]+) frees" "\\1;\\2;\\3" parts "${f}")
  list(GET parts 0 name)
  list(GET parts 1 allocs)
  list(GET parts 2 frees)
  set(found FALSE)
  math(EXPR last "${n_recorded} - 1")
  foreach(i RANGE ${last})
    string(JSON rname GET "${info}" call_families ${i} family)
    if(rname STREQUAL name)
      string(JSON ra GET "${info}" call_families ${i} allocs)
      string(JSON rf GET "${info}" call_families ${i} frees)
      if(NOT ra EQUAL allocs OR NOT rf EQUAL frees)
        message(FATAL_ERROR "${name}: the driver made ${allocs} allocs and ${frees} frees, the recording holds ${ra} and ${rf}")
      endif()
      set(found TRUE)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "family ${name} made by the driver is not in the recording:\n${info}")
  endif()
endforeach()
string(JSON ops GET "${info}" ops)
string(FIND "${info}" "KmRxRing::service()" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the recording's call sites are not named:\n${info}")
endif()

# The recording as a .kmt, and the shipped recordings of both example drivers
# (tools/capture/record-examples.sh), replayed on every backend with --drain:
# every op runs (DMA transfers on the buffers they map), nothing is left.
run(0 "kmbench trace" trace import ${WORK}/rx.kmr -o ${WORK}/rx.kmt)
foreach(trace ${WORK}/rx.kmt ${TRACES}/kpi-rx-driver.kmt ${TRACES}/kpi-dma-driver.kmt)
  execute_process(COMMAND ${EXE} trace info ${trace} --json OUTPUT_VARIABLE tinfo)
  string(JSON ops GET "${tinfo}" ops)
  get_filename_component(name ${trace} NAME_WE)
  foreach(b system zones slab buddy jemalloc mimalloc)
    run(0 "on ${b}|accounting      ok" replay ${trace} --backend ${b} --drain --json ${WORK}/${name}.${b}.json)
    file(READ ${WORK}/${name}.${b}.json cell)
    foreach(key events:${ops} failed_allocs:0 final_live_blocks:0 final_live_bytes:0)
      string(REPLACE ":" ";" kv "${key}")
      list(GET kv 0 k)
      list(GET kv 1 want)
      string(JSON got GET "${cell}" ${k})
      if(NOT got EQUAL want)
        message(FATAL_ERROR "replay of ${trace} on ${b}: ${k} is ${got}, expected ${want}")
      endif()
    endforeach()
    string(JSON dropped LENGTH "${cell}" dropped_operations)
    if(NOT dropped EQUAL 0)
      message(FATAL_ERROR "replay of ${trace} on ${b} dropped operations:\n${cell}")
    endif()
  endforeach()
endforeach()

# A program that aborts: its recording reads up to the last whole buffer (2 x 4096 records) and says it was cut.
execute_process(COMMAND ${CMAKE_COMMAND} -E env KMBENCH_RECORD=${WORK}/crash.kmr ${CRASH}
  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(rc EQUAL 0)
  message(FATAL_ERROR "record_crash did not crash")
endif()
run(0 "CUT SHORT at|no end block|calls         IOMalloc=8192" trace info ${WORK}/crash.kmr)
run(0 "kmbench trace" trace import ${WORK}/crash.kmr -o ${WORK}/crash.kmt)
run(0 "record.cut" trace info ${WORK}/crash.kmt --json)

# A path that cannot be written: one line naming it, exit 2, before the driver did anything.
execute_process(COMMAND ${CMAKE_COMMAND} -E env KMBENCH_RECORD=${WORK}/no/such/dir/x.kmr ${RX}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
string(FIND "${err}" "\n" newline)
string(FIND "${err}" "${WORK}/no/such/dir/x.kmr" named)
if(NOT rc EQUAL 2 OR NOT newline EQUAL -1 OR named EQUAL -1 OR NOT out STREQUAL "")
  message(FATAL_ERROR "an unwritable KMBENCH_RECORD: exit ${rc}, stdout '${out}', stderr '${err}'")
endif()
