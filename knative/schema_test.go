package knative

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// crdFiles are the upstream CRDs (see ../shared/schemas/README.md for where each
// comes from): every version each serves is a schema the rendered objects of that
// group, version and kind must satisfy.
var crdFiles = []string{
	"knative-service-crd.yaml",
	"kafkasource-crd.yaml",
	"keda-scaledobject-crd.yaml",
	"keda-triggerauthentication-crd.yaml",
}

// schemaSet validates objects by apiVersion and kind.
type schemaSet struct {
	byGVK    map[string]*jsonschema.Schema // "group/version/Kind"
	metadata *jsonschema.Schema
}

var (
	schemasOnce sync.Once
	schemas     *schemaSet
	schemasErr  error
)

// loadSchemas compiles the CRD schemas and the hand-written ones for the kinds that
// have no CRD (core kinds, and KafkaSink, whose CRD is not in ../shared/schemas).
func loadSchemas(t testing.TB) *schemaSet {
	t.Helper()
	dir := schemasDir(t)
	schemasOnce.Do(func() { schemas, schemasErr = compileSchemas(dir) })
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	return schemas
}

func compileSchemas(dir string) (*schemaSet, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	s := &schemaSet{byGVK: map[string]*jsonschema.Schema{}}
	var container any // the Knative Service's container schema, reused for Deployments
	for _, f := range crdFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		var crd map[string]any
		if err := decodeYAML(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		group, kind := str(crd, "spec", "group"), str(crd, "spec", "names", "kind")
		for _, v := range list(crd, "spec", "versions") {
			if served, _ := get(v, "served").(bool); !served {
				continue
			}
			version := str(v, "name")
			raw := get(v, "schema", "openAPIV3Schema")
			if raw == nil {
				return nil, fmt.Errorf("%s %s: no openAPIV3Schema", f, version)
			}
			if kind == "Service" && container == nil {
				container = get(raw, "properties", "spec", "properties", "template", "properties", "spec", "properties", "containers", "items")
			}
			gvk := group + "/" + version + "/" + kind
			sch, err := compile(c, "mem:///crd/"+gvk, strictify(raw))
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f, version, err)
			}
			s.byGVK[gvk] = sch
		}
	}
	if container == nil {
		return nil, errors.New("knative-service-crd.yaml: no container schema at spec.template.spec.containers.items")
	}
	for gvk, src := range coreSchemas {
		var doc map[string]any
		if err := decodeJSON([]byte(src), &doc); err != nil {
			return nil, fmt.Errorf("schema of %s: %w", gvk, err)
		}
		if defs, ok := doc["$defs"].(map[string]any); ok {
			defs["container"] = strictify(container)
		}
		sch, err := compile(c, "mem:///core/"+gvk, doc)
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", gvk, err)
		}
		s.byGVK[gvk] = sch
	}
	var meta any
	if err := decodeJSON([]byte(metadataSchema), &meta); err != nil {
		return nil, err
	}
	sch, err := compile(c, "mem:///core/metadata", meta)
	if err != nil {
		return nil, err
	}
	s.metadata = sch
	return s, nil
}

func compile(c *jsonschema.Compiler, url string, doc any) (*jsonschema.Schema, error) {
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// strictify turns a CRD's structural schema into a JSON Schema that rejects unknown
// fields, as the API server does with strict field validation (kubectl's default):
// every object schema that lists properties and does not preserve unknown fields gets
// additionalProperties: false. The x-kubernetes-* extensions are dropped.
func strictify(v any) any {
	switch n := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n)+1)
		for k, c := range n {
			switch {
			case strings.HasPrefix(k, "x-kubernetes-"):
				// dropped
			case k == "properties" || k == "patternProperties" || k == "$defs" || k == "definitions":
				// maps of schemas: strictify each value, not the map itself
				props, _ := c.(map[string]any)
				m := make(map[string]any, len(props))
				for pk, pv := range props {
					m[pk] = strictify(pv)
				}
				out[k] = m
			case k == "default" || k == "enum" || k == "example" || k == "const":
				out[k] = c // values, not schemas
			default:
				out[k] = strictify(c)
			}
		}
		preserve, _ := n["x-kubernetes-preserve-unknown-fields"].(bool)
		_, hasProps := n["properties"]
		_, hasAdditional := n["additionalProperties"]
		if hasProps && !preserve && !hasAdditional {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, c := range n {
			out[i] = strictify(c)
		}
		return out
	}
	return v
}

// validate checks every object against the schema of its group, version and kind,
// its metadata against Kubernetes' naming rules, and what the CRDs say only in CEL.
func (s *schemaSet) validate(objs []object) error {
	var errs []error
	for _, o := range objs {
		gv := o.apiVersion()
		if !strings.Contains(gv, "/") {
			gv = "/" + gv // the core group
		}
		sch, ok := s.byGVK[gv+"/"+o.kind()]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no schema for %s %s (add its CRD to ../shared/schemas or a core schema here)", o.id(), o.apiVersion(), o.kind()))
			continue
		}
		if err := sch.Validate(map[string]any(o)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.id(), err))
		}
		if err := s.metadata.Validate(get(o, "metadata")); err != nil {
			errs = append(errs, fmt.Errorf("%s metadata: %w", o.id(), err))
		}
		errs = append(errs, celRules(o)...)
	}
	return errors.Join(errs...)
}

// celRules checks the x-kubernetes-validations (CEL) rules of the CRDs, which a
// JSON Schema validator cannot: keda-scaledobject-crd.yaml requires
// minReplicaCount <= maxReplicaCount (max defaulting to 100).
func celRules(o object) []error {
	if o.group() != "keda.sh" || o.kind() != "ScaledObject" {
		return nil
	}
	minR, hasMin := number(get(o, "spec", "minReplicaCount"))
	maxR, hasMax := number(get(o, "spec", "maxReplicaCount"))
	if !hasMax {
		maxR = 100
	}
	if hasMin && minR > maxR {
		return []error{fmt.Errorf("%s: minReplicaCount %d > maxReplicaCount %d", o.id(), minR, maxR)}
	}
	return nil
}

// number returns v as an integer: a decoded json.Number, or an int a test set.
func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	}
	return 0, false
}

// metadataSchema is the part of ObjectMeta the manifests may set: a name that is a
// DNS label (Knative Services become host names, so 63 characters at most), labels
// and annotations of strings. Anything else (a misspelled "annotation:") is an
// error.
const metadataSchema = `{
  "type": "object",
  "required": ["name"],
  "additionalProperties": false,
  "properties": {
    "name": {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
    "namespace": {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
  }
}`

// coreSchemas cover the kinds without a CRD in ../shared/schemas: the subset of each
// API that tide's manifests use, unknown fields rejected. Deployments reuse the
// container schema of the Knative Service CRD (a Kubernetes Container, as Knative
// allows it), so their containers are checked as strictly as the Services'.
// KafkaSink follows knative-extensions/eventing-kafka-broker
// control-plane/config/eventing-kafka-broker/100-sink/100-kafka-sink.yaml.
var coreSchemas = map[string]string{
	"/v1/Namespace": `{
  "type": "object", "additionalProperties": false, "required": ["apiVersion", "kind", "metadata"],
  "properties": {"apiVersion": {"const": "v1"}, "kind": {"const": "Namespace"}, "metadata": {"type": "object"}}
}`,
	"/v1/ConfigMap": `{
  "type": "object", "additionalProperties": false, "required": ["apiVersion", "kind", "metadata"],
  "properties": {
    "apiVersion": {"const": "v1"}, "kind": {"const": "ConfigMap"}, "metadata": {"type": "object"},
    "data": {"type": "object", "additionalProperties": {"type": "string"}},
    "immutable": {"type": "boolean"}
  }
}`,
	"/v1/Secret": `{
  "type": "object", "additionalProperties": false, "required": ["apiVersion", "kind", "metadata"],
  "properties": {
    "apiVersion": {"const": "v1"}, "kind": {"const": "Secret"}, "metadata": {"type": "object"},
    "type": {"type": "string"},
    "data": {"type": "object", "additionalProperties": {"type": "string", "contentEncoding": "base64"}},
    "stringData": {"type": "object", "additionalProperties": {"type": "string"}},
    "immutable": {"type": "boolean"}
  }
}`,
	"/v1/Service": `{
  "type": "object", "additionalProperties": false, "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {
    "apiVersion": {"const": "v1"}, "kind": {"const": "Service"}, "metadata": {"type": "object"},
    "spec": {
      "type": "object", "additionalProperties": false, "required": ["selector", "ports"],
      "properties": {
        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
        "selector": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
        "ports": {"type": "array", "minItems": 1, "items": {
          "type": "object", "additionalProperties": false, "required": ["port"],
          "properties": {
            "name": {"type": "string"}, "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "targetPort": {"type": ["integer", "string"]}
          }}}
      }
    }
  }
}`,
	"apps/v1/Deployment": `{
  "$defs": {},
  "type": "object", "additionalProperties": false, "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {
    "apiVersion": {"const": "apps/v1"}, "kind": {"const": "Deployment"}, "metadata": {"type": "object"},
    "spec": {
      "type": "object", "additionalProperties": false, "required": ["selector", "template"],
      "properties": {
        "replicas": {"type": "integer", "minimum": 0},
        "strategy": {"type": "object", "additionalProperties": false, "properties": {
          "type": {"enum": ["Recreate", "RollingUpdate"]},
          "rollingUpdate": {"type": "object", "additionalProperties": false, "properties": {
            "maxSurge": {"type": ["integer", "string"]}, "maxUnavailable": {"type": ["integer", "string"]}}}}},
        "selector": {"type": "object", "additionalProperties": false, "required": ["matchLabels"], "properties": {
          "matchLabels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}}},
        "template": {
          "type": "object", "additionalProperties": false, "required": ["metadata", "spec"],
          "properties": {
            "metadata": {"type": "object", "additionalProperties": false, "properties": {
              "labels": {"type": "object", "additionalProperties": {"type": "string"}},
              "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "spec": {"type": "object", "additionalProperties": false, "required": ["containers"], "properties": {
              "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
              "serviceAccountName": {"type": "string"},
              "containers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/container"}}}}
          }
        }
      }
    }
  }
}`,
	"eventing.knative.dev/v1alpha1/KafkaSink": `{
  "type": "object", "additionalProperties": false, "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {
    "apiVersion": {"const": "eventing.knative.dev/v1alpha1"}, "kind": {"const": "KafkaSink"}, "metadata": {"type": "object"},
    "spec": {
      "type": "object", "additionalProperties": false, "required": ["topic", "bootstrapServers"],
      "properties": {
        "topic": {"type": "string", "minLength": 1},
        "numPartitions": {"type": "integer"},
        "replicationFactor": {"type": "integer"},
        "bootstrapServers": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "contentMode": {"enum": ["binary", "structured"]},
        "auth": {"type": "object", "additionalProperties": false, "properties": {
          "secret": {"type": "object", "additionalProperties": false, "properties": {
            "ref": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
              "name": {"type": "string"}}}}}}}
      }
    }
  }
}`,
}
