/* What daemon_fast.c and relay.c give each other (not part of the interface Python sees). */

#ifndef DFAST_INTERNAL_H
#define DFAST_INTERNAL_H

#include "daemon_fast.h"

struct tcp_conn;

/* daemon_fast.c's, for relay.c */

/* The connection registered for `key` and carried (C gives it its segments), NULL when there
 * is none or it is not carried now (frozen, or the stack's alone). */
struct tcp_conn *dfast_host_carried(struct dfast *fast, const uint8_t *key);
/* What `key`'s connection owes now leaves, and Python hears the connection was touched (its
 * timers; what it owes, when it is not carried or has no way back now: the stack sends it). */
void dfast_host_output(struct dfast *fast, const uint8_t *key, double now);
/* The relay slot of `key`'s entry (index + 1; 0: none), NULL when `key` is not registered. */
int32_t *dfast_host_relay(struct dfast *fast, const uint8_t *key);
void dfast_flush_links(struct dfast *fast);
/* Whether connections were touched since Python last looked (dfast_host_touched). */
int dfast_host_news(const struct dfast *fast);
double dfast_now(void);
/* Where the relays' state hangs (relay.c's; NULL until dfast_relay_parser). */
struct relays **dfast_relays(struct dfast *fast);

/* relay.c's, for daemon_fast.c */

/* Relay `index` (an entry's relay slot less one): its connection took segments (data to read,
 * or acknowledgements that made room to send), before the connection's answers leave. */
void relay_delivered(struct dfast *fast, int32_t index);
/* Relay `index`'s connection is carried again (a handoff's freeze ended with it kept). */
void relay_carried(struct dfast *fast, int32_t index, double now);
/* Relay `index`'s connection left the table: the relay stops (DFAST_RELAY_GONE). */
void relay_gone(struct dfast *fast, int32_t index);
/* Whether `fd` is the relays' epoll set; if so, its events are handled and the return says
 * whether Python has news (stopped relays, touched connections): 1, else 0; -1: not it. */
int relay_ready(struct dfast *fast, int fd);
void relay_free_all(struct dfast *fast);

#endif
