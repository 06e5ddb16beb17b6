package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../provider-api/include
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Operation numbers and emit codes of polysync_provider.h.
const (
	opDiscover = C.POLYSYNC_OP_DISCOVER
	opRun      = C.POLYSYNC_OP_RUN
	opWatch    = C.POLYSYNC_OP_WATCH

	emitItem  = C.POLYSYNC_EMIT_ITEM
	emitDone  = C.POLYSYNC_EMIT_DONE
	emitError = C.POLYSYNC_EMIT_ERROR
)

// report is one emit(): an item, or the call's terminal result or error.
type report struct {
	code uint32
	body []byte
}

// Calls in flight, by call id. emit() arrives on the plugin's threads.
var (
	calls   sync.Map // uint64 -> chan report
	nextID  atomic.Uint64
	errCode = errors.New("plugin error")
)

//export goEmit
func goEmit(ctx unsafe.Pointer, callID C.uint64_t, code C.uint32_t, body *C.uint8_t, n C.size_t) {
	ch, ok := calls.Load(uint64(callID))
	if !ok {
		return
	}
	// The body is valid only during the callback: copy it.
	ch.(chan report) <- report{code: uint32(code), body: C.GoBytes(unsafe.Pointer(body), C.int(n))}
}

// Plugin is one loaded library and one connection instance of it.
type Plugin struct {
	table    *C.PolysyncPluginTable
	instance unsafe.Pointer
}

// Load opens the library and checks its table's ABI version and size.
func Load(path string) (*Plugin, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	table := C.shim_load(cpath, &cerr)
	if table == nil {
		return nil, fmt.Errorf("loading %s: %s", path, C.GoString(cerr))
	}
	if table.abi_version != C.POLYSYNC_ABI_VERSION || uintptr(table.size) < unsafe.Sizeof(*table) {
		return nil, fmt.Errorf("%s: ABI %d, table of %d bytes; this host speaks ABI 1", path, table.abi_version, table.size)
	}
	return &Plugin{table: table}, nil
}

// Manifest is the plugin's self-description, as JSON.
func (p *Plugin) Manifest() []byte {
	buf := C.shim_manifest(p.table)
	defer C.shim_free(p.table, buf)
	return C.GoBytes(unsafe.Pointer(buf.ptr), C.int(buf.len))
}

// Create makes the connection instance from its settings.
func (p *Plugin) Create(settings any) error {
	config, _ := json.Marshal(settings)
	cconfig := C.CBytes(config)
	defer C.free(cconfig)
	var errBuf C.PolysyncBuf
	if C.shim_create(p.table, (*C.uint8_t)(cconfig), C.size_t(len(config)), &p.instance, &errBuf) != C.POLYSYNC_STATUS_OK {
		defer C.shim_free(p.table, errBuf)
		return fmt.Errorf("create: %s", C.GoBytes(unsafe.Pointer(errBuf.ptr), C.int(errBuf.len)))
	}
	return nil
}

// Destroy ends the instance; outstanding calls end Cancelled.
func (p *Plugin) Destroy() {
	C.shim_destroy(p.table, p.instance)
}

// Call starts op with request and hands every item to onItem; it returns
// the terminal body (DONE) or an error carrying the error JSON.
func (p *Plugin) Call(op uint32, request any, onItem func([]byte)) ([]byte, error) {
	body, _ := json.Marshal(request)
	id := nextID.Add(1)
	ch := make(chan report, 64)
	calls.Store(id, ch)
	defer calls.Delete(id)
	creq := C.CBytes(body)
	defer C.free(creq)
	// The plugin may emit from inside start(): the channel is already there.
	if s := C.shim_start(p.table, p.instance, C.uint64_t(id), C.uint32_t(op), (*C.uint8_t)(creq), C.size_t(len(body))); s != C.POLYSYNC_STATUS_OK {
		return nil, fmt.Errorf("start of operation %d refused with status %d", op, s)
	}
	for r := range ch {
		switch r.code {
		case emitItem:
			if onItem != nil {
				onItem(r.body)
			}
		case emitDone:
			return r.body, nil
		case emitError:
			return nil, fmt.Errorf("%w: %s", errCode, r.body)
		}
	}
	return nil, errors.New("unreachable")
}
