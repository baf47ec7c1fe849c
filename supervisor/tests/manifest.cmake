# supervisor-manifest's unit tests (manifest.c, graph.c), owned by supervisor-manifest.
#
# supervisor-runtime: please keep this line in supervisor/CMakeLists.txt (after the library below,
# or let this file define it):
#     include(${CMAKE_CURRENT_SOURCE_DIR}/tests/manifest.cmake)
#
# xtsupervisor_manifest: the parser as a static library (manifest.c graph.c). Defined here unless
# supervisor/CMakeLists.txt already defines it, so either order works.
if(NOT TARGET xtsupervisor_manifest)
  add_library(xtsupervisor_manifest STATIC ${CMAKE_CURRENT_LIST_DIR}/../manifest.c
                                           ${CMAKE_CURRENT_LIST_DIR}/../graph.c)
  target_include_directories(xtsupervisor_manifest PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
  target_link_libraries(xtsupervisor_manifest PUBLIC xtcommon PkgConfig::YAML PkgConfig::OPENSSL)
endif()

if(XT_BUILD_TESTS)
  foreach(t test_manifest test_manifest_graph test_manifest_secrets test_manifest_files)
    if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${t}.c)
      xt_add_unit_test(${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS xtsupervisor_manifest)
    endif()
  endforeach()
endif()
