/* The example's board on QEMU's mps2-an386: output on UART0 (CMSDK APB UART),
 * exit through semihosting, and an instruction counter read from CMSDK APB
 * timer 0. Run under `qemu-system-arm -icount shift=0`, every instruction
 * advances the virtual clock by exactly 1 ns, and the timer counts the 25 MHz
 * system clock of that virtual time, so 40 instructions make one tick. Also
 * the memcpy/memset/memmove that GCC may call even in freestanding code. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART0 0x40004000u
#define UART_DATA (UART0 + 0x00)
#define UART_STATE (UART0 + 0x04)
#define UART_CTRL (UART0 + 0x08)
#define UART_BAUDDIV (UART0 + 0x10)
#define TIMER0 0x40000000u
#define TIMER_CTRL (TIMER0 + 0x00)
#define TIMER_VALUE (TIMER0 + 0x04)
#define TIMER_RELOAD (TIMER0 + 0x08)
/* Instructions per timer tick: 1 ns per instruction (-icount shift=0), 40 ns per 25 MHz tick. */
#define INSNS_PER_TICK 40u

static uint32_t last_value;
static uint64_t ticks;

void board_init(void) {
    REG(UART_BAUDDIV) = 16;
    REG(UART_CTRL) = 1; /* transmit */
    REG(TIMER_RELOAD) = 0xffffffffu;
    REG(TIMER_VALUE) = 0xffffffffu;
    REG(TIMER_CTRL) = 1;
    last_value = REG(TIMER_VALUE);
    ticks = 0;
}

void board_write(const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        while (REG(UART_STATE) & 1u)
            ;
        REG(UART_DATA) = (uint8_t)bytes[i];
    }
}

/* The timer counts down and wraps after 2^32 ticks (about 170 s of virtual time). */
uint64_t board_instructions(void) {
    uint32_t v = REG(TIMER_VALUE);
    ticks += (uint32_t)(last_value - v);
    last_value = v;
    return ticks * INSNS_PER_TICK;
}

/* A loop of exactly two instructions per iteration (subs, bne). */
uint64_t board_count_check(uint64_t *expected) {
    uint32_t n = 1000000;
    *expected = 2ull * n;
    uint64_t t0 = board_instructions();
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
    return board_instructions() - t0;
}

void board_exit(int status) {
    /* SYS_EXIT with ADP_Stopped_ApplicationExit (QEMU exits 0) or RunTimeErrorUnknown (exits 1). */
    register uint32_t r0 __asm("r0") = 0x18;
    register uint32_t r1 __asm("r1") = status == 0 ? 0x20026u : 0x20023u;
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;)
        ;
}

void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s)
        return memcpy(dst, src, n);
    while (n--)
        d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}
