/* The proxy's relay (daemon_fast.h, "the proxy's relay"): one HTTP/1.1 exchange at a time
 * between a carried connection of the daemon's TCP host and the proxy's socket to its server,
 * framed by llhttp as mip6.apps.http_boundary frames it (that module's docstring is the rule
 * book: what is followed, what is refused). Every check here refuses at least what the Python
 * tracker refuses, before anything of the message is forwarded, so a connection the relay
 * gives back is one the proxy can go on with from where it stopped. */

#define _GNU_SOURCE
#include "daemon_fast.h"
#include "dfast_internal.h"
#include "llhttp_abi.h"
#include "tcp_conn.h" /* tcp_migrate's */

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_QUICKACK_OPTION 12 /* Linux's TCP_QUICKACK (netinet/tcp.h clashes with tcp_conn.h) */

typedef int64_t (*tcp_send_fn)(struct tcp_conn *, const uint8_t *, size_t);
typedef int64_t (*tcp_recv_fn)(struct tcp_conn *, uint8_t *, size_t);
typedef bool (*tcp_recv_eof_fn)(const struct tcp_conn *);

enum message { AWAITED = 0, HEAD = 1, BODY = 2, WHOLE = 3 };

struct relay {
    int32_t index;
    int fd;
    uint8_t key[DFAST_HOST_KEY];
    int32_t reason;   /* DFAST_RELAY_RUNNING until it stops */
    int32_t closing;  /* a reason to stop with once the response's bytes are all sent */
    int queued;       /* in the events list */
    int notify_idle;
    uint32_t armed;   /* the epoll events asked for the socket */
    /* the client's side: up[0 .. up_len) read; [up_start ..) the request under way or next;
     * [.. up_parsed) fed to llhttp; [.. up_forward) may go on; [.. up_sent) went */
    llhttp_t request;
    uint8_t up[DFAST_RELAY_BUFFER];
    uint32_t up_len, up_start, up_head, up_parsed, up_forward, up_sent;
    int up_state;     /* enum message */
    int retained;     /* up[up_start .. up_forward) is the request under way from its start */
    int head_done, message_done, keep_alive;
    int hosts, upgrade; /* the head's Host and Upgrade fields */
    char field[8];
    uint32_t field_length;
    uint8_t method;
    int request_keep_alive;
    /* the server's side: down[0 .. down_len) read; [down_start ..) the message under way;
     * [.. down_parsed) fed to llhttp;
     * [.. down_forward) may go on; [.. down_sent) given to the connection */
    llhttp_t response;
    uint8_t down[DFAST_RELAY_BUFFER];
    uint32_t down_len, down_start, down_head, down_parsed, down_forward, down_sent;
    int down_state;   /* enum message */
    int answered;
    uint64_t requests, responses, up_bytes, down_bytes;
};

struct relays {
    llhttp_init_fn init;
    llhttp_settings_init_fn settings_init;
    llhttp_execute_fn execute;
    llhttp_finish_fn finish;
    llhttp_resume_fn resume;
    llhttp_parser_query_fn should_keep_alive;
    llhttp_parser_query_fn message_needs_eof;
    tcp_send_fn send;
    tcp_recv_fn recv;
    tcp_recv_eof_fn recv_eof;
    int epfd;
    llhttp_settings_t request_settings, response_settings;
    struct relay *slots[DFAST_RELAYS];
    int32_t events[DFAST_RELAYS];
    int event_count;
    struct dfast_relay_counters counters;
};

/* -- llhttp's callbacks ---------------------------------------------------------------------- */

static struct relay *relay_of(llhttp_t *parser)
{
    return parser->data;
}

static int on_header_field(llhttp_t *parser, const char *at, size_t length)
{
    struct relay *r = relay_of(parser);
    for (size_t i = 0; i < length; i++, r->field_length++)
        if (r->field_length < sizeof r->field) {
            char c = at[i];
            r->field[r->field_length] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
    return 0;
}

static int on_header_field_complete(llhttp_t *parser)
{
    struct relay *r = relay_of(parser);
    if (r->field_length == 4 && memcmp(r->field, "host", 4) == 0)
        r->hosts++;
    else if (r->field_length == 7 && memcmp(r->field, "upgrade", 7) == 0)
        r->upgrade = 1;
    r->field_length = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *parser)
{
    relay_of(parser)->head_done = 1;
    return 0;
}

/* RFC 9112 6.3: a response to HEAD, a 1xx, 204 or 304 has no body */
static int on_response_headers_complete(llhttp_t *parser)
{
    struct relay *r = relay_of(parser);
    r->head_done = 1;
    int status = parser->status_code;
    return r->method == LLHTTP_HEAD || status < 200 || status == 204 || status == 304;
}

/* Pauses the parser at the message's end: llhttp_execute returns there, error_pos just past it */
static int on_message_complete(llhttp_t *parser)
{
    relay_of(parser)->message_done = 1;
    return LLHTTP_PAUSED;
}

/* -- the parser's use ------------------------------------------------------------------------- */

/* Feeds `size` bytes at `data` to `parser`: how many it took (all, or up to a message's end,
 * where `*ended` is set), -1 when it refused them. */
static long feed(struct relays *rs, llhttp_t *parser, const uint8_t *data, size_t size, int *ended)
{
    struct relay *r = relay_of(parser);
    r->message_done = 0;
    *ended = 0;
    if (size == 0)
        return 0;
    int status = rs->execute(parser, (const char *)data, size);
    if (status == LLHTTP_OK)
        return (long)size;
    if (status != LLHTTP_PAUSED || !r->message_done)
        return -1;
    *ended = 1;
    r->keep_alive = rs->should_keep_alive(parser);
    long taken = (long)((const uint8_t *)parser->error_pos - data);
    rs->resume(parser);
    return taken < 0 || (size_t)taken > size ? -1 : taken;
}

#define NO_HEAD UINT32_MAX

/* The end of the head starting at `from` in `buffer[0 .. len)` (just past its empty line; RFC
 * 9112 2.1, CRLF only as llhttp takes), 0 when it has not come; `*head` is where its start
 * line begins once known (llhttp skips empty lines before it; NO_HEAD: not yet), kept across
 * calls. */
static uint32_t end_of_head(const uint8_t *buffer, uint32_t from, uint32_t len, uint32_t *head)
{
    if (*head == NO_HEAD) {
        uint32_t i = from;
        while (i < len && (buffer[i] == '\r' || buffer[i] == '\n'))
            i++;
        if (i == len)
            return 0;
        *head = i;
    }
    const uint8_t *found = len - *head >= 4 ? memmem(buffer + *head, len - *head, "\r\n\r\n", 4)
                                            : NULL;
    return found == NULL ? 0 : (uint32_t)(found - buffer) + 4;
}

static int version_followed(const llhttp_t *parser)
{
    return parser->http_major == 1 && parser->http_minor <= 1;
}

/* -- the relay's states ----------------------------------------------------------------------- */

static void queue_event(struct relays *rs, struct relay *r)
{
    if (!r->queued && rs->event_count < DFAST_RELAYS) {
        r->queued = 1;
        rs->events[rs->event_count++] = r->index;
    }
}

static void arm(struct relays *rs, struct relay *r, uint32_t events)
{
    if (r->armed == events)
        return;
    struct epoll_event event = {.events = events, .data.u32 = (uint32_t)r->index};
    epoll_ctl(rs->epfd, EPOLL_CTL_MOD, r->fd, &event);
    r->armed = events;
}

static void stop(struct relays *rs, struct relay *r, int reason)
{
    if (r->reason != DFAST_RELAY_RUNNING)
        return;
    r->reason = reason;
    rs->counters.stopped[reason]++;
    arm(rs, r, 0);
    queue_event(rs, r);
}

/* Between two exchanges: no request begun going on, and every byte of the last response given
 * to the connection (one that waits here for room in its send ring would not travel with a
 * handoff's snapshot). */
static int idle(const struct relay *r)
{
    return r->up_state <= HEAD && r->down_state == AWAITED && r->up_sent == r->up_start &&
           r->down_sent == r->down_len;
}

/* Tells Python the relay is idle, when it asked (dfast_relay_notify_idle). */
static void notify_if_idle(struct relays *rs, struct relay *r)
{
    if (r->notify_idle && r->reason == DFAST_RELAY_RUNNING && idle(r)) {
        r->notify_idle = 0;
        queue_event(rs, r);
    }
}

/* Linux's pending ACK of the server's bytes goes now (mip6.apps.proxy._Backend: a server that
 * writes a head and its body apart waits for it, Nagle's algorithm). */
static void quickack(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK_OPTION, &one, sizeof one);
}

static void server_closed(struct relays *rs, struct relay *r);

/* Moves up[shift ..) to the front. */
static void up_shift(struct relay *r, uint32_t shift)
{
    if (shift == 0)
        return;
    memmove(r->up, r->up + shift, r->up_len - shift);
    r->up_len -= shift;
    r->up_start -= shift;
    if (r->up_head != NO_HEAD)
        r->up_head -= shift;
    r->up_parsed -= shift;
    r->up_forward -= shift;
    r->up_sent -= shift;
}

/* Moves down[shift ..) to the front. */
static void down_shift(struct relay *r, uint32_t shift)
{
    memmove(r->down, r->down + shift, r->down_len - shift);
    r->down_len -= shift;
    r->down_start -= shift;
    if (r->down_head != NO_HEAD)
        r->down_head -= shift;
    r->down_parsed -= shift;
    r->down_forward -= shift;
    r->down_sent -= shift;
}

/* Frames what was read of the client's request: its head whole and checked before anything of
 * it goes on (what mip6.apps.http_boundary refuses stops the relay with the request held),
 * then its body as it comes. */
static void frame_request(struct relays *rs, struct relay *r)
{
    int ended;
    if (r->up_state == AWAITED) {
        if (r->up_len == r->up_start)
            return;
        rs->init(&r->request, LLHTTP_REQUEST, &rs->request_settings);
        r->request.data = r;
        r->head_done = r->hosts = r->upgrade = 0;
        r->field_length = 0;
        r->up_head = NO_HEAD;
        r->up_parsed = r->up_start;
        r->up_state = HEAD;
        r->retained = 1;
    }
    if (r->up_state == HEAD) {
        uint32_t end = end_of_head(r->up, r->up_start, r->up_len, &r->up_head);
        uint32_t until = end ? end : r->up_len;
        if (!end && r->up_len - r->up_start > DFAST_RELAY_MAX_HEAD)
            return stop(rs, r, DFAST_RELAY_REQUEST);
        long taken = feed(rs, &r->request, r->up + r->up_parsed, until - r->up_parsed, &ended);
        if (taken < 0 || (ended && r->up_parsed + (uint32_t)taken != end))
            return stop(rs, r, DFAST_RELAY_REQUEST); /* refused, or ended before its head did */
        r->up_parsed = until;
        if (!end)
            return;
        const llhttp_t *p = &r->request;
        /* http_boundary._request_head: HTTP/1.0 or 1.1, not leaving HTTP, one Host (RFC 9112
         * 3.2; at most one for 1.0) */
        if (!r->head_done || !version_followed(p) || p->method == LLHTTP_CONNECT || p->upgrade ||
            r->upgrade || r->hosts > 1 || (p->http_minor == 1 && r->hosts != 1))
            return stop(rs, r, DFAST_RELAY_REQUEST);
        r->method = p->method;
        r->up_forward = end;
        r->answered = 0;
        if (ended) {
            r->up_state = WHOLE;
            r->request_keep_alive = r->keep_alive;
            r->requests++;
            rs->counters.requests++;
            return;
        }
        r->up_state = BODY;
    }
    if (r->up_state == BODY && r->up_parsed < r->up_len) {
        long taken = feed(rs, &r->request, r->up + r->up_parsed, r->up_len - r->up_parsed, &ended);
        if (taken < 0) {
            r->up_forward = r->up_parsed;
            return stop(rs, r, DFAST_RELAY_RAW); /* what is left goes as it is, in Python */
        }
        r->up_parsed += (uint32_t)taken;
        r->up_forward = r->up_parsed;
        if (ended) {
            r->up_state = WHOLE;
            r->request_keep_alive = r->keep_alive;
            r->requests++;
            rs->counters.requests++;
        }
    }
}

/* The client's side: reads what the connection received (while a request is awaited or its
 * body comes: the next request waits for the response's end, as the proxy's would), frames it
 * and writes what may go on to the server. */
static void relay_up(struct dfast *fast, struct relays *rs, struct relay *r)
{
    for (;;) {
        if (r->reason != DFAST_RELAY_RUNNING || r->closing)
            return;
        struct tcp_conn *conn = dfast_host_carried(fast, r->key);
        if (conn == NULL)
            return; /* frozen or the stack's for now: relay_carried brings us back */
        if (r->up_sent < r->up_forward) {
            ssize_t n = send(r->fd, r->up + r->up_sent, r->up_forward - r->up_sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                arm(rs, r, r->armed | EPOLLOUT);
                return;
            }
            if (n < 0)
                return server_closed(rs, r);
            r->up_sent += (uint32_t)n;
            r->up_bytes += (uint64_t)n;
            quickack(r->fd);
            continue;
        }
        arm(rs, r, r->armed & ~(uint32_t)EPOLLOUT);
        if (r->up_state == WHOLE)
            return;
        uint32_t before = r->up_parsed;
        frame_request(rs, r);
        if (r->reason != DFAST_RELAY_RUNNING)
            return;
        if (r->up_forward > r->up_sent || r->up_parsed > before)
            continue;
        /* room: a request's body that went on no longer needs keeping once it fills the
         * buffer (it cannot be sent again then) */
        if (r->up_len == DFAST_RELAY_BUFFER && r->up_state == BODY) {
            r->retained = 0;
            r->up_start = r->up_sent; /* what went is no longer the request's to keep */
            r->up_head = NO_HEAD;
            up_shift(r, r->up_start);
        }
        if (r->up_len == DFAST_RELAY_BUFFER)
            return; /* held until the request's head ends or is refused (MAX_HEAD) */
        if (conn->state == TCP_CLOSED)
            return stop(rs, r, DFAST_RELAY_CLIENT_CLOSED);
        int64_t got = rs->recv(conn, r->up + r->up_len, DFAST_RELAY_BUFFER - r->up_len);
        if (got > 0) {
            r->up_len += (uint32_t)got;
            continue;
        }
        if (got < 0 || rs->recv_eof(conn))
            return stop(rs, r, DFAST_RELAY_CLIENT_CLOSED);
        return;
    }
}

/* The exchange under way ended with its final response framed. */
static void exchange_ended(struct dfast *fast, struct relays *rs, struct relay *r, int keep)
{
    r->responses++;
    rs->counters.responses++;
    r->down_state = AWAITED;
    if (r->up_state != WHOLE || r->up_sent < r->up_forward || !keep ||
        !r->request_keep_alive) {
        /* Connection: close on either side, bytes past the response, or an answer before the
         * request ended or went whole: the connection ends with this exchange (as the
         * proxy's would) */
        r->closing = DFAST_RELAY_CLOSE;
        r->down_len = r->down_forward;
        return;
    }
    r->up_state = AWAITED;
    r->up_start = r->up_forward;
    up_shift(r, r->up_start);
    r->retained = 0;
    relay_up(fast, rs, r); /* a request may be waiting */
    notify_if_idle(rs, r);
}

/* Frames what was read of the server's answer, its heads whole and checked before they go on;
 * false when nothing more can be framed now. */
static bool frame_response(struct dfast *fast, struct relays *rs, struct relay *r)
{
    int ended;
    if (r->down_parsed == r->down_len)
        return false;
    if (r->down_state == AWAITED) {
        if (r->up_state != BODY && r->up_state != WHOLE) {
            /* bytes for no request: nothing follows them here (mip6.apps.proxy._response) */
            r->closing = DFAST_RELAY_CLOSE;
            r->down_len = r->down_forward;
            return false;
        }
        rs->init(&r->response, LLHTTP_RESPONSE, &rs->response_settings);
        r->response.data = r;
        r->head_done = 0;
        r->down_start = r->down_parsed;
        r->down_head = NO_HEAD;
        r->down_state = HEAD;
        r->answered = 1;
    }
    if (r->down_state == HEAD) {
        uint32_t end = end_of_head(r->down, r->down_start, r->down_len, &r->down_head);
        uint32_t until = end ? end : r->down_len;
        if (!end && r->down_len - r->down_start > DFAST_RELAY_MAX_HEAD)
            goto raw;
        long taken = feed(rs, &r->response, r->down + r->down_parsed, until - r->down_parsed,
                          &ended);
        if (taken < 0 || (ended && r->down_parsed + (uint32_t)taken != end))
            goto raw;
        r->down_parsed = until;
        if (!end)
            return false;
        const llhttp_t *p = &r->response;
        /* http_boundary: HTTP/1.0 or 1.1; a 101 leaves HTTP */
        if (!r->head_done || !version_followed(p) || p->status_code == 101)
            goto raw;
        r->down_forward = end;
        if (ended) {
            if (p->status_code >= 200) {
                exchange_ended(fast, rs, r, r->keep_alive && end == r->down_len);
            } else {
                r->down_state = AWAITED; /* an interim response: the final one follows */
                r->answered = 1;
            }
            return r->reason == DFAST_RELAY_RUNNING && !r->closing;
        }
        r->down_state = BODY;
    }
    long taken = feed(rs, &r->response, r->down + r->down_parsed, r->down_len - r->down_parsed,
                      &ended);
    if (taken < 0)
        goto raw;
    r->down_parsed += (uint32_t)taken;
    r->down_forward = r->down_parsed;
    if (ended)
        exchange_ended(fast, rs, r, r->keep_alive && r->down_parsed == r->down_len);
    return r->reason == DFAST_RELAY_RUNNING && !r->closing;
raw:
    stop(rs, r, DFAST_RELAY_RAW); /* what was not framed goes as it is, from Python */
    return false;
}

/* The server's side: what may go on is given to the connection (as much as its send ring
 * takes: the rest waits for the client's acknowledgements, relay_delivered), then the socket
 * is read and framed. Whether anything was given to the connection. */
static bool relay_down(struct dfast *fast, struct relays *rs, struct relay *r)
{
    bool given = false;
    for (;;) {
        if (r->reason != DFAST_RELAY_RUNNING)
            return given;
        struct tcp_conn *conn = dfast_host_carried(fast, r->key);
        if (conn == NULL) {
            arm(rs, r, 0); /* frozen: the socket waits (relay_carried) */
            return given;
        }
        if (r->down_sent < r->down_forward) {
            int64_t n = rs->send(conn, r->down + r->down_sent, r->down_forward - r->down_sent);
            if (n < 0) {
                stop(rs, r, DFAST_RELAY_CLIENT_CLOSED);
                return given;
            }
            r->down_sent += (uint32_t)n;
            r->down_bytes += (uint64_t)n;
            given = given || n > 0;
            notify_if_idle(rs, r);
            if (r->down_sent < r->down_forward) {
                arm(rs, r, r->armed & ~(uint32_t)EPOLLIN); /* the ring is full */
                return given;
            }
        }
        if (r->closing) {
            stop(rs, r, r->closing);
            return given;
        }
        if (r->down_sent == r->down_len) { /* all of it went: the buffer starts again */
            r->down_len = r->down_parsed = r->down_forward = r->down_sent = 0;
            r->down_start = 0; /* (no head is under way: its bytes would not have gone) */
        }
        if (frame_response(fast, rs, r))
            continue;
        if (r->reason != DFAST_RELAY_RUNNING)
            return given;
        if (r->down_forward > r->down_sent || r->closing)
            continue;
        if (r->down_len == DFAST_RELAY_BUFFER) {
            if (r->down_state != HEAD) {
                r->down_start = r->down_sent; /* a body's bytes that went are not kept */
                r->down_head = NO_HEAD;
            }
            uint32_t shift = r->down_start < r->down_sent ? r->down_start : r->down_sent;
            if (shift == 0)
                return given; /* a head as long as the buffer: refused above (MAX_HEAD) */
            down_shift(r, shift);
        }
        ssize_t n = recv(r->fd, r->down + r->down_len, DFAST_RELAY_BUFFER - r->down_len,
                         MSG_DONTWAIT);
        if (n > 0) {
            r->down_len += (uint32_t)n;
            quickack(r->fd);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm(rs, r, r->armed | EPOLLIN);
            return given;
        }
        server_closed(rs, r);
    }
}

/* The server's end of stream (or an error on its socket): a body that runs until the close
 * ends; anything else stops the relay (the proxy answers 502, tries the request again, or
 * ends the connection). */
static void server_closed(struct relays *rs, struct relay *r)
{
    if (r->down_state == BODY && rs->message_needs_eof(&r->response)) {
        r->responses++;
        rs->counters.responses++;
        r->down_state = AWAITED;
        r->closing = DFAST_RELAY_CLOSE;
        arm(rs, r, 0);
        return;
    }
    stop(rs, r, DFAST_RELAY_SERVER_CLOSED);
}

static struct relay *relay_at(struct dfast *fast, int index)
{
    struct relays *rs = fast == NULL ? NULL : *dfast_relays(fast);
    if (rs == NULL || index < 0 || index >= DFAST_RELAYS)
        return NULL;
    return rs->slots[index];
}

/* Both sides as far as they go now, then the connection's answers. */
static void relay_run(struct dfast *fast, struct relay *r, double now)
{
    struct relays *rs = *dfast_relays(fast);
    relay_up(fast, rs, r);
    relay_down(fast, rs, r);
    relay_up(fast, rs, r); /* an exchange that ended may have a request waiting */
    dfast_host_output(fast, r->key, now);
}

/* -- daemon_fast.c's hooks -------------------------------------------------------------------- */

void relay_delivered(struct dfast *fast, int32_t index)
{
    struct relay *r = relay_at(fast, index);
    if (r == NULL || r->reason != DFAST_RELAY_RUNNING)
        return;
    relay_up(fast, *dfast_relays(fast), r);
    if (r->down_sent < r->down_forward) /* acknowledgements may have made room */
        relay_down(fast, *dfast_relays(fast), r);
}

void relay_carried(struct dfast *fast, int32_t index, double now)
{
    struct relay *r = relay_at(fast, index);
    if (r == NULL || r->reason != DFAST_RELAY_RUNNING)
        return;
    arm(*dfast_relays(fast), r, EPOLLIN);
    relay_run(fast, r, now);
}

void relay_gone(struct dfast *fast, int32_t index)
{
    struct relay *r = relay_at(fast, index);
    if (r != NULL)
        stop(*dfast_relays(fast), r, DFAST_RELAY_GONE);
}

int relay_ready(struct dfast *fast, int fd)
{
    struct relays *rs = *dfast_relays(fast);
    if (rs == NULL || fd != rs->epfd)
        return -1;
    return dfast_relay_service(fast);
}

void relay_free_all(struct dfast *fast)
{
    struct relays *rs = *dfast_relays(fast);
    if (rs == NULL)
        return;
    for (int i = 0; i < DFAST_RELAYS; i++)
        free(rs->slots[i]);
    close(rs->epfd);
    free(rs);
    *dfast_relays(fast) = NULL;
}

/* -- the interface ---------------------------------------------------------------------------- */

int dfast_relay_service(struct dfast *fast)
{
    struct relays *rs = fast == NULL ? NULL : *dfast_relays(fast);
    if (rs == NULL)
        return 0;
    struct epoll_event events[64];
    int got = epoll_wait(rs->epfd, events, 64, 0);
    double now = dfast_now();
    for (int i = 0; i < got; i++) {
        struct relay *r = relay_at(fast, (int)events[i].data.u32);
        if (r == NULL || r->reason != DFAST_RELAY_RUNNING)
            continue;
        if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            relay_up(fast, rs, r);
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            relay_down(fast, rs, r);
        relay_up(fast, rs, r);
        dfast_host_output(fast, r->key, now);
    }
    dfast_flush_links(fast);
    return rs->event_count > 0 || dfast_host_news(fast);
}

int dfast_relay_start(struct dfast *fast, const uint8_t *key, int fd, const uint8_t *held,
                      size_t size)
{
    struct relays *rs = fast == NULL ? NULL : *dfast_relays(fast);
    if (rs == NULL || key == NULL || fd < 0 || size > DFAST_RELAY_BUFFER ||
        (size > 0 && held == NULL))
        return -EINVAL;
    int32_t *slot = dfast_host_relay(fast, key);
    if (slot == NULL || dfast_host_carried(fast, key) == NULL)
        return -ENOENT;
    if (*slot)
        return -EBUSY;
    int index = 0;
    while (index < DFAST_RELAYS && rs->slots[index] != NULL)
        index++;
    if (index == DFAST_RELAYS)
        return -ENOSPC;
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->index = index;
    r->fd = fd;
    memcpy(r->key, key, DFAST_HOST_KEY);
    r->method = LLHTTP_GET;
    r->up_head = r->down_head = NO_HEAD;
    memcpy(r->up, held, size);
    r->up_len = (uint32_t)size;
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)index};
    if (epoll_ctl(rs->epfd, EPOLL_CTL_ADD, fd, &event) < 0) {
        int error = errno;
        free(r);
        return -error;
    }
    r->armed = EPOLLIN;
    rs->slots[index] = r;
    rs->counters.started++;
    *slot = index + 1;
    relay_run(fast, r, dfast_now());
    dfast_flush_links(fast);
    return index;
}

int dfast_relay_state(struct dfast *fast, int index, struct dfast_relay_state *out)
{
    struct relay *r = relay_at(fast, index);
    if (r == NULL || out == NULL)
        return -EINVAL;
    int retry = r->reason == DFAST_RELAY_SERVER_CLOSED && r->up_state == WHOLE && !r->answered &&
                r->retained;
    *out = (struct dfast_relay_state){
        .reason = r->reason,
        .idle = idle(r),
        .answered = r->answered,
        .retry = retry,
        .method = r->method,
        .held = r->up_len - r->up_sent,
        .retained = retry ? r->up_forward - r->up_start : 0,
        .unrelayed = r->down_forward - r->down_sent,
        .down = r->down_len - r->down_sent,
        .requests = r->requests,
        .responses = r->responses,
        .up_bytes = r->up_bytes,
        .down_bytes = r->down_bytes,
    };
    return 0;
}

int dfast_relay_bytes(struct dfast *fast, int index, int which, uint8_t *out, size_t capacity)
{
    struct relay *r = relay_at(fast, index);
    struct dfast_relay_state state;
    if (r == NULL || dfast_relay_state(fast, index, &state) < 0)
        return -EINVAL;
    const uint8_t *from;
    uint32_t size;
    switch (which) {
    case DFAST_RELAY_HELD:
        from = r->up + r->up_sent;
        size = state.held;
        break;
    case DFAST_RELAY_RETAINED:
        from = r->up + r->up_start;
        size = state.retained;
        break;
    case DFAST_RELAY_DOWN:
        from = r->down + r->down_sent;
        size = state.down;
        break;
    default:
        return -EINVAL;
    }
    if (size > capacity || (size > 0 && out == NULL))
        return -ENOSPC;
    memcpy(out, from, size);
    return (int)size;
}

int dfast_relay_poke(struct dfast *fast, int index)
{
    struct relay *r = relay_at(fast, index);
    if (r == NULL)
        return -EINVAL;
    if (r->reason == DFAST_RELAY_RUNNING) {
        relay_delivered(fast, index);
        dfast_host_output(fast, r->key, dfast_now());
        dfast_flush_links(fast);
    }
    return 0;
}

int dfast_relay_notify_idle(struct dfast *fast, int index)
{
    struct relay *r = relay_at(fast, index);
    if (r == NULL)
        return -EINVAL;
    r->notify_idle = 1;
    return 0;
}

int dfast_relay_stop(struct dfast *fast, int index)
{
    struct relay *r = relay_at(fast, index);
    if (r == NULL)
        return -EINVAL;
    struct relays *rs = *dfast_relays(fast);
    epoll_ctl(rs->epfd, EPOLL_CTL_DEL, r->fd, NULL);
    int32_t *slot = dfast_host_relay(fast, r->key);
    if (slot != NULL && *slot == index + 1)
        *slot = 0;
    for (int i = 0; i < rs->event_count; i++)
        if (rs->events[i] == index) {
            rs->events[i] = rs->events[--rs->event_count];
            break;
        }
    rs->slots[index] = NULL;
    free(r);
    return 0;
}

const struct dfast_relay_counters *dfast_relay_counters(const struct dfast *fast)
{
    struct relays *rs = fast == NULL ? NULL : *dfast_relays((struct dfast *)fast);
    return rs == NULL ? NULL : &rs->counters;
}

int dfast_relay_events(struct dfast *fast, int32_t *out, int max)
{
    struct relays *rs = fast == NULL ? NULL : *dfast_relays(fast);
    if (rs == NULL || out == NULL || max <= 0)
        return 0;
    int n = rs->event_count < max ? rs->event_count : max;
    for (int i = 0; i < n; i++) {
        out[i] = rs->events[i];
        struct relay *r = rs->slots[out[i]];
        if (r != NULL)
            r->queued = 0;
    }
    rs->event_count -= n;
    memmove(rs->events, rs->events + n, (size_t)rs->event_count * sizeof *rs->events);
    return n;
}

/* -- the parser's check ----------------------------------------------------------------------- */

/* Frames known messages as llhttp 9 does, through our declarations of its layout: a request
 * with a body and one after it, a response to HEAD with a Content-Length, a chunked one. */
static int parser_check(struct relays *rs)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
#define FIRST "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    static const char request[] = FIRST "HEAD /b HTTP/1.0\r\n\r\n";
    const long first = sizeof FIRST - 1;
#undef FIRST
    static const char head_response[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
    static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "3\r\nabc\r\n0\r\n\r\nX";
    int ended, ok = 1;
    rs->init(&r->request, LLHTTP_REQUEST, &rs->request_settings);
    r->request.data = r;
    long taken = feed(rs, &r->request, (const uint8_t *)request, sizeof request - 1, &ended);
    ok &= taken == first && ended && r->head_done && r->hosts == 1 &&
          r->request.method == LLHTTP_GET &&
          r->request.http_minor == 1 && r->keep_alive == 1;
    r->head_done = 0;
    r->hosts = 0;
    long rest = feed(rs, &r->request, (const uint8_t *)request + first,
                     sizeof request - 1 - (size_t)first, &ended);
    ok &= rest == (long)(sizeof request - 1) - first && ended && r->head_done && r->hosts == 0 &&
          r->request.method == LLHTTP_HEAD && r->request.http_minor == 0 && r->keep_alive == 0;
    r->method = LLHTTP_HEAD;
    rs->init(&r->response, LLHTTP_RESPONSE, &rs->response_settings);
    r->response.data = r;
    taken = feed(rs, &r->response, (const uint8_t *)head_response, sizeof head_response - 1,
                 &ended);
    ok &= taken == (long)(sizeof head_response - 1) && ended && r->response.status_code == 200;
    r->method = LLHTTP_GET;
    rs->init(&r->response, LLHTTP_RESPONSE, &rs->response_settings);
    r->response.data = r;
    taken = feed(rs, &r->response, (const uint8_t *)chunked, sizeof chunked - 1, &ended);
    ok &= taken == (long)(sizeof chunked - 2) && ended && r->keep_alive == 1;
    free(r);
    return ok ? 0 : -ENOTSUP;
}

int dfast_relay_parser(struct dfast *fast, const uintptr_t *functions, uintptr_t send_fn,
                       uintptr_t recv_fn, uintptr_t recv_eof_fn)
{
    if (fast == NULL || functions == NULL || *dfast_relays(fast) != NULL || send_fn == 0 ||
        recv_fn == 0 || recv_eof_fn == 0)
        return -EINVAL;
    for (int i = 0; i < DFAST_LLHTTP_FUNCTIONS; i++)
        if (functions[i] == 0)
            return -EINVAL;
    struct relays *rs = calloc(1, sizeof *rs);
    if (rs == NULL)
        return -ENOMEM;
    rs->init = (llhttp_init_fn)functions[0];
    rs->settings_init = (llhttp_settings_init_fn)functions[1];
    rs->execute = (llhttp_execute_fn)functions[2];
    rs->finish = (llhttp_finish_fn)functions[3];
    rs->resume = (llhttp_resume_fn)functions[4];
    rs->should_keep_alive = (llhttp_parser_query_fn)functions[5];
    rs->message_needs_eof = (llhttp_parser_query_fn)functions[6];
    rs->send = (tcp_send_fn)send_fn;
    rs->recv = (tcp_recv_fn)recv_fn;
    rs->recv_eof = (tcp_recv_eof_fn)recv_eof_fn;
    rs->settings_init(&rs->request_settings);
    rs->request_settings.on_header_field = on_header_field;
    rs->request_settings.on_header_field_complete = on_header_field_complete;
    rs->request_settings.on_headers_complete = on_headers_complete;
    rs->request_settings.on_message_complete = on_message_complete;
    rs->settings_init(&rs->response_settings);
    rs->response_settings.on_headers_complete = on_response_headers_complete;
    rs->response_settings.on_message_complete = on_message_complete;
    int status = parser_check(rs);
    if (status < 0) {
        free(rs);
        return status;
    }
    rs->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rs->epfd < 0) {
        int error = errno;
        free(rs);
        return -error;
    }
    *dfast_relays(fast) = rs;
    return rs->epfd;
}
