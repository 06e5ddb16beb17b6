/* A shared library whose initializer aborts: a plugin directory must not
   let one such file take down commands that do not need it. */
#include <stdlib.h>

__attribute__((constructor)) static void abort_on_load(void) { abort(); }
