/* Properties of the quantisation modes that do not depend on the number type. */
#include "onebit/quant.h"

int ob_quant_mode_qmax(ob_quant_mode mode) {
    switch (mode) {
    case OB_MODE_EIGHTBIT: return 127;
    case OB_MODE_FOURBIT: return 7;
    case OB_MODE_TERNARY:
    case OB_MODE_BINARY: return 1;
    case OB_MODE_F16: break;
    }
    return 0;
}
