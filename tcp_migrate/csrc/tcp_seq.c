/* tcp_seq.c: see tcp_seq.h.  Unsigned arithmetic only: no signed overflow and
 * no implementation-defined conversion from uint32_t to int32_t. */
#include "tcp_seq.h"

#define SEQ_HALF 0x80000000u /* 2^31 */

bool seq_lt(uint32_t a, uint32_t b)
{
    /* b - a in 1 .. 2^31, i.e. (a - b) mod 2^32 has its top bit set. */
    return (uint32_t)(a - b) >= SEQ_HALF;
}

bool seq_leq(uint32_t a, uint32_t b)
{
    return a == b || seq_lt(a, b);
}

bool seq_gt(uint32_t a, uint32_t b)
{
    return seq_lt(b, a);
}

bool seq_geq(uint32_t a, uint32_t b)
{
    return seq_leq(b, a);
}

bool seq_between(uint32_t a, uint32_t b, uint32_t c)
{
    return (uint32_t)(b - a) < (uint32_t)(c - a);
}

bool seq_segment_acceptable(uint32_t rcv_nxt, uint32_t rcv_wnd,
                            uint32_t seg_seq, uint32_t seg_len)
{
    uint32_t rcv_end = rcv_nxt + rcv_wnd; /* RCV.NXT+RCV.WND, mod 2^32 */

    if (seg_len == 0) {
        if (rcv_wnd == 0)
            return seg_seq == rcv_nxt; /* SEG.SEQ = RCV.NXT */
        return seq_between(rcv_nxt, seg_seq, rcv_end);
    }
    if (rcv_wnd == 0)
        return false; /* not acceptable */
    return seq_between(rcv_nxt, seg_seq, rcv_end) ||
           seq_between(rcv_nxt, seg_seq + seg_len - 1u, rcv_end);
}
