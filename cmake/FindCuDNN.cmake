# Finds cuDNN 9 and defines the imported target rescnn::cudnn.
#
# Looks beside the CUDA toolkit first (/usr/local/cuda), then in CUDNN_ROOT
# (or $ENV{CUDNN_ROOT}): pip's nvidia-cudnn package, for example, is laid out
# as <root>/include/cudnn.h and <root>/lib/libcudnn.so.9.
if(TARGET rescnn::cudnn)
  return()
endif()
set(_rescnn_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
find_path(RESCNN_CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${_rescnn_cudnn_hints} ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include)
find_library(RESCNN_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
  HINTS ${_rescnn_cudnn_hints} ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib64 lib)
if(NOT RESCNN_CUDNN_INCLUDE_DIR OR NOT RESCNN_CUDNN_LIBRARY)
  message(FATAL_ERROR "rescnn: cuDNN not found (looked for cudnn.h and libcudnn beside the CUDA toolkit and in "
                      "CUDNN_ROOT='${CUDNN_ROOT}'); set CUDNN_ROOT to the directory that holds include/cudnn.h")
endif()
# An imported target: an export that links it names it as it is, and the
# installed package config recreates it with this file.
add_library(rescnn::cudnn INTERFACE IMPORTED)
set_target_properties(rescnn::cudnn PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${RESCNN_CUDNN_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${RESCNN_CUDNN_LIBRARY}")
message(STATUS "rescnn: cuDNN ${RESCNN_CUDNN_LIBRARY}")
