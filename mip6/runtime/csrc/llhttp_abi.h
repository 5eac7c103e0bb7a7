/* The part of llhttp's C interface (release 9.3 and later: the one httptools 0.7 and later
 * builds into its extension) the relay uses (relay.c). The relay runs the parser httptools
 * already loaded, called through the addresses of its exported functions (dfast_relay_parser),
 * so there is one copy of llhttp in the process and none in this repository; these are our
 * declarations of its structures' layout, and relay_parser_check() holds them to the loaded
 * code before any relay starts (a layout that differs leaves every exchange to Python). */

#ifndef LLHTTP_ABI_H
#define LLHTTP_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef struct llhttp__internal_s llhttp_t;
typedef struct llhttp_settings_s llhttp_settings_t;
typedef int (*llhttp_data_cb)(llhttp_t *, const char *at, size_t length);
typedef int (*llhttp_cb)(llhttp_t *);

struct llhttp__internal_s {
    int32_t _index;
    void *_span_pos0;
    void *_span_cb0;
    int32_t error;
    const char *reason;
    const char *error_pos;
    void *data; /* ours: the relay */
    void *_current;
    uint64_t content_length;
    uint8_t type;
    uint8_t method;
    uint8_t http_major;
    uint8_t http_minor;
    uint8_t header_state;
    uint16_t lenient_flags;
    uint8_t upgrade;
    uint8_t finish;
    uint16_t flags;
    uint16_t status_code;
    uint8_t initial_message_completed;
    void *settings;
};

struct llhttp_settings_s {
    llhttp_cb on_message_begin;
    llhttp_data_cb on_protocol;
    llhttp_data_cb on_url;
    llhttp_data_cb on_status;
    llhttp_data_cb on_method;
    llhttp_data_cb on_version;
    llhttp_data_cb on_header_field;
    llhttp_data_cb on_header_value;
    llhttp_data_cb on_chunk_extension_name;
    llhttp_data_cb on_chunk_extension_value;
    llhttp_cb on_headers_complete; /* 0: on; 1: the message has no body */
    llhttp_data_cb on_body;
    llhttp_cb on_message_complete;
    llhttp_cb on_protocol_complete;
    llhttp_cb on_url_complete;
    llhttp_cb on_status_complete;
    llhttp_cb on_method_complete;
    llhttp_cb on_version_complete;
    llhttp_cb on_header_field_complete;
    llhttp_cb on_header_value_complete;
    llhttp_cb on_chunk_extension_name_complete;
    llhttp_cb on_chunk_extension_value_complete;
    llhttp_cb on_chunk_header;
    llhttp_cb on_chunk_complete;
    llhttp_cb on_reset;
};

enum {
    LLHTTP_OK = 0,      /* HPE_OK */
    LLHTTP_PAUSED = 21, /* HPE_PAUSED: a callback paused the parser */
    LLHTTP_REQUEST = 1, /* HTTP_REQUEST */
    LLHTTP_RESPONSE = 2 /* HTTP_RESPONSE */
};

/* llhttp's methods (llhttp_method_t) the relay tells apart */
enum {
    LLHTTP_DELETE = 0,
    LLHTTP_GET = 1,
    LLHTTP_HEAD = 2,
    LLHTTP_PUT = 4,
    LLHTTP_CONNECT = 5,
    LLHTTP_OPTIONS = 6,
    LLHTTP_TRACE = 7
};

typedef void (*llhttp_init_fn)(llhttp_t *, int type, const llhttp_settings_t *);
typedef void (*llhttp_settings_init_fn)(llhttp_settings_t *);
typedef int (*llhttp_execute_fn)(llhttp_t *, const char *, size_t);
typedef int (*llhttp_finish_fn)(llhttp_t *);
typedef void (*llhttp_resume_fn)(llhttp_t *);
typedef int (*llhttp_parser_query_fn)(const llhttp_t *);

#endif
