/* UDP generic segmentation offload for a batch of packets queued for one socket: the daemon's
 * fast path (daemon_fast.c) and the lab hub's (labnet/hub/csrc/hub_fast.c) both write their
 * UDP links through it. A run of consecutive packets of one size (the last may be shorter) is
 * one message that the kernel cuts into those datagrams (UDP_SEGMENT): one pass through the
 * socket and IP layers for the run rather than one per packet, which is where a lab's kernel
 * TCP through the daemons and the hub spent most of its time. The peer receives the same
 * datagrams. Header only: each extension compiles its own copy of these static functions. */
#ifndef MIP6_UDP_RUNS_H
#define MIP6_UDP_RUNS_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* A run's datagrams at most this long each (the kernel's limit is the route's MTU: loopback's,
 * where the lab's links are, is 64 kB; a packet this size or smaller fits any link's), at
 * most this many (the kernel's UDP_MAX_SEGMENTS is 64 from Linux 4.18), and their payloads at
 * most this much together (one IP datagram). */
#define UDP_RUNS_MAX_SEGMENT 1500
#define UDP_RUNS_MAX_SEGMENTS 64
#define UDP_RUNS_MAX_BYTES 60000

/* One message's control data: its UDP_SEGMENT size. */
typedef uint8_t udp_runs_control[CMSG_SPACE(sizeof(uint16_t))]
    __attribute__((aligned(__alignof__(struct cmsghdr))));

/* Where a batch's runs go: one message each, its first packet and how many. Arrays of the
 * batch's capacity. */
struct udp_runs {
    struct mmsghdr *messages;
    udp_runs_control *controls;
    int *first;
    int *count;
};

/* Whether `fd` is a UDP socket: segmentation offload is UDP's (a datagram socket of another
 * family, a Unix socket pair in the tests, would take a run as one datagram). */
static inline int udp_runs_possible(int fd)
{
    int protocol = 0;
    socklen_t length = sizeof protocol;
    return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length) == 0 &&
           protocol == IPPROTO_UDP;
}

/* Groups packets `from` to `count` - 1 of `vectors` into messages to `name` (NULL: a connected
 * socket): runs when `gso`, else one message per packet. How many messages. */
static inline int udp_runs_group(const struct udp_runs *runs, struct iovec *vectors, int from,
                                 int count, int gso, void *name, socklen_t name_length)
{
    int made = 0;
    for (int i = from; i < count;) {
        size_t size = vectors[i].iov_len;
        int n = 1;
        size_t total = size;
        if (gso && size <= UDP_RUNS_MAX_SEGMENT)
            while (i + n < count && n < UDP_RUNS_MAX_SEGMENTS &&
                   vectors[i + n - 1].iov_len == size && vectors[i + n].iov_len <= size &&
                   total + vectors[i + n].iov_len <= UDP_RUNS_MAX_BYTES)
                total += vectors[i + n++].iov_len;
        struct msghdr *m = &runs->messages[made].msg_hdr;
        memset(m, 0, sizeof *m);
        m->msg_name = name;
        m->msg_namelen = name == NULL ? 0 : name_length;
        m->msg_iov = &vectors[i];
        m->msg_iovlen = (size_t)n;
        if (n > 1) {
            struct cmsghdr *c = (struct cmsghdr *)runs->controls[made];
            m->msg_control = c;
            m->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t segment = (uint16_t)size;
            memcpy(CMSG_DATA(c), &segment, sizeof segment);
        }
        runs->first[made] = i;
        runs->count[made] = n;
        made++;
        i += n;
    }
    return made;
}

/* Whether a message of `packets` refused with `error` says the socket takes no segmentation
 * offload (EIO, EINVAL: a kernel or route without it): it is written packet by packet from
 * then on. */
static inline int udp_runs_refused(int packets, int error)
{
    return packets > 1 && (error == EIO || error == EINVAL);
}

#endif
