# pipe_mpi_tests.cmake -- pipeline parallelism under mpirun (included from
# tests/CMakeLists.txt when the MPI backend is built): pp=2 on 2 ranks,
# pp=2 x dp=2 and pp=4 on 4 ranks, each against the one-stage run, plus
# the abandoned-batch faults. Seconds each.
add_executable(pipe_parity ${CMAKE_CURRENT_LIST_DIR}/pipe_parity.c)
target_link_libraries(pipe_parity PRIVATE dszero MPI::MPI_C m)
foreach(np 2 4)
  add_test(NAME pipe_parity_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:pipe_parity>)
  set_tests_properties(pipe_parity_np${np} PROPERTIES
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;ASAN_OPTIONS=detect_leaks=0;DSZ_COMM_TIMEOUT=60"
    LABELS "mpi;pipe" TIMEOUT 180 PROCESSORS ${np})
endforeach()
