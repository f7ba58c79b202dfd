/* What the example program needs from a board: a byte sink, an instruction
 * counter (0 when the board has none) and a way to stop. board_host.c
 * implements it on a desktop, ../mcu/board_mps2.c on an emulated MPS2 board. */
#ifndef ONEBIT_EXAMPLE_BOARD_H
#define ONEBIT_EXAMPLE_BOARD_H

#include <stddef.h>
#include <stdint.h>

void board_init(void);
void board_write(const char *bytes, size_t n);
/* Instructions executed since board_init; 0 when not counted. */
uint64_t board_instructions(void);
/* A self-check of that counter: what it counts for a loop of *expected
 * instructions (0 when not counted). */
uint64_t board_count_check(uint64_t *expected);
/* Bytes of stack used so far (0 when not measured). */
size_t board_stack_used(void);
void board_exit(int status);

#endif
