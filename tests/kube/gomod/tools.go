//go:build tools

// Keeps k8s.io/kubernetes/cmd/kube-apiserver in the module graph for go mod tidy.
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"
