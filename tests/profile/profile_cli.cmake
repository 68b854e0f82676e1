# `kmbench trace profile`, `trace diff` and `workload synth` end to end.
# EXE: kmbench; DATA: tests/trace/data; WORK: scratch folder.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

include(${CMAKE_CURRENT_LIST_DIR}/../support/e2e.cmake)

set(capture ${DATA}/ftrace-sample.txt.xz)
set(p ${WORK}/sample.kprof.json)

# A profile of the capture; its stream replays; a synthesis saved and diffed against the capture.
run(0 "14330 allocations|sites hashed" trace profile ${capture} -o ${p})
run(0 "workload synth on slab|accounting      ok" workload synth --profile ${p} --backend slab --threads 2
    --save ${WORK}/synth.kmt --json ${WORK}/synth.json)
run(0 "workload synth on buddy" workload synth --profile ${p} --scale 2 --backend buddy --seed 9
    --json ${WORK}/synth2.json)
file(READ ${WORK}/synth2.json cell)
foreach(n "\"name\": \"synth\"" "\"scale\": \"2\"" "\"seed\": 9")
  string(FIND "${cell}" "${n}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the synth cell's source lacks ${n}")
  endif()
endforeach()
run(0 "size             0.0|matched by kind, cache and most frequent size" trace diff ${capture} ${WORK}/synth.kmt)
run(0 "\"classes_matched_by\": \"id\"|\"class_overlap\": 1" trace diff ${p} ${p} --json)
run(0 "sites merged" trace profile ${capture} -o ${WORK}/merged.kprof.json --no-sites)
run(0 "sites clear" trace profile ${capture} -o ${WORK}/clear.kprof.json --keep-sites)
run(2 "excludes" trace profile ${capture} -o ${WORK}/x.kprof.json --no-sites --keep-sites)

# Bad profiles: exit 2 naming the JSON path; nothing is replayed or written.
file(READ ${p} text)
string(REPLACE "\"version\": 2" "\"version\": 3" v3 "${text}")
file(WRITE ${WORK}/v3.kprof.json "${v3}")
run(2 "v3.kprof.json: $.version: is 3; this build reads versions 1 and 2" workload synth --profile ${WORK}/v3.kprof.json
    --backend slab --save ${WORK}/never.kmt)
if(EXISTS ${WORK}/never.kmt)
  message(FATAL_ERROR "a refused profile left a trace behind")
endif()
string(REGEX REPLACE "\"allocs\": ([0-9]+)" "\"allocs\": -\\1" negative "${text}")
file(WRITE ${WORK}/neg.kprof.json "${negative}")
run(2 "neg.kprof.json: $.allocs: -14330 is negative" trace diff ${WORK}/neg.kprof.json ${p})
run(2 "would need about|is available" workload synth --profile ${p} --scale 1e12 --backend slab)
run(2 "workload synth needs --profile" workload synth --backend slab)
run(2 "--profile is for `kmbench workload synth`" workload nic --profile ${p} --backend slab)

# A matrix with a [[profile]] entry runs it; a bad profile stops the matrix before any cell runs.
file(WRITE ${WORK}/m.toml "name = \"m\"\nbackends = [\"slab\"]\nrepetitions = 1\n[[profile]]\npath = \"sample.kprof.json\"\nparams = { scale = 0.5, seed = 3 }\n")
run(0 "cells: 1 (1 ran, 0 skipped), 0 failed" run ${WORK}/m.toml -o ${WORK}/run)
file(GLOB cells ${WORK}/run/cells/sample.slab.*.json)
if(NOT cells)
  message(FATAL_ERROR "the [[profile]] cell (label sample) wrote no result")
endif()
file(READ ${cells} cell)
foreach(n "\"--scale\"" "\"0.5\"" "\"synth\"")
  string(FIND "${cell}" "${n}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the [[profile]] cell's file lacks ${n}")
  endif()
endforeach()
file(WRITE ${WORK}/bad.toml "name = \"b\"\nbackends = [\"slab\"]\n[[profile]]\npath = \"v3.kprof.json\"\n")
run(2 "bad.toml:4|$.version" run ${WORK}/bad.toml -o ${WORK}/badrun)
file(WRITE ${WORK}/badkey.toml "name = \"b\"\nbackends = [\"slab\"]\n[[profile]]\npath = \"sample.kprof.json\"\nparams = { scale = -1 }\n")
run(2 "scale must be a positive number" run ${WORK}/badkey.toml -o ${WORK}/badrun2)

# JSON nested far deeper than a profile: refused by byte offset, not a stack overflow.
string(REPEAT "[" 100000 open)
string(REPEAT "]" 100000 close)
file(WRITE ${WORK}/deep.kprof.json "{\"source\": ${open}${close}, \"a\": 1, \"b\": 2}")
run(2 "deep.kprof.json: byte 74: not a profile: JSON nested more than 64 deep" trace diff ${WORK}/deep.kprof.json ${p})
run(2 "nested more than 64 deep" workload synth --profile ${WORK}/deep.kprof.json --backend slab)

# --save keeps an existing file when the command is refused (here, its backend).
file(WRITE ${WORK}/kept.kmt "kept\n")
run(2 "unknown backend 'no-such'" workload synth --profile ${p} --backend no-such --save ${WORK}/kept.kmt)
run(2 "unknown backend 'no-such'" workload nic --backend no-such --save ${WORK}/kept.kmt)
file(READ ${WORK}/kept.kmt kept)
if(NOT kept STREQUAL "kept\n")
  message(FATAL_ERROR "a refused workload replaced the --save file")
endif()
file(GLOB temps ${WORK}/kept.kmt.tmp*)
if(temps)
  message(FATAL_ERROR "temporary files left behind: ${temps}")
endif()
run(2 "is the input" workload synth --profile ${p} --backend slab --save ${p})
