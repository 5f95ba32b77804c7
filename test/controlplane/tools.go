//go:build tools

// Package controlplane pins the Kubernetes and etcd commands that the test rig
// builds: kube-apiserver, kube-controller-manager and etcd, at the versions
// that Kubernetes v1.37.2 itself pins.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
