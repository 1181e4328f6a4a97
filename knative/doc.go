// Package knative holds tide's deployment (kustomize directories, no Go code) and the
// tests that check it offline, the way a cluster would: they render the push-mode
// root and the pull overlay with kustomize, validate every object against the
// upstream CRD schemas in ../shared/schemas (unknown fields rejected, as `kubectl
// apply --validate=strict` does), allow only the annotation keys Knative and KEDA
// read, resolve every ConfigMap, Secret, Service, Deployment and sink reference, and
// load each workload's environment through tide's own configuration code.
package knative
