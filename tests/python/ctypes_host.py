"""A host written in Python with nothing but ctypes and the C header.

Usage: ctypes_host.py PLUGIN HEADER

Reads the ABI's constants from polysync_provider.h, declares its structs,
loads the plugin, and runs discover -> run -> poll (and watch to the end).
Prints one JSON line per step and exits non-zero on any deviation from the
contract, so the Rust test that runs it can fail.
"""

import ctypes
import json
import re
import sys
import threading


def header_constants(path):
    consts = {}
    with open(path, encoding="utf-8") as f:
        for m in re.finditer(r"#define\s+(POLYSYNC_\w+)\s+(\d+)u?\b", f.read()):
            consts[m.group(1)] = int(m.group(2))
    return consts


EMIT_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                           ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint8),
                          ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


class HostCallbacks(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("max_log_level", ctypes.c_uint32), ("ctx", ctypes.c_void_p),
                ("emit", EMIT_FN), ("log", LOG_FN)]


class Buf(ctypes.Structure):
    _fields_ = [("ptr", ctypes.POINTER(ctypes.c_uint8)), ("len", ctypes.c_size_t), ("cap", ctypes.c_size_t)]


class PluginTable(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("manifest", ctypes.CFUNCTYPE(Buf)),
        ("create", ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(HostCallbacks),
                                    ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Buf))),
        ("destroy", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
        ("start", ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                                   ctypes.c_char_p, ctypes.c_size_t)),
        ("abort_call", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)),
        ("free_buf", ctypes.CFUNCTYPE(None, Buf)),
    ]


class Host:
    def __init__(self, plugin, consts):
        self.c = consts
        lib = ctypes.CDLL(plugin)
        entry = getattr(lib, "polysync_provider_v%d" % consts["POLYSYNC_ABI_VERSION"])
        entry.restype = ctypes.POINTER(PluginTable)
        self.t = entry().contents
        if self.t.abi_version != consts["POLYSYNC_ABI_VERSION"] or self.t.size < ctypes.sizeof(PluginTable):
            raise SystemExit("ABI mismatch")
        self.cond = threading.Condition()
        self.replies = {}
        # Keep the callbacks alive as long as the instance.
        self.emit = EMIT_FN(self.on_emit)
        self.log = LOG_FN(lambda *a: None)
        self.next_id = 1

    def on_emit(self, ctx, call_id, code, body, length):
        data = ctypes.string_at(body, length) if length else b""
        with self.cond:
            self.replies.setdefault(call_id, []).append((code, data))
            self.cond.notify_all()

    def manifest(self):
        buf = self.t.manifest()
        text = ctypes.string_at(buf.ptr, buf.len)
        self.t.free_buf(buf)
        return json.loads(text)

    def create(self, config):
        self.host = HostCallbacks(ctypes.sizeof(HostCallbacks), self.c["POLYSYNC_LOG_OFF"], None, self.emit, self.log)
        self.inst = ctypes.c_void_p()
        err = Buf()
        raw = json.dumps(config).encode()
        status = self.t.create(raw, len(raw), ctypes.byref(self.host), ctypes.byref(self.inst), ctypes.byref(err))
        if status != self.c["POLYSYNC_STATUS_OK"]:
            raise SystemExit("create failed: %s" % ctypes.string_at(err.ptr, err.len))

    def call(self, op, request, timeout=30):
        call_id = self.next_id
        self.next_id += 1
        raw = json.dumps(request).encode()
        status = self.t.start(self.inst, call_id, op, raw, len(raw))
        if status != self.c["POLYSYNC_STATUS_OK"]:
            raise SystemExit("start refused: %d" % status)
        terminal = (self.c["POLYSYNC_EMIT_DONE"], self.c["POLYSYNC_EMIT_ERROR"])
        with self.cond:
            ok = self.cond.wait_for(lambda: any(c in terminal for c, _ in self.replies.get(call_id, [])), timeout)
            if not ok:
                raise SystemExit("no terminal for call %d" % call_id)
            replies = list(self.replies[call_id])
        terminals = [r for r in replies if r[0] in terminal]
        if len(terminals) != 1 or replies[-1][0] not in terminal:
            raise SystemExit("call %d broke the one-terminal rule: %r" % (call_id, replies))
        items = [json.loads(b) for c, b in replies if c == self.c["POLYSYNC_EMIT_ITEM"]]
        code, body = replies[-1]
        return code, (json.loads(body) if body else None), items


def main():
    plugin, header, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    c = header_constants(header)
    host = Host(plugin, c)
    manifest = host.manifest()
    print(json.dumps({"step": "manifest", "name": manifest["name"], "api_version": manifest["api_version"]}))
    host.create(settings)

    code, page, _ = host.call(c["POLYSYNC_OP_DISCOVER"], {"page_size": 5})
    assert code == c["POLYSYNC_EMIT_DONE"], page
    print(json.dumps({"step": "discover", "entries": [e["external_id"] for e in page["entries"]],
                      "next": page.get("next_page_token")}))

    request = {"external_id": page["entries"][0]["external_id"], "parameters": {"GREETING": "from python"},
               "idempotency_key": "python-ctypes-1"}
    code, handle, _ = host.call(c["POLYSYNC_OP_RUN"], request)
    assert code == c["POLYSYNC_EMIT_DONE"], handle
    print(json.dumps({"step": "run", "run_id": handle["run_id"]}))

    code, status, _ = host.call(c["POLYSYNC_OP_POLL"], {"run_id": handle["run_id"]})
    assert code == c["POLYSYNC_EMIT_DONE"], status
    print(json.dumps({"step": "poll", "state": status["state"]}))

    code, _, statuses = host.call(c["POLYSYNC_OP_WATCH"], {"run_ids": [handle["run_id"]]})
    assert code == c["POLYSYNC_EMIT_DONE"]
    print(json.dumps({"step": "watch", "states": [s["state"] for s in statuses]}))

    code, _, chunks = host.call(c["POLYSYNC_OP_LOGS"], {"run_id": handle["run_id"]})
    assert code == c["POLYSYNC_EMIT_DONE"]
    print(json.dumps({"step": "logs", "text": "".join(chunk["text"] for chunk in chunks)}))

    code, err, _ = host.call(c["POLYSYNC_OP_POLL"], {"run_id": "no-such-run"})
    assert code == c["POLYSYNC_EMIT_ERROR"], err
    print(json.dumps({"step": "poll-unknown", "kind": err["kind"]}))

    host.t.destroy(host.inst)
    print(json.dumps({"step": "done"}))


if __name__ == "__main__":
    main()
