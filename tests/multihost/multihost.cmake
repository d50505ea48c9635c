# tests/multihost: dszero across simulated hosts (network namespaces joined
# by a bridge, Open MPI over TCP, daemons started by an rsh agent). Needs
# root; skipped (exit 77) elsewhere. Not in sanitizer builds: it tests the
# network, not memory, and would double its minute.
add_executable(train_dump ${CMAKE_CURRENT_LIST_DIR}/train_dump.c)
target_link_libraries(train_dump PRIVATE dszero MPI::MPI_C)
if(NOT DSZ_SANITIZE)
  foreach(part parity linkfail)
    add_test(NAME multihost_${part}
      COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run.sh $<TARGET_FILE:train_dump> ${part})
    set_tests_properties(multihost_${part} PROPERTIES
      LABELS "mpi;multihost" TIMEOUT 300 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
  endforeach()
endif()
