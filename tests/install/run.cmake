# ctest's install_examples: installs the dev component of BUILD_DIR into a fresh prefix, checks
# the installed headers, then configures and builds tests/install against that prefix only.
#   cmake -DBUILD_DIR=<build> -DWORK_DIR=<scratch> -DPROJECT_DIR=<tests/install>
#         [-DCONFIG=Release] [-DCXX_COMPILER=g++] -P run.cmake
foreach(var BUILD_DIR WORK_DIR PROJECT_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()

set(prefix ${WORK_DIR}/prefix)
set(outside ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})

execute_process(
  COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component dev --config ${CONFIG}
  COMMAND_ERROR_IS_FATAL ANY)

# Installed headers use Boost.JSON/Boost.System and each other only: no src/, no Asio/Beast.
file(GLOB_RECURSE headers ${prefix}/include/*)
if(NOT headers)
  message(FATAL_ERROR "no headers were installed under ${prefix}/include")
endif()
set(bad)
foreach(header ${headers})
  file(STRINGS ${header} includes REGEX "^[ \t]*#[ \t]*include")
  foreach(line ${includes})
    if(line MATCHES "boost/(asio|beast)" OR
       (line MATCHES "\"" AND NOT line MATCHES "\"boundary/realtime/"))
      list(APPEND bad "${header}: ${line}")
    endif()
  endforeach()
endforeach()
if(bad)
  list(JOIN bad "\n  " bad)
  message(FATAL_ERROR "installed headers include what is not installed or not allowed:\n  ${bad}")
endif()
# Only the dev component's files: libraries, headers, the CMake package.
file(GLOB_RECURSE binaries ${prefix}/bin/*)
if(binaries)
  message(FATAL_ERROR "the dev component installed programs: ${binaries}")
endif()

set(compiler_arg)
if(CXX_COMPILER)
  set(compiler_arg -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${PROJECT_DIR} -B ${outside}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${CONFIG} ${compiler_arg}
  COMMAND_ERROR_IS_FATAL ANY)
execute_process(
  COMMAND ${CMAKE_COMMAND} --build ${outside} --config ${CONFIG} -j 2
  COMMAND_ERROR_IS_FATAL ANY)
message(STATUS "the examples built against ${prefix}")
