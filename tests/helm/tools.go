//go:build tools

// Package tools pins helm, built from its Go module for the chart's tests
// (build.sh), as the real control plane is.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
