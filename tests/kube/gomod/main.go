// Command etcd is etcd's own server main (go.etcd.io/etcd/server/v3/etcdmain) at the version
// k8s.io/kubernetes itself requires, so the test tier runs the etcd the API server was built against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
