/* A minimal C host: proves the header is enough to drive a real plugin.
 * Usage: host PLUGIN.so CONFIG_JSON ENTRY
 * Runs ENTRY with GREETING="from C" and watches it to its end.
 * Prints one line per step: "<step> <code> <body>". */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polysync_provider.h"

_Static_assert(sizeof(PolysyncPluginTable) == EXPECT_TABLE_SIZE, "table size differs from Rust");
_Static_assert(sizeof(PolysyncHostCallbacks) == EXPECT_CALLBACKS_SIZE, "callbacks size differs from Rust");
_Static_assert(sizeof(PolysyncBuf) == EXPECT_BUF_SIZE, "buf size differs from Rust");
_Static_assert(offsetof(PolysyncPluginTable, free_buf) == EXPECT_FREE_BUF_OFFSET, "free_buf offset differs");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static uint64_t done_id;
static uint32_t done_code;
static char done_body[65536];
static int items;
static char last_item[65536];

static void on_emit(void *ctx, uint64_t id, uint32_t code, const uint8_t *body, size_t len) {
    (void)ctx;
    pthread_mutex_lock(&lock);
    if (code == POLYSYNC_EMIT_ITEM) {
        items++;
        size_t n = len < sizeof(last_item) - 1 ? len : sizeof(last_item) - 1;
        memcpy(last_item, body, n);
        last_item[n] = 0;
    } else {
        size_t n = len < sizeof(done_body) - 1 ? len : sizeof(done_body) - 1;
        memcpy(done_body, body, n);
        done_body[n] = 0;
        done_code = code;
        done_id = id;
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
}

/* The lock is not held across start(): the plugin may emit from inside it. */
static uint32_t call(const PolysyncPluginTable *t, void *inst, uint64_t id, uint32_t op, const char *req) {
    pthread_mutex_lock(&lock);
    items = 0;
    pthread_mutex_unlock(&lock);
    uint32_t s = t->start(inst, id, op, (const uint8_t *)req, strlen(req));
    if (s != POLYSYNC_STATUS_OK) return 100 + s;
    pthread_mutex_lock(&lock);
    while (done_id != id) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    return done_code;
}

/* Pull "run_id":"..." out of a RunHandle without a JSON library. */
static void run_id_of(const char *json, char *out, size_t cap) {
    const char *p = strstr(json, "\"run_id\":\"");
    out[0] = 0;
    if (!p) return;
    p += 10;
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < cap) { out[i] = p[i]; i++; }
    out[i] = 0;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: host PLUGIN CONFIG ENTRY\n"); return 2; }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
    PolysyncEntryFn entry = (PolysyncEntryFn)dlsym(lib, POLYSYNC_ENTRY_SYMBOL);
    if (!entry) { fprintf(stderr, "no entry point\n"); return 4; }
    const PolysyncPluginTable *t = entry();
    if (t->abi_version != POLYSYNC_ABI_VERSION || t->size < sizeof(PolysyncPluginTable)) return 5;

    PolysyncBuf m = t->manifest();
    printf("manifest 0 %.*s\n", (int)m.len, (const char *)m.ptr);
    t->free_buf(m);

    PolysyncHostCallbacks host = {sizeof(PolysyncHostCallbacks), POLYSYNC_LOG_OFF, NULL, on_emit, NULL};
    void *inst = NULL;
    PolysyncBuf err = {0, 0, 0};
    uint32_t s = t->create((const uint8_t *)argv[2], strlen(argv[2]), &host, &inst, &err);
    if (s != POLYSYNC_STATUS_OK) {
        printf("create %u %.*s\n", s, (int)err.len, (const char *)err.ptr);
        t->free_buf(err);
        return 6;
    }

    uint32_t c = call(t, inst, 1, POLYSYNC_OP_DISCOVER, "{\"page_size\":2}");
    printf("discover %u %s\n", c, done_body);
    char req[512];
    snprintf(req, sizeof req,
             "{\"external_id\":\"%s\",\"parameters\":{\"GREETING\":\"from C\"},\"idempotency_key\":\"c-host-1\"}",
             argv[3]);
    c = call(t, inst, 2, POLYSYNC_OP_RUN, req);
    printf("run %u %s\n", c, done_body);
    char run_id[256];
    run_id_of(done_body, run_id, sizeof run_id);
    snprintf(req, sizeof req, "{\"run_id\":\"%s\"}", run_id);
    c = call(t, inst, 3, POLYSYNC_OP_POLL, req);
    printf("poll %u %s\n", c, done_body);
    snprintf(req, sizeof req, "{\"run_ids\":[\"%s\"]}", run_id);
    c = call(t, inst, 4, POLYSYNC_OP_WATCH, req);
    printf("watch %u items=%d\n", c, items);
    printf("last %s\n", last_item);
    c = call(t, inst, 5, 999, "{}");
    printf("unknown %u %s\n", c, done_body);
    t->destroy(inst);
    return 0;
}
