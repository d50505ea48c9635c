# moe.cmake -- build settings of src/moe (included from src/CMakeLists.txt).
# Dispatch and combine are row copies and row sums over hidden-size vectors:
# -O3 vectorizes them (gcc's -O2 cost model leaves them scalar).
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/moe/dispatch.cpp
  PROPERTIES COMPILE_OPTIONS "-O3")
