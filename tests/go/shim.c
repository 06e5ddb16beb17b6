// The C side of the Go host: calls through the plugin's function table
// (Go cannot call C function pointers) and the emit callback that hands
// every report to Go.
#include <dlfcn.h>
#include <stdlib.h>

#include "polysync_provider.h"
#include "shim.h"
#include "_cgo_export.h"

static void emit_shim(void *ctx, uint64_t call_id, uint32_t code, const uint8_t *body, size_t len) {
    goEmit(ctx, call_id, code, (uint8_t *)body, len);
}

const PolysyncPluginTable *shim_load(const char *path, const char **error) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        *error = dlerror();
        return NULL;
    }
    PolysyncEntryFn entry = (PolysyncEntryFn)dlsym(lib, POLYSYNC_ENTRY_SYMBOL);
    if (!entry) {
        *error = "no polysync_provider_v1 symbol: not a polysync plugin of ABI 1";
        return NULL;
    }
    return entry();
}

PolysyncBuf shim_manifest(const PolysyncPluginTable *t) { return t->manifest(); }

void shim_free(const PolysyncPluginTable *t, PolysyncBuf b) { t->free_buf(b); }

uint32_t shim_create(const PolysyncPluginTable *t, const uint8_t *config, size_t len, void **instance,
                     PolysyncBuf *error) {
    static PolysyncHostCallbacks host;
    host.size = sizeof(PolysyncHostCallbacks);
    host.max_log_level = POLYSYNC_LOG_OFF;
    host.ctx = NULL;
    host.emit = emit_shim;
    host.log = NULL;
    return t->create(config, len, &host, instance, error);
}

uint32_t shim_start(const PolysyncPluginTable *t, void *instance, uint64_t call_id, uint32_t op,
                    const uint8_t *request, size_t len) {
    return t->start(instance, call_id, op, request, len);
}

void shim_destroy(const PolysyncPluginTable *t, void *instance) { t->destroy(instance); }
