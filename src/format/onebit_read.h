/* What the .1bit readers of both versions share (onebit_read.c, onebit_read_v1.c). */
#ifndef ONEBIT_FORMAT_READ_H
#define ONEBIT_FORMAT_READ_H

#include "format/onebit_layout.h"

/* Fill f (its source set) from the bytes of a file of that version. */
ob_status ob_1bit_parse_v2(ob_1bit_file *f, const uint8_t *b, uint64_t size, bool skip_data_checks);
ob_status ob_1bit_parse_v1(ob_1bit_file *f, const uint8_t *b, uint64_t size, bool skip_data_checks);
/* Tensor i's checksum (when crc is not NULL), its scales, and unless
 * skip_data its codes (packed dtypes) or finiteness (floats). */
ob_status ob_1bit_check_tensor_data(const ob_1bit_file *f, int i, const uint32_t *crc, bool skip_data);
ob_status ob_1bit_check_unique_names(const ob_1bit_file *f);

#endif
