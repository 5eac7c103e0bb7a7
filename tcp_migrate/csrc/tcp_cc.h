/*
 * tcp_cc.h: congestion control behind a switch (internal to the core).
 *
 * Loss detection and recovery (duplicate ACK counting, the RFC 6582 recover
 * point, what to retransmit) stay in tcp_conn.c; these functions decide only
 * how cwnd and ssthresh move, so another algorithm (CUBIC, RFC 9438) is a new
 * enum tcp_cc_algo value, a case in each function below and, if it needs
 * state, the words of struct tcp_conn.cc_priv.  No function pointers: the
 * connection stays plain data that exports as integers.
 *
 * All sizes in bytes; SMSS is tcp_smss(c).
 */
#ifndef TCP_MIGRATE_TCP_CC_H
#define TCP_MIGRATE_TCP_CC_H

#include <stdbool.h>
#include <stdint.h>

#include "tcp_conn.h"

/* cwnd and ssthresh never exceed this (2^30). */
#define TCP_CWND_MAX 1073741824u

/* Connection synchronized: initial window and ssthresh. */
void tcp_cc_init(struct tcp_conn *c);
/* `acked` bytes of new data acknowledged outside fast recovery. */
void tcp_cc_on_ack(struct tcp_conn *c, uint32_t acked);
/* Third duplicate ACK: entering fast recovery (ssthresh, inflated cwnd). */
void tcp_cc_on_enter_recovery(struct tcp_conn *c);
/* Another duplicate ACK during fast recovery. */
void tcp_cc_on_recovery_dupack(struct tcp_conn *c);
/* A partial ACK (RFC 6582 3.2 step 3) acknowledging `acked` bytes. */
void tcp_cc_on_partial_ack(struct tcp_conn *c, uint32_t acked);
/* A full ACK ends fast recovery; flight is the data still outstanding. */
void tcp_cc_on_exit_recovery(struct tcp_conn *c, uint32_t flight);
/* Retransmission timeout; `first` when not already backed off. */
void tcp_cc_on_rto(struct tcp_conn *c, int first);
/* RFC 8985 7.4.2: a tail loss probe's retransmission repaired a loss;
 * flight: FlightSize before the ACK that said so. */
void tcp_cc_on_tlp_loss(struct tcp_conn *c, uint32_t flight);
/* How many words of cc_priv the algorithm uses (the snapshot carries them). */
int tcp_cc_state_words(uint8_t algo);
/* Whether cc_priv is consistent for the algorithm (unused words zero). */
bool tcp_cc_check(const struct tcp_conn *c);

#endif /* TCP_MIGRATE_TCP_CC_H */
