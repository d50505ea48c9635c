# comm.cmake -- the communication benchmark (include()d from bench/CMakeLists.txt).
# Needs the MPI backend: it compares dszero's collectives with raw MPI ones.
if(TARGET MPI::MPI_C)
  add_executable(bench_comm ${CMAKE_CURRENT_LIST_DIR}/bench_comm.cpp)
  target_link_libraries(bench_comm PRIVATE dszero_static MPI::MPI_C)
endif()
