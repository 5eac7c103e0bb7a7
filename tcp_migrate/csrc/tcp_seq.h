/*
 * tcp_seq.h: TCP sequence number arithmetic (RFC 9293 3.4) and the segment
 * acceptability test (RFC 9293 3.10.7.4).
 *
 * RFC 9293 3.4: "It is essential to remember that the actual sequence number
 * space is finite, though very large. This space ranges from 0 to 2^32 - 1.
 * Since the space is finite, all arithmetic dealing with sequence numbers must
 * be performed modulo 2^32."
 *
 * Sequence numbers are host-order uint32_t; every function is pure and total
 * (defined for every input).
 */
#ifndef TCP_MIGRATE_TCP_SEQ_H
#define TCP_MIGRATE_TCP_SEQ_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Modular comparisons: a < b when b lies 1 .. 2^31 steps after a, so the
 * comparisons are only meaningful between numbers less than 2^31 apart (true
 * of any TCP window, which is below 2^30, RFC 7323 2.3).  At exactly 2^31
 * apart both seq_lt(a, b) and seq_lt(b, a) hold, as with Linux's before().
 */
bool seq_lt(uint32_t a, uint32_t b);
bool seq_leq(uint32_t a, uint32_t b);
bool seq_gt(uint32_t a, uint32_t b);
bool seq_geq(uint32_t a, uint32_t b);

/*
 * a =< b < c: b lies in the half-open interval of (c - a) mod 2^32 sequence
 * numbers that starts at a.  This is the form of RFC 9293's tests
 * ("RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND"); for 0 < c - a < 2^31 it equals
 * seq_leq(a, b) && seq_lt(b, c), and it stays exact for longer intervals.
 * a == c is the empty interval (the two comparisons would accept b = a + 2^31
 * there).  For "SND.UNA < SEG.ACK =< SND.NXT" use
 * seq_between(SND.UNA + 1, SEG.ACK, SND.NXT + 1).
 */
bool seq_between(uint32_t a, uint32_t b, uint32_t c);

/*
 * RFC 9293 3.10.7.4, Table 6 (segment acceptability tests).  seg_len is
 * SEG.LEN: payload octets plus one for SYN and one for FIN; rcv_wnd is the
 * receive window in octets after scaling.
 *
 *   Segment Length  Receive Window  Test
 *   0               0               SEG.SEQ = RCV.NXT
 *   0               >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
 *   >0              0               not acceptable
 *   >0              >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
 *                                   or
 *                                   RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
 *
 * As written in the RFC, a segment that starts before RCV.NXT and ends after
 * the window (neither end inside) is not acceptable.  "Special allowance"
 * for ACKs, URGs and RSTs when RCV.WND is zero is the caller's policy.
 */
bool seq_segment_acceptable(uint32_t rcv_nxt, uint32_t rcv_wnd,
                            uint32_t seg_seq, uint32_t seg_len);

#endif /* TCP_MIGRATE_TCP_SEQ_H */
