# SPDX-License-Identifier: Apache-2.0
#
# The parts of Cloister by trust boundary (docs/architecture.md), and the rule
# that a part links only downward. Each part's library or program is declared
# with cl_library() / cl_program(); cl_check_parts() at the end of the top-level
# CMakeLists.txt walks every declared target's links and stops the configure
# step when one reaches a part it may not use. scripts/check-deps checks the
# same table against the symbols of the built objects.
#
#   part            may use                       runs
#   core            (Debian libraries only)      everywhere
#   guest/runtime   core                          inside an enclave (and in the cli)
#   guest/train     core guest/runtime            inside an enclave (and in the cli)
#   guest/infer     core guest/runtime            inside an enclave: cloister-infer
#   guest/api       core                          inside an enclave: cloister-api
#   host            core                          the operator's host
#   kms             core                          a key owner's server: cloister-kms
#   cli             core host guest/runtime guest/train   users' machines: cloister
set(CL_PART_USES_core "")
set(CL_PART_USES_guest/runtime "core")
set(CL_PART_USES_guest/train "core;guest/runtime")
set(CL_PART_USES_guest/infer "core;guest/runtime")
set(CL_PART_USES_guest/api "core")
set(CL_PART_USES_host "core")
set(CL_PART_USES_kms "core")
set(CL_PART_USES_cli "core;host;guest/runtime;guest/train")

set_property(GLOBAL PROPERTY CL_PART_TARGETS "")

# The guest flavour is other code only in sanitized (ASan, TSan) or fuzzing builds, or with a
# compiler other than gcc (whose -fopenmp would bring a second OpenMP runtime into
# an enclave: see src/guest/runtime/CMakeLists.txt).
if(CLOISTER_SANITIZE OR CLOISTER_TSAN OR CLOISTER_FUZZ OR NOT CMAKE_C_COMPILER_ID STREQUAL "GNU")
  set(CL_GUEST_FLAVOUR_DIFFERS ON)
else()
  set(CL_GUEST_FLAVOUR_DIFFERS OFF)
endif()

function(_cl_register target part)
  if(NOT DEFINED CL_PART_USES_${part})
    message(FATAL_ERROR "cl_library/cl_program: ${target}: unknown part '${part}' (cmake/parts.cmake lists the parts)")
  endif()
  set_property(TARGET ${target} PROPERTY CL_PART ${part})
  set_property(GLOBAL APPEND PROPERTY CL_PART_TARGETS ${target})
endfunction()

# Programs and libraries that run inside an enclave are built without sanitizers:
# the enclave runs under RLIMIT_AS and seccomp, where sanitizer runtimes cannot work
# (ASan reserves terabytes of shadow memory and reads /proc). A GUEST library
# therefore has a second flavour, <name>_guest, compiled with -fno-sanitize=all;
# when the two would be the same code (CL_GUEST_FLAVOUR_DIFFERS off) <name>_guest
# is simply <name>.
#
# cl_library(NAME PART part [GUEST] SOURCES ... [PUBLIC ...] [PRIVATE ...]
#            [GUEST_PRIVATE ...])
#   PUBLIC/PRIVATE: link items. A part library named in them is replaced by its
#   _guest flavour in the guest flavour. GUEST_PRIVATE: link items of the guest
#   flavour only (used instead of PRIVATE's items of the same name).
function(cl_library name)
  cmake_parse_arguments(A "GUEST" "PART" "SOURCES;PUBLIC;PRIVATE;GUEST_PRIVATE;COMPILE_DEFINITIONS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  _cl_register(${name} ${A_PART})
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${A_PUBLIC} PRIVATE ${A_PRIVATE})
  if(A_COMPILE_DEFINITIONS)
    target_compile_definitions(${name} PRIVATE ${A_COMPILE_DEFINITIONS})
  endif()
  if(NOT A_GUEST)
    return()
  endif()
  if(NOT CL_GUEST_FLAVOUR_DIFFERS)
    add_library(${name}_guest ALIAS ${name})
    return()
  endif()
  set(pub "")
  foreach(item IN LISTS A_PUBLIC)
    if(TARGET ${item}_guest)
      list(APPEND pub ${item}_guest)
    else()
      list(APPEND pub ${item})
    endif()
  endforeach()
  set(priv "")
  foreach(item IN LISTS A_PRIVATE)
    if(TARGET ${item}_guest)
      list(APPEND priv ${item}_guest)
    else()
      list(APPEND priv ${item})
    endif()
  endforeach()
  add_library(${name}_guest STATIC ${A_SOURCES})
  _cl_register(${name}_guest ${A_PART})
  target_include_directories(${name}_guest PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                             PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(${name}_guest PRIVATE -fno-sanitize=all)
  target_link_libraries(${name}_guest PUBLIC ${pub} PRIVATE ${priv} ${A_GUEST_PRIVATE})
  if(A_COMPILE_DEFINITIONS)
    target_compile_definitions(${name}_guest PRIVATE ${A_COMPILE_DEFINITIONS})
  endif()
endfunction()

# The linker map of a guest program, build/link-maps/NAME.map: which of our object files
# (and which static archives' members) the link pulled in. scripts/tcb counts the lines
# of our sources in each enclave's trusted computing base from it (docs/threat-model.md).
set(CL_LINK_MAP_DIR ${PROJECT_BINARY_DIR}/link-maps)
file(MAKE_DIRECTORY ${CL_LINK_MAP_DIR})
function(cl_guest_link_map name)
  target_link_options(${name} PRIVATE -Wl,-Map=${CL_LINK_MAP_DIR}/${name}.map)
  set_property(TARGET ${name} APPEND PROPERTY ADDITIONAL_CLEAN_FILES ${CL_LINK_MAP_DIR}/${name}.map)
endfunction()

# cl_program(NAME PART part [GUEST] SOURCES ... LINKS ...)
#   A program of a part, written to bin/. GUEST: it runs inside an enclave: no
#   sanitizers, the _guest flavour of every part library it names, and
#   --as-needed so that its image packs only the shared libraries it uses.
function(cl_program name)
  cmake_parse_arguments(A "GUEST" "PART;OUTPUT_NAME" "SOURCES;LINKS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  _cl_register(${name} ${A_PART})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
  if(A_OUTPUT_NAME)
    set_target_properties(${name} PROPERTIES OUTPUT_NAME ${A_OUTPUT_NAME})
  endif()
  if(A_GUEST)
    set(links "")
    foreach(item IN LISTS A_LINKS)
      if(TARGET ${item}_guest)
        list(APPEND links ${item}_guest)
      else()
        list(APPEND links ${item})
      endif()
    endforeach()
    target_compile_options(${name} PRIVATE -fno-sanitize=all)
    target_link_options(${name} PRIVATE -fno-sanitize=all -Wl,--as-needed)
    target_link_libraries(${name} PRIVATE ${links})
    cl_guest_link_map(${name})
  else()
    target_link_libraries(${name} PRIVATE ${A_LINKS})
  endif()
endfunction()

# Stops the configure step if a part links a part above it (or beside it).
function(cl_check_parts)
  get_property(targets GLOBAL PROPERTY CL_PART_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(part ${t} CL_PART)
    get_target_property(links ${t} LINK_LIBRARIES)
    get_target_property(ilinks ${t} INTERFACE_LINK_LIBRARIES)
    foreach(l IN LISTS links ilinks)
      if(NOT l OR NOT TARGET ${l})
        continue()
      endif()
      get_target_property(aliased ${l} ALIASED_TARGET)
      if(aliased)
        set(l ${aliased})
      endif()
      get_target_property(lpart ${l} CL_PART)
      if(NOT lpart OR lpart STREQUAL part)
        continue()
      endif()
      if(NOT lpart IN_LIST CL_PART_USES_${part})
        message(FATAL_ERROR "upward link: ${t} (part ${part}) links ${l} (part ${lpart}); "
                            "${part} may use only: ${CL_PART_USES_${part}} (cmake/parts.cmake, docs/architecture.md)")
      endif()
    endforeach()
  endforeach()
endfunction()
