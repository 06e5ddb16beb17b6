#ifndef POLYSYNC_GO_SHIM_H
#define POLYSYNC_GO_SHIM_H

#include "polysync_provider.h"

const PolysyncPluginTable *shim_load(const char *path, const char **error);
PolysyncBuf shim_manifest(const PolysyncPluginTable *t);
void shim_free(const PolysyncPluginTable *t, PolysyncBuf b);
uint32_t shim_create(const PolysyncPluginTable *t, const uint8_t *config, size_t len, void **instance,
                     PolysyncBuf *error);
uint32_t shim_start(const PolysyncPluginTable *t, void *instance, uint64_t call_id, uint32_t op,
                    const uint8_t *request, size_t len);
void shim_destroy(const PolysyncPluginTable *t, void *instance);

#endif
