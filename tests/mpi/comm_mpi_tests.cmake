# comm_mpi_tests.cmake -- src/comm's multi-process tests (included from
# tests/CMakeLists.txt when the MPI backend is built). Every run is bounded:
# CTest's TIMEOUT, and run_fault.sh's own `timeout` around mpirun.
set(DSZ_MPI_TEST_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_rmaps_base_oversubscribe=1
  ASAN_OPTIONS=detect_leaks=0      # Open MPI's own leaks are not ours
  DSZ_COMM_TIMEOUT=120)            # a broken test fails in 2 min, not 5

foreach(np 2 4)
  add_test(NAME test_comm_mpi_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:test_comm_mpi>)
  set_tests_properties(test_comm_mpi_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "unit;mpi" TIMEOUT 300 PROCESSORS ${np})
endforeach()

add_executable(comm_host_comm ${CMAKE_CURRENT_SOURCE_DIR}/mpi/comm_host_comm.cpp)
target_link_libraries(comm_host_comm PRIVATE dszero_static MPI::MPI_C)
foreach(np 2 4)
  add_test(NAME comm_host_comm_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:comm_host_comm>)
  set_tests_properties(comm_host_comm_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "unit;mpi" TIMEOUT 120 PROCESSORS ${np})
endforeach()

add_executable(comm_fault ${CMAKE_CURRENT_SOURCE_DIR}/mpi/comm_fault.cpp)
target_link_libraries(comm_fault PRIVATE dszero_static)
# mode, ranks, expected output (ours, or mpirun reporting the dead rank)
set(DSZ_FAULT_CASES
  "late|2|EXPECTED 12: rank 0: all_reduce #3"
  "late|4|EXPECTED 12: rank [0-2]: all_reduce #3"
  "diverge|2|EXPECTED 12: rank 0: .*has sent data for broadcast #3 instead"
  "size|2|EXPECTED 11: rank [01]: all_reduce #3"
  "exit|2|EXPECTED 12|exited|terminated|aborted|killed"
  "exit|4|EXPECTED 12|exited|terminated|aborted|killed"
  "quit|2|EXPECTED 12|exited|terminated|aborted|killed")
foreach(case ${DSZ_FAULT_CASES})
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 mode)
  list(GET parts 1 np)
  list(SUBLIST parts 2 -1 rest)
  string(REPLACE ";" "|" regex "${rest}")
  add_test(NAME comm_fault_${mode}_np${np}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run_fault.sh ${MPIEXEC_EXECUTABLE} ${np}
            $<TARGET_FILE:comm_fault> ${mode} 60 "${regex}")
  set_tests_properties(comm_fault_${mode}_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "unit;mpi;fault" TIMEOUT 90 PROCESSORS ${np})
endforeach()

# ZeRO stages 0-3 across ranks (tests/mpi/zero_parity.c): parity, one-rank
# agreement, global overflow skip, checkpoint resume.
add_executable(zero_parity ${CMAKE_CURRENT_SOURCE_DIR}/mpi/zero_parity.c)
target_link_libraries(zero_parity PRIVATE dszero MPI::MPI_C m)
foreach(np 1 2 4)
  add_test(NAME zero_parity_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:zero_parity>)
  set_tests_properties(zero_parity_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;zero" TIMEOUT 300 PROCESSORS ${np})
endforeach()

# ZeRO stage 3's gather/release lifetimes, prefetch and divergence (tests/mpi/zero_stage3.c);
# 3 ranks give partitions that split parameters unevenly.
add_executable(zero_stage3 ${CMAKE_CURRENT_SOURCE_DIR}/mpi/zero_stage3.c)
target_link_libraries(zero_stage3 PRIVATE dszero MPI::MPI_C)
foreach(np 1 2 3)
  add_test(NAME zero_stage3_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:zero_stage3>)
  set_tests_properties(zero_stage3_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV};DSZ_COMM_TIMEOUT=30" LABELS "mpi;zero" TIMEOUT 120 PROCESSORS ${np})
endforeach()

# The C example trains under mpirun too (fp16 stage 2 with small buckets, bf16 stages 1 and 3).
add_test(NAME example_train_mlp_zero2_np2
  COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none $<TARGET_FILE:train_mlp>
          ${PROJECT_SOURCE_DIR}/examples/configs/mlp_fp16_zero2.json 200)
add_test(NAME example_train_mlp_bf16_zero1_np2
  COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none $<TARGET_FILE:train_mlp>
          ${PROJECT_SOURCE_DIR}/examples/configs/mlp_bf16.json 200)
add_test(NAME example_train_mlp_bf16_zero3_np2
  COMMAND ${MPIEXEC_EXECUTABLE} -np 2 --bind-to none $<TARGET_FILE:train_mlp>
          ${PROJECT_SOURCE_DIR}/examples/configs/mlp_bf16_zero3.json 200)
set_tests_properties(example_train_mlp_zero2_np2 example_train_mlp_bf16_zero1_np2 example_train_mlp_bf16_zero3_np2 PROPERTIES
  ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;example" TIMEOUT 300 PROCESSORS 2)

# A rank that stalls or dies in the middle of a training step: the others'
# dsz_step ends with the timeout error naming the collective (or mpirun ends
# the job); never a hang.
add_executable(zero_fault ${CMAKE_CURRENT_SOURCE_DIR}/mpi/zero_fault.c)
target_link_libraries(zero_fault PRIVATE dszero MPI::MPI_C)
foreach(case "late|EXPECTED 12: rank 0: .*reduce_scatter" "exit|EXPECTED 12|exited|terminated|aborted|killed"
             "lategroup|EXPECTED rank 0: memory intact")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 mode)
  list(SUBLIST parts 1 -1 rest)
  string(REPLACE ";" "|" regex "${rest}")
  add_test(NAME zero_fault_${mode}_np2
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run_fault.sh ${MPIEXEC_EXECUTABLE} 2
            $<TARGET_FILE:zero_fault> ${mode} 60 "${regex}")
  set_tests_properties(zero_fault_${mode}_np2 PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV};DSZ_COMM_TIMEOUT=10" LABELS "mpi;fault" TIMEOUT 90 PROCESSORS 2)
endforeach()

# ---- moe (owned by src/moe): expert parallelism gives the ep_size-1 results ----
add_executable(moe_parity ${CMAKE_CURRENT_SOURCE_DIR}/mpi/moe_parity.c)
target_link_libraries(moe_parity PRIVATE dszero MPI::MPI_C m)
foreach(np 2 4)
  add_test(NAME moe_parity_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:moe_parity>)
  set_tests_properties(moe_parity_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;moe" TIMEOUT 120 PROCESSORS ${np})
endforeach()
# Gradients reduced in communication_data_type (default: the model dtype),
# with gradient_predivide_factor, at every stage.
add_executable(comm_dtype ${CMAKE_CURRENT_SOURCE_DIR}/mpi/comm_dtype.c)
target_link_libraries(comm_dtype PRIVATE dszero MPI::MPI_C)
foreach(np 2 3)
  add_test(NAME comm_dtype_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:comm_dtype>)
  set_tests_properties(comm_dtype_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;zero" TIMEOUT 120 PROCESSORS ${np})
endforeach()
# Expert parameters in the engine (DSZ_GROUP_EXPERT): training with ep_size
# 1, 2 (and 4) agrees at every ZeRO stage; checkpoints reshard across ep_size.
add_executable(moe_train ${CMAKE_CURRENT_SOURCE_DIR}/mpi/moe_train.c)
target_link_libraries(moe_train PRIVATE dszero MPI::MPI_C m)
foreach(np 2 4)
  add_test(NAME moe_train_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:moe_train>)
  set_tests_properties(moe_train_np${np} PROPERTIES
    ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;moe" TIMEOUT 300 PROCESSORS ${np})
endforeach()
# ---- end moe ----
# ---- nvme (owned by the NVMe offload work): swapped optimizer states across ranks ----
add_executable(nvme_ranks ${CMAKE_CURRENT_SOURCE_DIR}/mpi/nvme_ranks.c)
target_link_libraries(nvme_ranks PRIVATE dszero MPI::MPI_C)
if(DSZ_AIO_LIBRARY AND DSZ_WITH_AIO)
  foreach(np 2 3)
    add_test(NAME nvme_ranks_np${np}
      COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} --bind-to none $<TARGET_FILE:nvme_ranks>)
    set_tests_properties(nvme_ranks_np${np} PROPERTIES
      ENVIRONMENT "${DSZ_MPI_TEST_ENV}" LABELS "mpi;nvme" TIMEOUT 120 PROCESSORS ${np})
  endforeach()
endif()
# ---- end nvme ----
