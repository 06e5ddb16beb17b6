/*
 * polysync provider plugin ABI, major version 1.
 *
 * Hand-written to match provider-api/src/abi/mod.rs; the test
 * tests/tests/c_host.rs compiles a C host against this header, checks the
 * layout against the Rust definitions and drives a real plugin with it.
 *
 * A plugin is a dynamic library that exports polysync_provider_v1(), which
 * returns a pointer to a static PolysyncPluginTable. Payloads are UTF-8 JSON
 * in the shapes documented in README.md ("The plugin contract").
 *
 * Calls never block. start() returns at once; the plugin then reports
 * through HostCallbacks.emit, from its own threads (or from inside start()),
 * zero or more POLYSYNC_EMIT_ITEM then exactly one terminal code:
 * POLYSYNC_EMIT_DONE (body = result JSON; empty for streaming operations)
 * or POLYSYNC_EMIT_ERROR (body = {"kind": ..., "message": ...}).
 * abort_call() ends a call early with an error of kind "Cancelled".
 *
 * Memory: a body passed to a callback is valid only during the callback.
 * A PolysyncBuf returned by the plugin belongs to the plugin; give it back
 * with free_buf(). The table only ever grows: check `size` before using a
 * field added after the ones below.
 */
#ifndef POLYSYNC_PROVIDER_H
#define POLYSYNC_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POLYSYNC_ABI_VERSION 1u
#define POLYSYNC_ENTRY_SYMBOL "polysync_provider_v1"

/* emit() codes */
#define POLYSYNC_EMIT_ITEM 1u
#define POLYSYNC_EMIT_DONE 2u
#define POLYSYNC_EMIT_ERROR 3u

/* create() / start() results */
#define POLYSYNC_STATUS_OK 0u
#define POLYSYNC_STATUS_ERROR 1u        /* create: *error_out holds an error JSON */
#define POLYSYNC_STATUS_BAD_ARGUMENT 2u /* a null pointer or impossible size */
#define POLYSYNC_STATUS_PANIC 3u        /* the plugin failed internally; nothing will be emitted */

/* start() operations */
#define POLYSYNC_OP_DISCOVER 1u    /* DiscoverRequest -> DiscoverPage */
#define POLYSYNC_OP_RUN 2u         /* RunRequest -> RunHandle */
#define POLYSYNC_OP_POLL 3u        /* PollRequest -> RunStatus */
#define POLYSYNC_OP_WATCH 4u       /* WatchRequest -> items: RunStatus */
#define POLYSYNC_OP_CANCEL 5u      /* CancelRequest -> CancelOutcome */
#define POLYSYNC_OP_MONITOR_URL 6u /* UrlRequest -> MonitorUrl */
#define POLYSYNC_OP_LOGS 7u        /* LogRequest -> items: LogChunk */
#define POLYSYNC_OP_EVENTS 8u      /* EventsRequest -> items: RunEvent */
#define POLYSYNC_OP_LIST_CLUSTERS 9u /* ClustersRequest -> ClustersPage (API 1.2) */

/* log levels */
#define POLYSYNC_LOG_OFF 0u
#define POLYSYNC_LOG_ERROR 1u
#define POLYSYNC_LOG_WARN 2u
#define POLYSYNC_LOG_INFO 3u
#define POLYSYNC_LOG_DEBUG 4u
#define POLYSYNC_LOG_TRACE 5u

/* Must be thread-safe, return quickly, and not call back into the plugin. */
typedef void (*PolysyncEmitFn)(void *ctx, uint64_t call_id, uint32_t code, const uint8_t *body, size_t len);

typedef void (*PolysyncLogFn)(void *ctx, uint32_t level, const uint8_t *target, size_t target_len,
                              const uint8_t *message, size_t message_len);

typedef struct PolysyncHostCallbacks {
    uint32_t size;          /* sizeof(PolysyncHostCallbacks) */
    uint32_t max_log_level; /* POLYSYNC_LOG_* */
    void *ctx;              /* passed back to every callback; unused after destroy() returns */
    PolysyncEmitFn emit;    /* required */
    PolysyncLogFn log;      /* may be NULL */
} PolysyncHostCallbacks;

typedef struct PolysyncBuf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} PolysyncBuf;

typedef struct PolysyncPluginTable {
    uint32_t abi_version; /* POLYSYNC_ABI_VERSION */
    uint32_t size;        /* sizeof(PolysyncPluginTable) as the plugin knows it */
    /* The manifest JSON; free with free_buf. */
    PolysyncBuf (*manifest)(void);
    /* config: a JSON object of connection settings. */
    uint32_t (*create)(const uint8_t *config, size_t config_len, const PolysyncHostCallbacks *host,
                       void **instance_out, PolysyncBuf *error_out);
    /* Outstanding calls end Cancelled; no callback with ctx afterwards. */
    void (*destroy)(void *instance);
    /* call_id: chosen by the host, unique per instance. On STATUS_OK exactly
     * one terminal follows; otherwise nothing does. */
    uint32_t (*start)(void *instance, uint64_t call_id, uint32_t op, const uint8_t *request, size_t len);
    /* Unknown or finished call ids are ignored. */
    void (*abort_call)(void *instance, uint64_t call_id);
    void (*free_buf)(PolysyncBuf buf);
} PolysyncPluginTable;

typedef const PolysyncPluginTable *(*PolysyncEntryFn)(void);

#ifdef __cplusplus
}
#endif

#endif /* POLYSYNC_PROVIDER_H */
