# comm.cmake -- build settings of src/comm (included from src/CMakeLists.txt).
#
# The MPI backend (src/comm/mpi_*.cpp) compiles to nothing unless MPI is
# found; with it, DSZ_HAVE_MPI is defined for the whole library (dsz_features
# reports DSZ_FEATURE_MPI from it) and for everything that links the static
# archive (the MPI tests and the benchmark call MPI themselves).
find_package(MPI COMPONENTS C)
if(MPI_C_FOUND)
  # Global, so that tests/ and bench/ (other directories) can link it too.
  set_target_properties(MPI::MPI_C PROPERTIES IMPORTED_GLOBAL TRUE)
  target_link_libraries(dszero_obj PUBLIC MPI::MPI_C)
  # OMPI_SKIP_MPICXX: mpi.h from C++ must not drag in the deprecated C++ bindings.
  target_compile_definitions(dszero_obj PUBLIC DSZ_HAVE_MPI=1 OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  target_link_libraries(dszero PRIVATE MPI::MPI_C)
  message(STATUS "dszero: MPI backend enabled (${MPI_C_LIBRARIES})")
else()
  message(STATUS "dszero: MPI not found, building without the MPI backend")
endif()
# The rank-order reduction loops are the hot path of every reduction.
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/comm/reduce.cpp
  PROPERTIES COMPILE_OPTIONS "-O3")
