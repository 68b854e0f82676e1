# Worker executables: one per third-party allocator that owns malloc when
# linked (DESIGN: one such allocator per process). kmbench-<w> is kmbench
# with that allocator's backends added to InProcessBackends
# (allocators/all_backends.h checks KMBENCH_WORKER_<W>).
#
# Code that depends on InProcessBackends (the registry, and anything that
# calls with_backend or open_backend) is compiled once per worker:
#   kmbench_worker_library(<target> [WORKER_SOURCES <source>...])
# makes <target>_<w> for every worker, linking the <w> copy of each library
# that has one and the worker's backend library. Its WORKER_SOURCES (the
# sources whose preprocessed text depends on the backend list) are compiled
# again with KMBENCH_WORKER_<W>; the rest are compiled once, into the object
# library <target>_common that <target> and every copy share. ctest
# `style.worker_sources` checks that no shared source reaches the list. Call it
# once <target> is complete, after the libraries it links. Code that does not
# depend on the list (a backend's own sources) belongs in kmbench_backends.
set(KMBENCH_WORKERS jemalloc mimalloc)
set(KMBENCH_WORKER_jemalloc_BACKEND kmbench_jemalloc)
set(KMBENCH_WORKER_mimalloc_BACKEND kmbench_mimalloc)

function(_kmbench_worker_map out worker)
  set(mapped "")
  foreach(item IN LISTS ARGN)
    if(item MATCHES "^\\$<LINK_ONLY:(.+)>$")
      set(inner ${CMAKE_MATCH_1})
      if(TARGET ${inner}_${worker})
        set(inner ${inner}_${worker})
      endif()
      list(APPEND mapped "$<LINK_ONLY:${inner}>")
    elseif(TARGET ${item}_${worker})
      list(APPEND mapped ${item}_${worker})
    elseif(TARGET ${item})
      # A library that links a per-worker library must be copied itself, first.
      get_target_property(deps ${item} INTERFACE_LINK_LIBRARIES)
      foreach(dep IN LISTS deps)
        string(REGEX REPLACE "^\\$<LINK_ONLY:(.+)>$" "\\1" dep "${dep}")
        if(TARGET ${dep}_${worker})
          message(FATAL_ERROR "${item} links ${dep}, which has a copy per worker: "
                              "call kmbench_worker_library(${item}) before copying what links it")
        endif()
      endforeach()
      list(APPEND mapped ${item})
    else()
      list(APPEND mapped ${item})
    endif()
  endforeach()
  set(${out} "${mapped}" PARENT_SCOPE)
endfunction()

function(kmbench_worker_library target)
  cmake_parse_arguments(W "" "" "WORKER_SOURCES" ${ARGN})
  get_target_property(dir ${target} SOURCE_DIR)
  get_target_property(type ${target} TYPE)
  get_target_property(sources ${target} SOURCES)
  if(NOT type STREQUAL "STATIC_LIBRARY")
    message(FATAL_ERROR "kmbench_worker_library: ${target} is a ${type}, not a static library")
  endif()
  set(all_sources "")
  foreach(s IN LISTS sources)
    cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY ${dir} OUTPUT_VARIABLE a)
    list(APPEND all_sources ${a})
  endforeach()
  set(worker_sources "")
  foreach(s IN LISTS W_WORKER_SOURCES)
    cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY ${dir} OUTPUT_VARIABLE a)
    if(NOT a IN_LIST all_sources)
      message(FATAL_ERROR "kmbench_worker_library(${target}): ${s} is not one of its sources")
    endif()
    list(APPEND worker_sources ${a})
  endforeach()
  set(common_sources ${all_sources})
  if(worker_sources)
    list(REMOVE_ITEM common_sources ${worker_sources})
  endif()
  foreach(prop LINK_LIBRARIES INTERFACE_LINK_LIBRARIES INCLUDE_DIRECTORIES
               INTERFACE_INCLUDE_DIRECTORIES COMPILE_DEFINITIONS INTERFACE_COMPILE_DEFINITIONS)
    get_target_property(${prop} ${target} ${prop})
    if(NOT ${prop})
      set(${prop} "")
    endif()
  endforeach()
  set(objects "")
  if(common_sources)
    # Compiled once, with the target's own flags and its libraries' usage
    # requirements; only its objects are used, so it links nothing itself.
    add_library(${target}_common OBJECT ${common_sources})
    target_include_directories(${target}_common PRIVATE ${INCLUDE_DIRECTORIES})
    target_compile_definitions(${target}_common PRIVATE ${COMPILE_DEFINITIONS})
    target_link_libraries(${target}_common PRIVATE ${LINK_LIBRARIES})
    set(objects $<TARGET_OBJECTS:${target}_common>)
    set_property(TARGET ${target} PROPERTY SOURCES ${worker_sources} ${objects})
    set_property(GLOBAL APPEND PROPERTY KMBENCH_WORKER_COMMON_SOURCES ${common_sources})
  endif()
  foreach(worker IN LISTS KMBENCH_WORKERS)
    string(TOUPPER ${worker} upper)
    set(copy ${target}_${worker})
    add_library(${copy} STATIC ${worker_sources} ${objects})
    _kmbench_worker_map(private_libs ${worker} ${LINK_LIBRARIES})
    _kmbench_worker_map(public_libs ${worker} ${INTERFACE_LINK_LIBRARIES})
    target_link_libraries(${copy} PRIVATE ${private_libs})
    set_property(TARGET ${copy} APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${public_libs})
    target_link_libraries(${copy} PUBLIC ${KMBENCH_WORKER_${worker}_BACKEND})
    target_include_directories(${copy} PRIVATE ${INCLUDE_DIRECTORIES})
    set_property(TARGET ${copy} APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES
                 ${INTERFACE_INCLUDE_DIRECTORIES})
    target_compile_definitions(${copy} PRIVATE ${COMPILE_DEFINITIONS})
    target_compile_definitions(${copy} PUBLIC ${INTERFACE_COMPILE_DEFINITIONS}
                               KMBENCH_WORKER_${upper})
  endforeach()
endfunction()
