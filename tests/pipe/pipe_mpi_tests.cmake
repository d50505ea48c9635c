# pipe_mpi_tests.cmake -- pipeline parallelism under mpirun (included from
# tests/CMakeLists.txt when the MPI backend is built): pp=2 on 2 ranks,
# pp=2 x dp=2 and pp=4 on 4 ranks, each against the one-stage run, plus
# the abandoned-batch faults. Seconds each.
add_executable(pipe_parity ${CMAKE_CURRENT_LIST_DIR}/pipe_parity.c)
target_link_libraries(pipe_parity PRIVATE dszero MPI::MPI_C m)
dsz_mpi_test(pipe_parity RANKS 2 4 LABELS mpi pipe TIMEOUT 180 ENV DSZ_COMM_TIMEOUT=60)
