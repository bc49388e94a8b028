/* Backend-independent helpers of the table in backend.h. */
#include "backend.h"

#include <string.h>

void cnet_backend_free(cnet_backend *be) {
    if (be->destroy) be->destroy(be);
    memset(be, 0, sizeof *be);
}
