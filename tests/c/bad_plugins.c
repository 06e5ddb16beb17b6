/* Libraries the host must refuse, each built with one -D:
 *   WRONG_TABLE_ABI  exports polysync_provider_v1 but its table says ABI 2
 *   V2_ONLY          exports only polysync_provider_v2
 *   NO_SYMBOL        exports nothing polysync knows
 *   API_2            ABI 1, but the manifest says api_version 2.0.0
 *   BAD_MANIFEST     ABI 1, but the manifest is not JSON
 *   API_1_2          ABI 1, api_version 1.2.0: an older minor, which loads
 *   NAME             the manifest's plugin name (API_2 / BAD_MANIFEST / API_1_2)
 * The tables never get past the version checks, so their other entries are
 * stubs that abort if called. */
#include <stdlib.h>
#include <string.h>

#include "polysync_provider.h"

#if defined(NO_SYMBOL)
int not_a_polysync_plugin(void) { return 42; }
#else

static PolysyncBuf manifest(void) {
#if defined(BAD_MANIFEST)
    static const char json[] = "this is not json";
#elif defined(API_1_2)
    static const char json[] = "{\"name\":\"" NAME "\",\"version\":\"0.1.0\",\"api_version\":\"1.2.0\",\"description\":\"built for API 1.2\"}";
#else
    static const char json[] = "{\"name\":\"" NAME "\",\"version\":\"0.1.0\",\"api_version\":\"2.0.0\"}";
#endif
    PolysyncBuf b = {(uint8_t *)json, strlen(json), 0};
    return b;
}
static void free_buf(PolysyncBuf b) { (void)b; }
static uint32_t create(const uint8_t *c, size_t n, const PolysyncHostCallbacks *h, void **i, PolysyncBuf *e) {
    (void)c; (void)n; (void)h; (void)i; (void)e;
    abort();
}
static void destroy(void *i) { (void)i; abort(); }
static uint32_t start(void *i, uint64_t id, uint32_t op, const uint8_t *r, size_t n) {
    (void)i; (void)id; (void)op; (void)r; (void)n;
    abort();
}
static void abort_call(void *i, uint64_t id) { (void)i; (void)id; abort(); }

#if defined(WRONG_TABLE_ABI)
#define ABI 2u
#else
#define ABI POLYSYNC_ABI_VERSION
#endif

static const PolysyncPluginTable table = {ABI, sizeof(PolysyncPluginTable), manifest, create, destroy, start,
                                          abort_call, free_buf};

#if defined(V2_ONLY)
const PolysyncPluginTable *polysync_provider_v2(void) { return &table; }
#else
const PolysyncPluginTable *polysync_provider_v1(void) { return &table; }
#endif
#endif
