package knative

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"function"
	"function/functions/analytics"
	"function/functions/ingest"
	"function/functions/notification"
	"function/shared/config"
)

// modes are the two deployments: the knative/ root (push) and the pull overlay.
var modes = []struct {
	name, dir string
	// want are objects that must be rendered ("group/Kind/name", core group empty).
	want []string
	// consumerMode is what NOTIFICATION_MODE and ANALYTICS_MODE must say.
	consumerMode string
}{
	{
		name: "push", dir: pushDir, consumerMode: "push",
		want: []string{
			"/Namespace/tide", "/ConfigMap/tide-config", "/Secret/tide-secrets",
			"serving.knative.dev/Service/tide-ingest", "serving.knative.dev/Service/tide-notification", "serving.knative.dev/Service/tide-analytics",
			"sources.knative.dev/KafkaSource/tide-notification", "sources.knative.dev/KafkaSource/tide-analytics",
			"eventing.knative.dev/KafkaSink/tide-dead-letters", "apps/Deployment/tide-partitions",
		},
	},
	{
		name: "pull", dir: pullDir, consumerMode: "pull",
		want: []string{
			"/Namespace/tide", "/ConfigMap/tide-config", "/Secret/tide-secrets",
			"serving.knative.dev/Service/tide-ingest",
			"apps/Deployment/tide-notification", "apps/Deployment/tide-analytics", "/Service/tide-notification", "/Service/tide-analytics",
			"keda.sh/ScaledObject/tide-notification", "keda.sh/ScaledObject/tide-analytics", "keda.sh/TriggerAuthentication/tide-kafka",
			"apps/Deployment/tide-partitions",
		},
	},
}

// TestKustomizeRendersEachMode renders both modes and checks each holds the
// workloads it is for, and nothing of the other mode.
func TestKustomizeRendersEachMode(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			objs := render(t, m.dir)
			var got []string
			for _, o := range objs {
				got = append(got, o.group()+"/"+o.kind()+"/"+o.name())
				if o.kind() != "Namespace" && o.namespace() != "tide" {
					t.Errorf("%s: namespace %q, want tide", o.id(), o.namespace())
				}
			}
			for _, w := range m.want {
				if !slices.Contains(got, w) {
					t.Errorf("%s is not rendered (got %v)", w, got)
				}
			}
			if m.name == "pull" && len(ofKind(objs, "sources.knative.dev", "KafkaSource")) > 0 {
				t.Error("pull mode renders KafkaSources: both modes would consume the same groups")
			}
		})
	}
}

// TestManifestsMatchSchemas validates every rendered object of both modes against the
// schema of its kind: the upstream CRDs for Knative Services, KafkaSources,
// ScaledObjects and TriggerAuthentications, unknown fields rejected.
func TestManifestsMatchSchemas(t *testing.T) {
	s := loadSchemas(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if err := s.validate(render(t, m.dir)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSchemaValidationCatches proves the validation can fail: each mutation of the
// rendered objects is a mistake the API server (or kubectl's strict validation)
// would reject.
func TestSchemaValidationCatches(t *testing.T) {
	s := loadSchemas(t)
	cases := []struct {
		name, mode, group, kind, obj string
		path                         []string
		value                        any
		want                         string
	}{
		{"misspelled field in a Knative Service", "push", "serving.knative.dev", "Service", "tide-notification",
			[]string{"spec", "template", "spec", "containerConcurency"}, "10", "containerConcurency"},
		{"misspelled probe field", "push", "serving.knative.dev", "Service", "tide-ingest",
			[]string{"spec", "template", "spec", "containers"}, []any{map[string]any{"image": "x", "readinesProbe": map[string]any{}}}, "readinesProbe"},
		{"retry that is not a number", "push", "sources.knative.dev", "KafkaSource", "tide-analytics",
			[]string{"spec", "delivery", "retry"}, "ten", "retry"},
		{"misspelled KafkaSource field", "push", "sources.knative.dev", "KafkaSource", "tide-notification",
			[]string{"spec", "consumerGroups"}, "x", "consumerGroups"},
		{"ScaledObject below its minimum", "pull", "keda.sh", "ScaledObject", "tide-analytics",
			[]string{"spec", "maxReplicaCount"}, 0, "maxReplicaCount"},
		{"ScaledObject min above max", "pull", "keda.sh", "ScaledObject", "tide-analytics",
			[]string{"spec", "minReplicaCount"}, 9, "minReplicaCount 9 > maxReplicaCount"},
		{"misspelled TriggerAuthentication field", "pull", "keda.sh", "TriggerAuthentication", "tide-kafka",
			[]string{"spec", "secretTargetRefs"}, []any{}, "secretTargetRefs"},
		{"Deployment container with an unknown field", "pull", "apps", "Deployment", "tide-notification",
			[]string{"spec", "template", "spec", "containers"}, []any{map[string]any{"name": "tide", "image": "x", "envForm": []any{}}}, "envForm"},
		{"ConfigMap value that is not a string", "push", "", "ConfigMap", "tide-config",
			[]string{"data", "TOPIC_PARTITIONS"}, 6, "TOPIC_PARTITIONS"},
		{"KafkaSink without a topic", "push", "eventing.knative.dev", "KafkaSink", "tide-dead-letters",
			[]string{"spec", "topic"}, "", "topic"},
		{"name that is not a DNS label", "push", "serving.knative.dev", "Service", "tide-ingest",
			[]string{"metadata", "name"}, "Tide_Ingest", "Tide_Ingest"},
		{"kind without a schema", "push", "", "ConfigMap", "tide-config",
			[]string{"kind"}, "ConfigMapp", "no schema"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := render(t, dirOf(c.mode))
			o := find(objs, c.group, c.kind, c.obj)
			if o == nil {
				t.Fatalf("%s/%s %s not rendered", c.group, c.kind, c.obj)
			}
			if err := s.validate(objs); err != nil {
				t.Fatalf("unmutated objects fail: %v", err)
			}
			if err := set(o, c.value, c.path...); err != nil {
				t.Fatal(err)
			}
			err := s.validate(objs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validation error = %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func dirOf(mode string) string {
	if mode == "pull" {
		return pullDir
	}
	return pushDir
}

// TestAnnotationsAreReadByKnativeOrKEDA checks every annotation key of both modes
// against the allow-list of keys Knative Serving and the Knative Kafka source
// controller read, at the place they read them, with values they accept.
func TestAnnotationsAreReadByKnativeOrKEDA(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if err := checkAnnotations(render(t, m.dir)); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The KafkaSources must actually opt into KEDA and set every knob the task
	// calls for; an allow-list alone passes when they are missing.
	for _, ks := range ofKind(render(t, pushDir), "sources.knative.dev", "KafkaSource") {
		for _, key := range []string{"class", "min-scale", "max-scale", "lag-threshold", "activation-lag-threshold"} {
			if str(ks, "metadata", "annotations", "autoscaling.eventing.knative.dev/"+key) == "" {
				t.Errorf("%s: no autoscaling.eventing.knative.dev/%s annotation", ks.id(), key)
			}
		}
	}
}

// TestAnnotationCheckCatches proves the annotation check fails on a misspelled key, a
// key in a place its controller does not read, and a value it rejects.
func TestAnnotationCheckCatches(t *testing.T) {
	cases := []struct {
		name, group, kind, obj string
		path                   []string
		value, want            string
	}{
		{"misspelled KEDA lag threshold", "sources.knative.dev", "KafkaSource", "tide-notification",
			[]string{"metadata", "annotations", "autoscaling.eventing.knative.dev/lag-treshold"}, "20", "lag-treshold"},
		{"Serving's old eventing key", "sources.knative.dev", "KafkaSource", "tide-analytics",
			[]string{"metadata", "annotations", "keda.autoscaling.knative.dev/kafkaLagThreshold"}, "5", "kafkaLagThreshold"},
		{"misspelled Serving key", "serving.knative.dev", "Service", "tide-analytics",
			[]string{"spec", "template", "metadata", "annotations", "autoscaling.knative.dev/minscale"}, "1", "minscale"},
		{"Serving key on the Service instead of its template", "serving.knative.dev", "Service", "tide-ingest",
			[]string{"metadata", "annotations", "autoscaling.knative.dev/min-scale"}, "1", "metadata.annotations"},
		{"eventing key on a Knative Service", "serving.knative.dev", "Service", "tide-notification",
			[]string{"spec", "template", "metadata", "annotations", "autoscaling.eventing.knative.dev/max-scale"}, "3", "autoscaling.eventing.knative.dev/max-scale"},
		{"unknown autoscaler class", "sources.knative.dev", "KafkaSource", "tide-analytics",
			[]string{"metadata", "annotations", "autoscaling.eventing.knative.dev/class"}, "keda", "must be one of"},
		{"lag threshold that is not a number", "sources.knative.dev", "KafkaSource", "tide-analytics",
			[]string{"metadata", "annotations", "autoscaling.eventing.knative.dev/lag-threshold"}, "lots", "whole number"},
		{"min-scale above max-scale", "serving.knative.dev", "Service", "tide-notification",
			[]string{"spec", "template", "metadata", "annotations", "autoscaling.knative.dev/min-scale"}, "9", "is above"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := render(t, pushDir)
			if err := checkAnnotations(objs); err != nil {
				t.Fatalf("unmutated objects fail: %v", err)
			}
			o := find(objs, c.group, c.kind, c.obj)
			if o == nil {
				t.Fatalf("%s %s not rendered", c.kind, c.obj)
			}
			if err := set(o, c.value, c.path...); err != nil {
				t.Fatal(err)
			}
			err := checkAnnotations(objs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("annotation check error = %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

// TestReferencesResolve checks that every ConfigMap, Secret (and key), Service,
// Deployment, sink and TriggerAuthentication a rendered object names is rendered too.
func TestReferencesResolve(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if err := checkReferences(render(t, m.dir)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReferenceCheckCatches proves the reference check fails on each kind of
// dangling reference.
func TestReferenceCheckCatches(t *testing.T) {
	envFrom := func(kind, name string) any {
		ref := map[string]any{"configMapRef": map[string]any{"name": name}}
		if kind == "Secret" {
			ref = map[string]any{"secretRef": map[string]any{"name": name}}
		}
		return []any{map[string]any{"name": "tide", "image": "tide", "envFrom": []any{ref}}}
	}
	cases := []struct {
		name, mode, group, kind, obj string
		path                         []string
		value                        any
		want                         string
	}{
		{"envFrom a missing ConfigMap", "push", "serving.knative.dev", "Service", "tide-ingest",
			[]string{"spec", "template", "spec", "containers"}, envFrom("ConfigMap", "tide-confg"), `ConfigMap "tide-confg"`},
		{"envFrom a missing Secret", "pull", "apps", "Deployment", "tide-analytics",
			[]string{"spec", "template", "spec", "containers"}, envFrom("Secret", "tide-secret"), `Secret "tide-secret"`},
		{"secretKeyRef to a missing key", "push", "serving.knative.dev", "Service", "tide-analytics",
			[]string{"spec", "template", "spec", "containers"}, []any{map[string]any{"image": "tide", "env": []any{map[string]any{
				"name": "REDIS_PASSWORD", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "tide-secrets", "key": "REDIS_PASSWD"}}}}}}, `"REDIS_PASSWD"`},
		{"sink that is not rendered", "push", "sources.knative.dev", "KafkaSource", "tide-notification",
			[]string{"spec", "sink", "ref", "name"}, "tide-notifications", `"tide-notifications"`},
		{"no dead-letter sink", "push", "sources.knative.dev", "KafkaSource", "tide-analytics",
			[]string{"spec", "delivery", "deadLetterSink"}, map[string]any{}, "no dead-letter sink"},
		{"scale target that is not rendered", "pull", "keda.sh", "ScaledObject", "tide-notification",
			[]string{"spec", "scaleTargetRef", "name"}, "tide-notifier", `"tide-notifier"`},
		{"metrics-api URL naming another namespace", "pull", "keda.sh", "ScaledObject", "tide-analytics",
			[]string{"spec", "triggers"}, []any{map[string]any{"type": "metrics-api", "metadata": map[string]any{"url": "http://tide-analytics.default.svc:8080/v1/scaling"}}}, `namespace "default"`},
		{"FromEnv variable the target does not have", "pull", "keda.sh", "ScaledObject", "tide-analytics",
			[]string{"spec", "triggers"}, []any{map[string]any{"type": "kafka", "metadata": map[string]any{"bootstrapServersFromEnv": "KAFKA_BROKER"}}}, "KAFKA_BROKER"},
		{"TriggerAuthentication naming a missing Secret key", "pull", "keda.sh", "TriggerAuthentication", "tide-kafka",
			[]string{"spec", "secretTargetRef"}, []any{map[string]any{"parameter": "password", "name": "tide-secrets", "key": "KAFKA_PASSWORD"}}, `"KAFKA_PASSWORD"`},
		{"Service selecting no pods", "pull", "", "Service", "tide-analytics",
			[]string{"spec", "selector", "app.kubernetes.io/component"}, "analytic", "matches the pods of no rendered Deployment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := render(t, dirOf(c.mode))
			if err := checkReferences(objs); err != nil {
				t.Fatalf("unmutated objects fail: %v", err)
			}
			o := find(objs, c.group, c.kind, c.obj)
			if o == nil {
				t.Fatalf("%s %s not rendered", c.kind, c.obj)
			}
			if err := set(o, c.value, c.path...); err != nil {
				t.Fatal(err)
			}
			err := checkReferences(objs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("reference check error = %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

// knownVariables are the environment variables tide reads: every configuration
// variable (`tide config`), the logging ones, the function selector, and func-go's
// listen address and port.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	var b strings.Builder
	err := config.Usage(&b,
		config.Section{Spec: &ingest.Config{}},
		config.Section{Spec: &notification.Config{}},
		config.Section{Prefix: "NOTIFICATION", Spec: new(notification.ConsumerDefaults())},
		config.Section{Spec: &analytics.Config{}},
		config.Section{Prefix: "ANALYTICS", Spec: new(analytics.ConsumerDefaults())},
	)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{
		"LOG_FORMAT": true, "LOG_LEVEL": true, // shared/logging FromEnv
		"TIDE_FUNCTION": true,               // function.go
		"ADDRESS":       true, "PORT": true, // func-go http/service.go listenAddress
	}
	names := regexp.MustCompile("^\\| `([A-Z0-9_]+)`")
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		if m := names.FindStringSubmatch(sc.Text()); m != nil {
			known[m[1]] = true
		}
	}
	if !known["KAFKA_BROKERS"] || !known["NOTIFICATION_GROUP"] {
		t.Fatalf("tide config lists no KAFKA_BROKERS or NOTIFICATION_GROUP:\n%s", b.String())
	}
	return known
}

// TestManifestsAgreeWithConfig loads each workload's environment (its ConfigMap,
// Secret and env) through tide's own configuration code, as the pod would at start,
// and checks the names the manifests repeat (brokers, topics, groups) agree with it.
func TestManifestsAgreeWithConfig(t *testing.T) {
	known := knownVariables(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			objs := render(t, m.dir)
			cfg, _ := asMap(get(find(objs, "", "ConfigMap", "tide-config"), "data"))
			value := func(k string) string { s, _ := cfg[k].(string); return s }
			brokers := strings.Split(value("KAFKA_BROKERS"), ",")
			partitions, err := strconv.Atoi(value("TOPIC_PARTITIONS"))
			if err != nil {
				t.Fatalf("TOPIC_PARTITIONS=%q", value("TOPIC_PARTITIONS"))
			}
			groups := map[string]string{function.Notification: value("NOTIFICATION_GROUP"), function.Analytics: value("ANALYTICS_GROUP")}

			workloads := map[string]object{} // TIDE_FUNCTION -> workload
			for _, o := range objs {
				if podSpec(o) == nil {
					continue
				}
				env := workloadValues(objs, o)
				for name := range env {
					if !known[name] {
						t.Errorf("%s: variable %s is not one tide reads (see `go run ./cmd/tide config`)", o.id(), name)
					}
				}
				which := env["TIDE_FUNCTION"]
				if which == "" {
					continue // the partition manager runs no function
				}
				workloads[which] = o
				checkWorkloadConfig(t, o, env, m.consumerMode)
			}
			for _, f := range []string{function.Ingest, function.Notification, function.Analytics} {
				if workloads[f] == nil {
					t.Errorf("no workload runs TIDE_FUNCTION=%s", f)
				}
			}

			for _, ks := range ofKind(objs, "sources.knative.dev", "KafkaSource") {
				sink := find(objs, "serving.knative.dev", "Service", str(ks, "spec", "sink", "ref", "name"))
				which := workloadValues(objs, sink)["TIDE_FUNCTION"]
				if got := strings.Join(stringList(get(ks, "spec", "bootstrapServers")), ","); got != value("KAFKA_BROKERS") {
					t.Errorf("%s: bootstrapServers %s, KAFKA_BROKERS %s", ks.id(), got, value("KAFKA_BROKERS"))
				}
				if got := stringList(get(ks, "spec", "topics")); !slices.Equal(got, []string{value("KAFKA_TOPIC")}) {
					t.Errorf("%s: topics %v, KAFKA_TOPIC %s", ks.id(), got, value("KAFKA_TOPIC"))
				}
				if got := str(ks, "spec", "consumerGroup"); got != groups[which] {
					t.Errorf("%s delivers to %s: consumerGroup %q, want %q (the pull-mode group, so switching modes resumes)", ks.id(), which, got, groups[which])
				}
				wantOrder := map[string]string{function.Notification: "ordered", function.Analytics: "unordered"}[which]
				if got := str(ks, "spec", "ordering"); got != wantOrder {
					t.Errorf("%s delivers to %s: ordering %q, want %q", ks.id(), which, got, wantOrder)
				}
				if d := get(ks, "spec", "delivery"); str(d, "backoffPolicy") != "exponential" || get(d, "retry") == nil {
					t.Errorf("%s: delivery %v, want retries with exponential backoff", ks.id(), d)
				}
				if n, _ := strconv.Atoi(str(ks, "metadata", "annotations", "autoscaling.eventing.knative.dev/max-scale")); n > partitions {
					t.Errorf("%s: max-scale %d above TOPIC_PARTITIONS %d: dispatchers beyond the partitions sit idle", ks.id(), n, partitions)
				}
			}
			for _, sink := range ofKind(objs, "eventing.knative.dev", "KafkaSink") {
				if got := str(sink, "spec", "topic"); got != value("KAFKA_DLQ_TOPIC") {
					t.Errorf("%s: topic %q, KAFKA_DLQ_TOPIC %q", sink.id(), got, value("KAFKA_DLQ_TOPIC"))
				}
				if got := stringList(get(sink, "spec", "bootstrapServers")); !slices.Equal(got, brokers) {
					t.Errorf("%s: bootstrapServers %v, KAFKA_BROKERS %v", sink.id(), got, brokers)
				}
			}
			for _, so := range ofKind(objs, "keda.sh", "ScaledObject") {
				target := find(objs, "apps", "Deployment", str(so, "spec", "scaleTargetRef", "name"))
				which := workloadValues(objs, target)["TIDE_FUNCTION"]
				if n, ok := number(get(so, "spec", "maxReplicaCount")); !ok || n > int64(partitions) {
					t.Errorf("%s: maxReplicaCount %v, want at most TOPIC_PARTITIONS %d", so.id(), get(so, "spec", "maxReplicaCount"), partitions)
				}
				var haveSignal bool
				for _, tr := range list(so, "spec", "triggers") {
					switch str(tr, "type") {
					case "kafka":
						if got := str(tr, "metadata", "topic"); got != value("KAFKA_TOPIC") {
							t.Errorf("%s: kafka trigger topic %q, want KAFKA_TOPIC %q (KEDA mis-scales a group with no commits unless the topic is named)", so.id(), got, value("KAFKA_TOPIC"))
						}
						if got := str(tr, "metadata", "consumerGroup"); got != groups[which] {
							t.Errorf("%s: kafka trigger group %q, want %q", so.id(), got, groups[which])
						}
					case "metrics-api":
						haveSignal = true
						if str(tr, "metadata", "valueLocation") != "recommended_replicas" || str(tr, "metadata", "targetValue") != "1" {
							t.Errorf("%s: metrics-api trigger %v, want valueLocation recommended_replicas and targetValue 1", so.id(), get(tr, "metadata"))
						}
					}
				}
				if !haveSignal {
					t.Errorf("%s: no metrics-api trigger on tide's scaling signal", so.id())
				}
			}
		})
	}
}

// checkWorkloadConfig loads the workload's environment through function.OptionsFromEnv
// (as its pod would) and checks the probes, the mode and the resources.
func checkWorkloadConfig(t *testing.T, o object, env map[string]string, consumerMode string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	which := env["TIDE_FUNCTION"]
	opts, err := function.OptionsFromEnv(which)
	if err != nil {
		t.Errorf("%s: its configuration does not load: %v", o.id(), err)
		return
	}
	switch which {
	case function.Notification:
		if opts.Notification.Mode != consumerMode {
			t.Errorf("%s: NOTIFICATION_MODE=%q, want %q", o.id(), opts.Notification.Mode, consumerMode)
		}
	case function.Analytics:
		if opts.Analytics.Mode != consumerMode {
			t.Errorf("%s: ANALYTICS_MODE=%q, want %q", o.id(), opts.Analytics.Mode, consumerMode)
		}
	}
	c := list(podSpec(o), "containers")[0]
	for probe, path := range map[string]string{"readinessProbe": "/health/readiness", "livenessProbe": "/health/liveness"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s: %s path %q, want %q (the endpoint func-go and function.go serve)", o.id(), probe, got, path)
		}
	}
	if str(c, "resources", "requests", "cpu") == "" || str(c, "resources", "limits", "memory") == "" {
		t.Errorf("%s: no cpu request or memory limit", o.id())
	}
	if env["ADDRESS"] != "0.0.0.0" {
		t.Errorf("%s: ADDRESS=%q: func-go would listen on 127.0.0.1 only, out of the probes' reach", o.id(), env["ADDRESS"])
	}
}

func stringList(v any) []string {
	var out []string
	for _, e := range asList(v) {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

// TestFuncYAML validates the root func.yaml against knative/func's schema, and checks
// its health endpoints are the paths the manifests probe.
func TestFuncYAML(t *testing.T) {
	sch := funcSchema(t)
	doc := readFuncYAML(t)
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("func.yaml: %v", err)
	}
	if got := str(doc, "deploy", "healthEndpoints", "readiness"); got != "/health/readiness" {
		t.Errorf("func.yaml readiness endpoint %q", got)
	}
	if got := str(doc, "deploy", "healthEndpoints", "liveness"); got != "/health/liveness" {
		t.Errorf("func.yaml liveness endpoint %q", got)
	}
	if got := str(doc, "invoke"); got != "http" {
		t.Errorf("func.yaml invoke %q: the root is an HTTP-shaped function", got)
	}

	// The same validation rejects a mistake.
	for _, bad := range []struct {
		path  []string
		value any
	}{
		{[]string{"invok"}, "http"},
		{[]string{"deploy", "healthEndpoint"}, map[string]any{}},
		{[]string{"name"}, "Tide"},
	} {
		d := readFuncYAML(t)
		if err := set(d, bad.value, bad.path...); err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(d); err == nil {
			t.Errorf("func.yaml with %v=%v passes the schema", bad.path, bad.value)
		}
	}
}

func funcSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(schemasDir(t), "func_yaml-schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := decodeJSON(b, &doc); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // created must be a date-time
	sch, err := compile(c, "mem:///func_yaml-schema.json", doc)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func readFuncYAML(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(here(), "..", "func.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := decodeYAML(b, &doc); err != nil {
		t.Fatalf("func.yaml: %v", err)
	}
	return doc
}
