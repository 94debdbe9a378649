# cmake -DORIG=rules.c.orig -DPORTED=rules.c -P this
# The port must be exactly GFP_KERNEL -> GFP_LOCKABLE at some allocations: replacing every
# GFP_LOCKABLE of the ported file by GFP_KERNEL must give back the original, byte for byte.
file(READ ${ORIG} orig)
file(READ ${PORTED} ported)
string(REGEX MATCHALL "GFP_LOCKABLE" tokens "${ported}")
list(LENGTH tokens count)
if(count EQUAL 0)
  message(FATAL_ERROR "${PORTED} uses no GFP_LOCKABLE: nothing was ported")
endif()
string(REPLACE "GFP_LOCKABLE" "GFP_KERNEL" unported "${ported}")
if(NOT unported STREQUAL orig)
  message(FATAL_ERROR "${PORTED} differs from ${ORIG} by more than GFP_KERNEL -> GFP_LOCKABLE")
endif()
message(STATUS "port = ${count} x GFP_KERNEL -> GFP_LOCKABLE, nothing else")
