# `kmbench trace` end to end. EXE: kmbench; DATA: tests/trace/data; WORK: scratch folder.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

include(${CMAKE_CURRENT_LIST_DIR}/../support/e2e.cmake)

function(must_exist path)
  if(NOT EXISTS ${path})
    message(FATAL_ERROR "${path} was not written")
  endif()
endfunction()

function(must_not_exist path)
  if(EXISTS ${path})
    message(FATAL_ERROR "${path} was left behind")
  endif()
  file(GLOB temps ${path}.tmp*)
  if(temps)
    message(FATAL_ERROR "temporary files left behind: ${temps}")
  endif()
endfunction()

# Import (compressed input read directly), then info on the .kmt and on the raw capture agree.
run(0 "19249 ops" trace import ${DATA}/ftrace-sample.txt.xz -o ${WORK}/s.kmt)
must_exist(${WORK}/s.kmt)
run(0 "\"events\": 19999|\"null_frees\": 688|\"peak_live_bytes\": 25398328" trace info ${WORK}/s.kmt --json)
run(0 "\"events\": 19999|\"unmatched_frees\": 62" trace info ${DATA}/ftrace-sample.txt.xz --json)
run(0 "top call sites|alloc_buffer_head|peak live" trace info ${WORK}/s.kmt)

# Dump and undump give back the same bytes.
run(0 "" trace dump ${WORK}/s.kmt -o ${WORK}/s.txt)
run(0 "" trace undump ${WORK}/s.txt -o ${WORK}/s2.kmt)
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/s.kmt ${WORK}/s2.kmt RESULT_VARIABLE same)
if(NOT same EQUAL 0)
  message(FATAL_ERROR "dump/undump round trip changed the .kmt")
endif()

# Standard input, and an explicit format.
execute_process(COMMAND ${EXE} trace import - -o ${WORK}/stdin.kmt --format ftrace -q
                INPUT_FILE ${DATA}/imperfect.ftrace RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "import from stdin: exit ${rc}: ${err}")
endif()
run(0 "\"pointer_reuse\": 1|\"lost_events\": 17" trace info ${WORK}/stdin.kmt --json)
run(0 "\"dma_events\": 4" trace info ${DATA}/sample.dtrace --json)
run(0 "\"events\": 905" trace info ${DATA}/small-trace.dat --json --format tracedat)

# Bad input: file and line, exit 2, no output left unless --keep-partial.
file(WRITE ${WORK}/bad.txt "   bash-1 [000] .....   1.000001: kfree: call_site=a+0x1/0x2 ptr=00000000000000aa\nnot a trace line\n")
run(2 "bad.txt:2:" trace import ${WORK}/bad.txt -o ${WORK}/bad.kmt)
must_not_exist(${WORK}/bad.kmt)
run(2 "bad.txt:2:|partial trace kept" trace import ${WORK}/bad.txt -o ${WORK}/bad.kmt --keep-partial)
must_exist(${WORK}/bad.kmt)
# A damaged trace.dat (libtracecmd 3.1.6 frees a buffer twice reading it): bad input, and kmbench lives.
run(2 "damaged-trace.dat: not a readable trace-cmd trace.dat: its header is cut short" trace import ${DATA}/damaged-trace.dat -o ${WORK}/damaged.kmt)
must_not_exist(${WORK}/damaged.kmt)
run(2 "unknown trace format" trace import ${WORK}/bad.txt -o ${WORK}/x.kmt --format nope)
run(2 "cannot open" trace info ${WORK}/missing.kmt)

# A truncated .kmt: byte offset, exit 2.
execute_process(COMMAND head -c 5000 ${WORK}/s.kmt OUTPUT_FILE ${WORK}/cut.kmt)
run(2 "cut.kmt: byte offset 5000: truncated" trace info ${WORK}/cut.kmt)
run(2 "cut.kmt: byte offset" trace dump ${WORK}/cut.kmt)

# An output that is the input is refused; the capture stays as it was.
file(COPY ${DATA}/imperfect.ftrace DESTINATION ${WORK}/same)
file(SHA256 ${WORK}/same/imperfect.ftrace before)
run(2 "is the input" trace import ${WORK}/same/imperfect.ftrace -o ${WORK}/same/imperfect.ftrace)
run(2 "is the input" trace dump ${WORK}/s.kmt -o ${WORK}/same/../s.kmt)
file(SHA256 ${WORK}/same/imperfect.ftrace after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "an import over its own input changed the capture")
endif()

# An output through a symbolic link replaces the file it names; the link stays.
file(WRITE ${WORK}/named.txt "old\n")
file(CREATE_LINK named.txt ${WORK}/link.txt SYMBOLIC)
run(0 "" trace dump ${WORK}/s.kmt -o ${WORK}/link.txt)
if(NOT IS_SYMLINK ${WORK}/link.txt)
  message(FATAL_ERROR "writing through a link replaced the link")
endif()
file(READ ${WORK}/named.txt head LIMIT 64)
string(FIND "${head}" "kmt-text" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "writing through a link left its file as it was: '${head}'")
endif()

# Standard output that takes nothing (a full disk): the command fails.
if(EXISTS /dev/full)
  run_io("" /dev/full 1 "a write to standard output failed" trace dump ${WORK}/s.kmt)
endif()

# `trace diff -` reads standard input whole, as the file itself.
run_io(${DATA}/imperfect.ftrace "" 0 "allocations, B/A       1.000|class overlap          1.000"
       trace diff - ${DATA}/imperfect.ftrace)

# Values past what a trace can hold are refused by file and line, not wrapped or taken.
set(event "kmalloc: call_site=a ptr=1 bytes_req=8 bytes_alloc=16 gfp_flags=GFP_KERNEL node=-1 accounted=true")
file(WRITE ${WORK}/late.txt "   bash-1 [001] ..... 18446744072.999999999: ${event}\n   bash-1 [001] ..... 18446744073.000000: ${event}\n")
run(2 "late.txt:2: timestamp 18446744073.000000 is beyond 18446744072 s" trace import ${WORK}/late.txt -o ${WORK}/late.kmt)
file(WRITE ${WORK}/cpus.txt "#P:4294967297\n   bash-1 [001] ..... 1.000000: ${event}\n")
run(2 "cpus.txt:1: #P gives 4294967297 CPUs (the most is 65536)" trace import ${WORK}/cpus.txt -o ${WORK}/cpus.kmt)
file(WRITE ${WORK}/cpu.txt "   bash-1 [70000] ..... 1.000000: ${event}\n")
run(2 "cpu.txt:1: absurd cpu number 70000" trace import ${WORK}/cpu.txt -o ${WORK}/cpu.kmt)
file(WRITE ${WORK}/page.txt "kmt-text 1\nsource \"x\"\ncapture_tool \"y\"\npage_size 3\nobject_count 1\nstream 0\n0 alloc 0 64\nend\n")
run(2 "page.txt:4: page size 3 is not a power of two" trace undump ${WORK}/page.txt -o ${WORK}/page.kmt)

# -o /dev/stdout (a link to a pipe here) is written into, as standard output.
if(EXISTS /dev/stdout)
  run(0 "kmt-text 1|stream 0" trace dump ${WORK}/s.kmt -o /dev/stdout)
endif()

# A window of NaN seconds was ignored; an object_count given twice took the second.
run(2 "--from nan is not a time in seconds" trace info ${WORK}/s.kmt --from nan)
file(WRITE ${WORK}/twice.txt "kmt-text 1\nobject_count 10\nstream 0\n0 alloc 9 64\nobject_count 1\nend\n")
run(2 "twice.txt:5: object_count given again (first at line 2)" trace undump ${WORK}/twice.txt -o ${WORK}/twice.kmt)
# A replay names the trace whose operation it cannot take.
file(WRITE ${WORK}/huge.txt "kmt-text 1\nobject_count 1\nstream 0\n0 alloc 0 2000000000000\nend\n")
run(0 "" trace undump ${WORK}/huge.txt -o ${WORK}/huge.kmt)
run(2 "huge.kmt: stream 0 operation 0: size 2000000000000 is beyond the largest a replay takes" replay ${WORK}/huge.kmt --backend slab)
