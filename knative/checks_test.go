package knative

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Where annotations are read. An annotation anywhere else is ignored by every
// controller, which is how a misspelled or misplaced key fails silently on a cluster.
const (
	// spec.template.metadata.annotations of a Knative Service: Knative Serving
	// copies them to each Revision and its PodAutoscaler. (On the Service's own
	// metadata the autoscaling keys do nothing.)
	onRevisionTemplate = "serving.knative.dev/Service spec.template.metadata.annotations"
	// metadata.annotations of a KafkaSource: the Knative Kafka controller copies the
	// autoscaling keys to the source's ConsumerGroup and builds a KEDA ScaledObject.
	onKafkaSource = "sources.knative.dev/KafkaSource metadata.annotations"
)

// Upstream files that read the annotation keys.
const (
	servingRegister = "knative/serving pkg/apis/autoscaling/register.go"
	kafkaAPI        = "knative-extensions/eventing-kafka-broker control-plane/pkg/autoscaler/autoscaler_api.go"
	kafkaKEDA       = "knative-extensions/eventing-kafka-broker control-plane/pkg/autoscaler/keda/keda.go"
	kafkaResources  = "knative-extensions/eventing-kafka-broker control-plane/pkg/autoscaler/keda/resources.go"
)

// annotationRule is one key a controller reads: where it is declared and read, and
// what values it takes.
type annotationRule struct {
	source string
	check  func(string) error
}

// allowedAnnotations lists, per place, every annotation key tide may set, with the
// upstream source that reads it. A key not listed fails the test: a typo in a key
// is otherwise silently ignored by the cluster.
var allowedAnnotations = map[string]map[string]annotationRule{
	onRevisionTemplate: {
		"autoscaling.knative.dev/class":                              {servingRegister + " (ClassAnnotationKey)", oneOf("kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev")},
		"autoscaling.knative.dev/metric":                             {servingRegister + " (MetricAnnotationKey)", oneOf("concurrency", "rps", "cpu", "memory")},
		"autoscaling.knative.dev/target":                             {servingRegister + " (TargetAnnotationKey)", positiveFloat},
		"autoscaling.knative.dev/target-utilization-percentage":      {servingRegister + " (TargetUtilizationPercentageKey)", percentage},
		"autoscaling.knative.dev/min-scale":                          {servingRegister + " (MinScaleAnnotationKey)", nonNegativeInt},
		"autoscaling.knative.dev/max-scale":                          {servingRegister + " (MaxScaleAnnotationKey)", nonNegativeInt},
		"autoscaling.knative.dev/initial-scale":                      {servingRegister + " (InitialScaleAnnotationKey)", nonNegativeInt},
		"autoscaling.knative.dev/activation-scale":                   {servingRegister + " (ActivationScaleKey)", nonNegativeInt},
		"autoscaling.knative.dev/scale-down-delay":                   {servingRegister + " (ScaleDownDelayAnnotationKey)", duration},
		"autoscaling.knative.dev/window":                             {servingRegister + " (WindowAnnotationKey)", duration},
		"autoscaling.knative.dev/scale-to-zero-pod-retention-period": {servingRegister + " (ScaleToZeroPodRetentionPeriodKey)", duration},
		"autoscaling.knative.dev/target-burst-capacity":              {servingRegister + " (TargetBurstCapacityKey)", anyFloat},
		"autoscaling.knative.dev/panic-window-percentage":            {servingRegister + " (PanicWindowPercentageAnnotationKey)", positiveFloat},
		"autoscaling.knative.dev/panic-threshold-percentage":         {servingRegister + " (PanicThresholdPercentageAnnotationKey)", positiveFloat},
	},
	onKafkaSource: {
		"autoscaling.eventing.knative.dev/class":                    {kafkaAPI + " (AutoscalingClassAnnotation); " + kafkaKEDA + " IsEnabled", oneOf("keda.autoscaling.knative.dev", "disabled")},
		"autoscaling.eventing.knative.dev/min-scale":                {kafkaAPI + " (AutoscalingMinScaleAnnotation); " + kafkaResources + " GenerateScaledObject", nonNegativeInt},
		"autoscaling.eventing.knative.dev/max-scale":                {kafkaAPI + " (AutoscalingMaxScaleAnnotation); " + kafkaResources + " GenerateScaledObject", nonNegativeInt},
		"autoscaling.eventing.knative.dev/polling-interval":         {kafkaAPI + " (AutoscalingPollingIntervalAnnotation); " + kafkaResources + " GenerateScaledObject", positiveInt},
		"autoscaling.eventing.knative.dev/cooldown-period":          {kafkaAPI + " (AutoscalingCooldownPeriodAnnotation); " + kafkaResources + " GenerateScaledObject", nonNegativeInt},
		"autoscaling.eventing.knative.dev/lag-threshold":            {kafkaAPI + " (AutoscalingLagThreshold); " + kafkaKEDA + " GenerateScaleTriggers", positiveInt},
		"autoscaling.eventing.knative.dev/activation-lag-threshold": {kafkaAPI + " (AutoscalingActivationLagThreshold); " + kafkaKEDA + " SetAutoscalingAnnotations", nonNegativeInt},
	},
}

// scalePairs are (min, max) keys whose values must be ordered.
var scalePairs = [][2]string{
	{"autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/max-scale"},
	{"autoscaling.eventing.knative.dev/min-scale", "autoscaling.eventing.knative.dev/max-scale"},
}

// annotationPlaces returns each annotation map of o with the place it sits in
// ("" for a place no controller reads).
func annotationPlaces(o object) map[string]map[string]any {
	out := map[string]map[string]any{}
	add := func(place string, v any) {
		if m, ok := asMap(v); ok && len(m) > 0 {
			out[place] = m
		}
	}
	kindID := o.group() + "/" + o.kind()
	top := kindID + " metadata.annotations"
	tmpl := kindID + " spec.template.metadata.annotations"
	add(top, get(o, "metadata", "annotations"))
	add(tmpl, get(o, "spec", "template", "metadata", "annotations"))
	return out
}

// checkAnnotations reports every annotation key that no controller reads where it
// is set, and every value the reader would reject.
func checkAnnotations(objs []object) error {
	var errs []error
	for _, o := range objs {
		for place, anns := range annotationPlaces(o) {
			rules := allowedAnnotations[place]
			for key, v := range anns {
				rule, ok := rules[key]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: annotation %q is not read by Knative or KEDA at %s", o.id(), key, place))
					continue
				}
				s, _ := v.(string)
				if err := rule.check(s); err != nil {
					errs = append(errs, fmt.Errorf("%s: annotation %s=%q: %w (read by %s)", o.id(), key, s, err, rule.source))
				}
			}
			for _, p := range scalePairs {
				lo, okLo := anns[p[0]].(string)
				hi, okHi := anns[p[1]].(string)
				if !okLo || !okHi {
					continue
				}
				l, err1 := strconv.Atoi(lo)
				h, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil && h > 0 && l > h {
					errs = append(errs, fmt.Errorf("%s: %s=%d is above %s=%d", o.id(), p[0], l, p[1], h))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func oneOf(choices ...string) func(string) error {
	return func(s string) error {
		if slices.Contains(choices, s) {
			return nil
		}
		return fmt.Errorf("must be one of %s", strings.Join(choices, ", "))
	}
}

func nonNegativeInt(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return errors.New("must be a whole number of 0 or more")
	}
	return nil
}

func positiveInt(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 1 {
		return errors.New("must be a whole number of 1 or more")
	}
	return nil
}

func anyFloat(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return errors.New("must be a number")
	}
	return nil
}

func positiveFloat(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err != nil || f <= 0 {
		return errors.New("must be a number above 0")
	}
	return nil
}

func percentage(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err != nil || f < 1 || f > 100 {
		return errors.New("must be a number from 1 to 100")
	}
	return nil
}

func duration(s string) error {
	if _, err := time.ParseDuration(s); err != nil {
		return errors.New("must be a duration such as 60s")
	}
	return nil
}

// podSpec returns the pod spec of a workload (a Knative Service or a Deployment).
func podSpec(o object) map[string]any {
	if (o.group() == "serving.knative.dev" && o.kind() == "Service") || (o.group() == "apps" && o.kind() == "Deployment") {
		m, _ := asMap(get(o, "spec", "template", "spec"))
		return m
	}
	return nil
}

// checkReferences resolves every reference between the rendered objects: envFrom and
// env sources (ConfigMaps, Secrets and their keys), KafkaSource sinks and dead-letter
// sinks, ScaledObject targets, authentication and metrics-api URLs, the objects a
// TriggerAuthentication reads, and the pods a Service selects. On a cluster a
// dangling one fails only at run time.
func checkReferences(objs []object) error {
	var errs []error
	fail := func(o object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o.id(), fmt.Sprintf(format, args...)))
	}
	hasKey := func(kind, name, key string) (found, keyFound bool) {
		o := find(objs, "", kind, name)
		if o == nil {
			return false, false
		}
		for _, field := range []string{"data", "stringData"} {
			if _, ok := asMap(get(o, field)); ok && get(o, field, key) != nil {
				return true, true
			}
		}
		return true, false
	}
	needKey := func(o object, kind, name, key, what string) {
		found, keyFound := hasKey(kind, name, key)
		switch {
		case !found:
			fail(o, "%s names %s %q, which is not rendered", what, kind, name)
		case !keyFound:
			fail(o, "%s names key %q of %s %q, which has no such key", what, key, kind, name)
		}
	}
	needRef := func(o object, ref any, what string) {
		apiVersion, kind, name := str(ref, "apiVersion"), str(ref, "kind"), str(ref, "name")
		group, _, _ := strings.Cut(apiVersion, "/")
		if !strings.Contains(apiVersion, "/") {
			group = ""
		}
		target := find(objs, group, kind, name)
		if target == nil {
			fail(o, "%s refers to %s %s %q, which is not rendered", what, apiVersion, kind, name)
			return
		}
		if ns := str(ref, "namespace"); ns != "" && ns != target.namespace() {
			fail(o, "%s refers to namespace %q, but %s is in %q", what, ns, target.id(), target.namespace())
		}
	}

	for _, o := range objs {
		if spec := podSpec(o); spec != nil {
			for _, c := range list(spec, "containers") {
				for _, ef := range list(c, "envFrom") {
					if n := str(ef, "configMapRef", "name"); n != "" && find(objs, "", "ConfigMap", n) == nil {
						fail(o, "envFrom names ConfigMap %q, which is not rendered", n)
					}
					if n := str(ef, "secretRef", "name"); n != "" && find(objs, "", "Secret", n) == nil {
						fail(o, "envFrom names Secret %q, which is not rendered", n)
					}
				}
				for _, e := range list(c, "env") {
					if r := get(e, "valueFrom", "configMapKeyRef"); r != nil {
						needKey(o, "ConfigMap", str(r, "name"), str(r, "key"), "env "+str(e, "name"))
					}
					if r := get(e, "valueFrom", "secretKeyRef"); r != nil {
						needKey(o, "Secret", str(r, "name"), str(r, "key"), "env "+str(e, "name"))
					}
				}
			}
		}
		switch o.group() + "/" + o.kind() {
		case "sources.knative.dev/KafkaSource":
			needRef(o, get(o, "spec", "sink", "ref"), "spec.sink.ref")
			if r := get(o, "spec", "delivery", "deadLetterSink", "ref"); r != nil {
				needRef(o, r, "spec.delivery.deadLetterSink.ref")
			} else if str(o, "spec", "delivery", "deadLetterSink", "uri") == "" {
				fail(o, "has no dead-letter sink: events that fail every retry would be dropped")
			}
		case "eventing.knative.dev/KafkaSink":
			if n := str(o, "spec", "auth", "secret", "ref", "name"); n != "" && find(objs, "", "Secret", n) == nil {
				fail(o, "spec.auth.secret.ref names Secret %q, which is not rendered", n)
			}
		case "keda.sh/ScaledObject":
			checkScaledObject(objs, o, fail)
		case "keda.sh/TriggerAuthentication":
			for _, r := range list(o, "spec", "secretTargetRef") {
				needKey(o, "Secret", str(r, "name"), str(r, "key"), "secretTargetRef "+str(r, "parameter"))
			}
			for _, r := range list(o, "spec", "configMapTargetRef") {
				needKey(o, "ConfigMap", str(r, "name"), str(r, "key"), "configMapTargetRef "+str(r, "parameter"))
			}
		case "/Service":
			checkServiceSelects(objs, o, fail)
		case "apps/Deployment":
			sel, _ := asMap(get(o, "spec", "selector", "matchLabels"))
			labels, _ := asMap(get(o, "spec", "template", "metadata", "labels"))
			if !selects(sel, labels) {
				fail(o, "spec.selector %v does not select its own pod labels %v", sel, labels)
			}
		}
	}
	return errors.Join(errs...)
}

func checkScaledObject(objs []object, o object, fail func(object, string, ...any)) {
	ref := get(o, "spec", "scaleTargetRef")
	kind, apiVersion := str(ref, "kind"), str(ref, "apiVersion")
	if kind == "" {
		kind, apiVersion = "Deployment", "apps/v1" // KEDA's defaults
	}
	group, _, _ := strings.Cut(apiVersion, "/")
	target := find(objs, group, kind, str(ref, "name"))
	if target == nil {
		fail(o, "scaleTargetRef %s %q is not rendered", kind, str(ref, "name"))
	}
	for _, tr := range list(o, "spec", "triggers") {
		if a := get(tr, "authenticationRef"); a != nil {
			k := str(a, "kind")
			if k == "" {
				k = "TriggerAuthentication"
			}
			if k == "TriggerAuthentication" && find(objs, "keda.sh", k, str(a, "name")) == nil {
				fail(o, "trigger %q: authenticationRef %q is not rendered", str(tr, "name"), str(a, "name"))
			}
		}
		md, _ := asMap(get(tr, "metadata"))
		if str(tr, "type") == "metrics-api" {
			checkInClusterURL(objs, o, str(md, "url"), fail)
		}
		// KEDA resolves <param>FromEnv from the scale target's container environment.
		for k, v := range md {
			if name, ok := v.(string); ok && strings.HasSuffix(k, "FromEnv") && target != nil {
				if !workloadEnv(objs, target)[name] {
					fail(o, "trigger %q: %s=%s, but %s has no such variable", str(tr, "name"), k, name, target.id())
				}
			}
		}
	}
}

// checkInClusterURL checks that a URL names a rendered Service by its cluster DNS
// name (NAME.NAMESPACE.svc[.cluster.local]) and one of its ports.
func checkInClusterURL(objs []object, o object, raw string, fail func(object, string, ...any)) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		fail(o, "url %q is not an absolute URL", raw)
		return
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) < 3 || parts[2] != "svc" {
		fail(o, "url %q does not name a Service as NAME.NAMESPACE.svc", raw)
		return
	}
	svc := find(objs, "", "Service", parts[0])
	if svc == nil {
		fail(o, "url %q names Service %q, which is not rendered", raw, parts[0])
		return
	}
	if svc.namespace() != parts[1] {
		fail(o, "url %q names namespace %q, but the Service is in %q", raw, parts[1], svc.namespace())
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	for _, p := range list(svc, "spec", "ports") {
		if fmt.Sprint(get(p, "port")) == port {
			return
		}
	}
	fail(o, "url %q uses port %s, which Service %q does not expose", raw, port, parts[0])
}

// checkServiceSelects checks that a core Service selects the pods of a rendered
// Deployment and that a named targetPort is one of their container ports.
func checkServiceSelects(objs []object, svc object, fail func(object, string, ...any)) {
	sel, _ := asMap(get(svc, "spec", "selector"))
	for _, d := range ofKind(objs, "apps", "Deployment") {
		labels, _ := asMap(get(d, "spec", "template", "metadata", "labels"))
		if !selects(sel, labels) {
			continue
		}
		names := map[string]bool{}
		for _, c := range list(d, "spec", "template", "spec", "containers") {
			for _, p := range list(c, "ports") {
				names[str(p, "name")] = true
			}
		}
		for _, p := range list(svc, "spec", "ports") {
			if tp, ok := get(p, "targetPort").(string); ok && !names[tp] {
				fail(svc, "targetPort %q is not a container port of %s", tp, d.id())
			}
		}
		return
	}
	fail(svc, "selector %v matches the pods of no rendered Deployment", sel)
}

func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// workloadEnv returns the names of the variables a workload's first container sees:
// its env and every key of the ConfigMaps and Secrets it loads with envFrom.
func workloadEnv(objs []object, o object) map[string]bool {
	out := map[string]bool{}
	for name := range workloadValues(objs, o) {
		out[name] = true
	}
	return out
}

// workloadValues returns the environment of a workload's first container as the
// process would see it: envFrom sources in order, then env (which wins). Values
// from a secretKeyRef or configMapKeyRef are resolved.
func workloadValues(objs []object, o object) map[string]string {
	out := map[string]string{}
	spec := podSpec(o)
	containers := list(spec, "containers")
	if len(containers) == 0 {
		return out
	}
	c := containers[0]
	load := func(kind, name string) {
		src := find(objs, "", kind, name)
		for _, field := range []string{"data", "stringData"} {
			m, _ := asMap(get(src, field))
			for k, v := range m {
				out[k] = secretValue(kind, field, v)
			}
		}
	}
	for _, ef := range list(c, "envFrom") {
		if n := str(ef, "configMapRef", "name"); n != "" {
			load("ConfigMap", n)
		}
		if n := str(ef, "secretRef", "name"); n != "" {
			load("Secret", n)
		}
	}
	for _, e := range list(c, "env") {
		name := str(e, "name")
		switch {
		case get(e, "valueFrom", "configMapKeyRef") != nil:
			r := get(e, "valueFrom", "configMapKeyRef")
			out[name] = str(find(objs, "", "ConfigMap", str(r, "name")), "data", str(r, "key"))
		case get(e, "valueFrom", "secretKeyRef") != nil:
			r := get(e, "valueFrom", "secretKeyRef")
			secret := find(objs, "", "Secret", str(r, "name"))
			if v := get(secret, "data", str(r, "key")); v != nil {
				out[name] = secretValue("Secret", "data", v)
			} else {
				out[name] = str(secret, "stringData", str(r, "key"))
			}
		default:
			out[name] = str(e, "value")
		}
	}
	return out
}

// secretValue is a ConfigMap or Secret value as the container sees it: a Secret's
// data is base64 (what kustomize's secretGenerator renders).
func secretValue(kind, field string, v any) string {
	s, _ := v.(string)
	if kind == "Secret" && field == "data" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "<not base64: " + s + ">"
		}
		return string(b)
	}
	return s
}
