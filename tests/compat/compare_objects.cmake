# cmake -DOBJDUMP=... -DOBJCOPY=... -DA=a.o -DB=b.o -DEXPECT=same|different -DTAG=name -P this
# Compares two object files' code and data: every section's contents, relocations,
# disassembly, symbols and section headers, after dropping debug info (whose producer
# string records the -D flags) and the file names.
foreach(obj A B)
  set(stripped ${CMAKE_CURRENT_BINARY_DIR}/${TAG}_${obj}.o)
  execute_process(COMMAND ${OBJCOPY} --strip-debug ${${obj}} ${stripped} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "objcopy failed on ${${obj}}")
  endif()
  execute_process(COMMAND ${OBJDUMP} -h -s -d -r -t ${stripped}
                  OUTPUT_VARIABLE dump_${obj} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "objdump failed on ${${obj}}")
  endif()
  string(REPLACE "${stripped}" "OBJ" dump_${obj} "${dump_${obj}}")
endforeach()
string(LENGTH "${dump_A}" len)
if(len LESS 1000)
  message(FATAL_ERROR "suspiciously short dump (${len} bytes)")
endif()
if(dump_A STREQUAL dump_B)
  set(result same)
else()
  set(result different)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${TAG}_A.txt "${dump_A}")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${TAG}_B.txt "${dump_B}")
endif()
if(NOT result STREQUAL EXPECT)
  message(FATAL_ERROR "objects are ${result}, expected ${EXPECT}:\n  ${A}\n  ${B}\n"
                      "(dumps in ${CMAKE_CURRENT_BINARY_DIR}/${TAG}_[AB].txt)")
endif()
message(STATUS "objects are ${result}, as expected")
