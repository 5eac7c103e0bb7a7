/* tcp_cc.c: see tcp_cc.h.  NewReno: RFC 5681 window growth and reduction,
 * with the fast recovery window rules of RFC 6582 3.2. */
#include "tcp_cc.h"

static uint32_t clamp_cwnd(uint64_t v)
{
    if (v > TCP_CWND_MAX)
        return TCP_CWND_MAX;
    return v == 0 ? 1u : (uint32_t)v;
}

static uint32_t flight_size(const struct tcp_conn *c)
{
    return c->snd_max - c->snd_una;
}

/* RFC 5681 (4): ssthresh = max (FlightSize / 2, 2*SMSS) */
static uint32_t loss_ssthresh(uint32_t flight, const struct tcp_conn *c)
{
    uint32_t half = flight / 2, floor = 2 * tcp_smss(c);
    return half > floor ? half : floor;
}

/* ---- NewReno ------------------------------------------------------------- */

/* cc_priv[0]: bytes acknowledged in congestion avoidance since cwnd last grew
 * (always below cwnd). */
#define NEWRENO_BYTES_ACKED 0

static void newreno_init(struct tcp_conn *c)
{
    uint32_t smss = tcp_smss(c), segments = c->cfg.initial_window;

    if (c->flags & TCP_CF_SYN_REXMIT)
        /* RFC 5681 3.1, RFC 6928 2: after a lost SYN or SYN-ACK, one segment */
        c->cwnd = smss;
    else if (segments > 0) {
        /* RFC 6928 2: IW = min (10*MSS, max (2*MSS, 14600)), for N segments
         * (Linux's initcwnd): min (N*MSS, max (2*MSS, N*1460)) */
        uint32_t bytes = segments * 1460u;
        if (bytes < 2 * smss)
            bytes = 2 * smss;
        c->cwnd = segments * smss < bytes ? segments * smss : bytes;
    }
    /* RFC 5681 3.1 (3390): IW = min (4*SMSS, max (2*SMSS, 4380 bytes)) */
    else if (smss > 2190)
        c->cwnd = 2 * smss;
    else if (smss > 1095)
        c->cwnd = 3 * smss;
    else
        c->cwnd = 4 * smss;
    /* RFC 5681 3.1: "The initial value of ssthresh SHOULD be set arbitrarily
     * high (e.g., to the size of the largest possible advertised window)" */
    c->ssthresh = TCP_MAX_WINDOW;
    c->cc_priv[NEWRENO_BYTES_ACKED] = 0;
}

static void newreno_on_ack(struct tcp_conn *c, uint32_t acked)
{
    uint64_t smss = tcp_smss(c);

    if (c->cwnd < c->ssthresh) {
        /* RFC 5681 (2): cwnd += min (N, SMSS) */
        c->cwnd = clamp_cwnd((uint64_t)c->cwnd + (acked < smss ? acked : smss));
    } else {
        /* RFC 5681 3.1: "The RECOMMENDED way to increase cwnd during
         * congestion avoidance is to count the number of bytes that have been
         * acknowledged by ACKs for new data ... When the number of bytes
         * acknowledged reaches cwnd, then cwnd can be incremented by up to
         * SMSS bytes."  Unlike SMSS*SMSS/cwnd per ACK, delayed ACKs do not
         * halve the growth.  cc_priv[0] holds the count. */
        uint64_t counted = (uint64_t)c->cc_priv[NEWRENO_BYTES_ACKED] + acked;
        if (counted >= c->cwnd) {
            c->cwnd = clamp_cwnd((uint64_t)c->cwnd + smss);
            counted = 0;
        }
        c->cc_priv[NEWRENO_BYTES_ACKED] = (uint32_t)counted;
    }
}

static void newreno_enter_recovery(struct tcp_conn *c)
{
    /* RFC 6582 3.2 step 2 (RFC 5681 (4)), then step 3: cwnd = ssthresh +
     * 3*SMSS, "artificially inflates the congestion window by the number of
     * segments (three) that have left the network" */
    uint32_t flight = flight_size(c);

    /* RFC 5681 3.2 step 2: "When [RFC3042] is in use, additional data sent
     * in limited transmit MUST NOT be included in this calculation": without
     * it FlightSize never exceeds cwnd, so the excess is what it sent. */
    if (flight > c->cwnd)
        flight = c->cwnd;
    c->ssthresh = loss_ssthresh(flight, c);
    c->cwnd = clamp_cwnd((uint64_t)c->ssthresh + 3u * tcp_smss(c));
    c->cc_priv[NEWRENO_BYTES_ACKED] = 0;
}

static void newreno_recovery_dupack(struct tcp_conn *c)
{
    /* RFC 6582 3.2 step 4: "increment cwnd by SMSS" */
    c->cwnd = clamp_cwnd((uint64_t)c->cwnd + tcp_smss(c));
}

static void newreno_partial_ack(struct tcp_conn *c, uint32_t acked)
{
    uint32_t smss = tcp_smss(c);

    /* RFC 6582 3.2 step 5, partial ACK: "deflate the congestion window by the
     * amount of new data acknowledged ..., then add back SMSS bytes if the
     * partial ACK acknowledges SMSS or more bytes of new data" */
    c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
    if (acked >= smss)
        c->cwnd += smss;
    c->cwnd = clamp_cwnd(c->cwnd);
}

static void newreno_exit_recovery(struct tcp_conn *c, uint32_t flight)
{
    /* RFC 6582 3.2 step 5, full ACK, option (1): cwnd = min (ssthresh,
     * max(FlightSize, SMSS) + SMSS) */
    uint64_t smss = tcp_smss(c);
    uint64_t v = (flight > smss ? flight : smss) + smss;
    c->cwnd = clamp_cwnd(v < c->ssthresh ? v : c->ssthresh);
    c->cc_priv[NEWRENO_BYTES_ACKED] = 0;
}

static void newreno_tlp_loss(struct tcp_conn *c, uint32_t flight)
{
    /* RFC 8985 7.4.2: a loss the probe repaired is a loss: RFC 5681 (4),
     * and cwnd where a fast recovery would have left it (RFC 6582 3.2 step
     * 5's ssthresh) */
    c->ssthresh = loss_ssthresh(flight, c);
    c->cwnd = clamp_cwnd(c->ssthresh);
    c->cc_priv[NEWRENO_BYTES_ACKED] = 0;
}

static void newreno_on_rto(struct tcp_conn *c, int first)
{
    /* RFC 5681 3.1: on the first timeout ssthresh = (4); "when a TCP sender
     * detects segment loss using the retransmission timer and the given
     * segment has already been retransmitted by way of the retransmission
     * timer at least once, the value of ssthresh is held constant". */
    if (first)
        c->ssthresh = loss_ssthresh(flight_size(c), c);
    c->cwnd = tcp_smss(c); /* Loss Window, one full-sized segment */
    c->cc_priv[NEWRENO_BYTES_ACKED] = 0;
}

/* ---- the switch ---------------------------------------------------------- */

int tcp_cc_state_words(uint8_t algo)
{
    switch (algo) {
    case TCP_CC_NEWRENO:
        return 1;
    default:
        return 0;
    }
}

bool tcp_cc_check(const struct tcp_conn *c)
{
    int i, words = tcp_cc_state_words(c->cc_algo);

    for (i = words; i < 4; i++)
        if (c->cc_priv[i] != 0)
            return false;
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
        return c->cc_priv[NEWRENO_BYTES_ACKED] < c->cwnd;
    default:
        return false;
    }
}

void tcp_cc_init(struct tcp_conn *c)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_init(c);
        break;
    }
}

void tcp_cc_on_ack(struct tcp_conn *c, uint32_t acked)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_on_ack(c, acked);
        break;
    }
}

void tcp_cc_on_enter_recovery(struct tcp_conn *c)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_enter_recovery(c);
        break;
    }
}

void tcp_cc_on_recovery_dupack(struct tcp_conn *c)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_recovery_dupack(c);
        break;
    }
}

void tcp_cc_on_partial_ack(struct tcp_conn *c, uint32_t acked)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_partial_ack(c, acked);
        break;
    }
}

void tcp_cc_on_exit_recovery(struct tcp_conn *c, uint32_t flight)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_exit_recovery(c, flight);
        break;
    }
}

void tcp_cc_on_rto(struct tcp_conn *c, int first)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_on_rto(c, first);
        break;
    }
}

void tcp_cc_on_tlp_loss(struct tcp_conn *c, uint32_t flight)
{
    switch (c->cc_algo) {
    case TCP_CC_NEWRENO:
    default:
        newreno_tlp_loss(c, flight);
        break;
    }
}
