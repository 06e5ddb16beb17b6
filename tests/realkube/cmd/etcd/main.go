// Command etcd is the etcd server at the version Kubernetes pins, built from
// go.etcd.io/etcd/server/v3 so the control plane needs no downloaded binary
// (Debian's etcd is older than Kubernetes supports).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
