/* Reset and fault handling for the Cortex-M4F of the MPS2 AN386 board: the
 * vector table (initial stack pointer, reset and fault handlers), copying
 * .data from flash, zeroing .bss, turning the FPU on, painting the stack so
 * that its high-water mark can be read, then main. */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_start[], __stack_top[];
int main(void);
void reset_handler(void);
void fault_handler(void);

#define STACK_PAINT 0xa5a5a5a5u

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top, reset_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler, fault_handler,
};

void fault_handler(void) {
    board_write("fault\n", 6);
    board_exit(1);
}

/* Paints the stack below the current frame; board_stack_used finds the highest word touched. */
__attribute__((noinline)) static void paint_stack(void) {
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __stack_start; p < sp - 16; p++)
        *p = STACK_PAINT;
}

size_t board_stack_used(void) {
    const uint32_t *p = __stack_start;
    while (p < __stack_top && *p == STACK_PAINT)
        p++;
    return (size_t)((const uint8_t *)__stack_top - (const uint8_t *)p);
}

void reset_handler(void) {
    /* CP10 and CP11 full access (CPACR), before any floating-point instruction. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n isb" ::: "memory");
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;)
        *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;)
        *d++ = 0;
    paint_stack();
    board_exit(main());
}
