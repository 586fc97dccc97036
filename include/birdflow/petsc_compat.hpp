// Small compatibility layer over PETSc 3.18 (Debian 12), so code can use newer spellings.
#pragma once

#include <petscsys.h>

#if PETSC_VERSION_LT(3, 19, 0)
  #ifndef PETSC_SUCCESS
    #define PETSC_SUCCESS 0
  #endif
#endif
