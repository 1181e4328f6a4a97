package knative

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"function/test/itest"
)

// kustomizeModule is the kustomize CLI the tests render with. v5.8.2 is the newest
// whose dependencies build with Go 1.26 (v5.8.3 needs kustomize/api v0.21.3 and Go
// 1.27); `kubectl apply -k` embeds its own kustomize, which reads the same files.
const (
	kustomizeModule  = "sigs.k8s.io/kustomize/kustomize/v5"
	kustomizeVersion = "v5.8.2"
)

// The two deployments the tests render: push mode (the knative/ root) and the pull
// overlay.
const (
	pushDir = "."
	pullDir = "overlays/pull"
)

var (
	kustomizeOnce sync.Once
	kustomizePath string
	kustomizeErr  error

	renderMu    sync.Mutex
	renderCache = map[string][]object{}
)

// kustomize returns the kustomize binary, built once per machine into the user's
// cache directory (a `go install` of the pinned version; later runs reuse it).
func kustomize(t testing.TB) string {
	t.Helper()
	kustomizeOnce.Do(func() { kustomizePath, kustomizeErr = buildKustomize() })
	if kustomizeErr != nil {
		t.Fatalf("build kustomize %s: %v", kustomizeVersion, kustomizeErr)
	}
	return kustomizePath
}

func buildKustomize() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "tide", "kustomize-"+kustomizeVersion)
	bin := filepath.Join(dir, "kustomize")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// Install into a private directory, then rename: a concurrent test run never
	// sees a half-written binary.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", kustomizeModule+"@"+kustomizeVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", kustomizeModule, kustomizeVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "kustomize"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// here is the directory of this file: knative/.
func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// schemasDir returns ../shared/schemas (beside the repository). When it is missing
// the test is skipped, or failed when CI=true.
func schemasDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(here(), "..", "..", "shared", "schemas")
	if _, err := os.Stat(filepath.Join(dir, "knative-service-crd.yaml")); err != nil {
		itest.Missing(t, fmt.Sprintf("upstream schemas not found in %s (they live beside the repository, in ../shared/schemas)", dir))
	}
	return dir
}

// object is one rendered Kubernetes object, decoded as JSON Schema validators expect
// (numbers as json.Number).
type object map[string]any

func (o object) apiVersion() string { return str(o, "apiVersion") }
func (o object) kind() string       { return str(o, "kind") }
func (o object) name() string       { return str(o, "metadata", "name") }
func (o object) namespace() string  { return str(o, "metadata", "namespace") }

// group is the API group of the object's apiVersion ("" for the core group).
func (o object) group() string {
	g, _, ok := strings.Cut(o.apiVersion(), "/")
	if !ok {
		return ""
	}
	return g
}

// id names the object in messages: Kind group/namespace/name.
func (o object) id() string {
	return fmt.Sprintf("%s %s/%s", o.kind(), o.apiVersion(), o.name())
}

// render runs `kustomize build` on dir (relative to knative/) and returns its
// objects. Results are cached: each directory is rendered once per test binary.
func render(t testing.TB, dir string) []object {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if objs, ok := renderCache[dir]; ok {
		return deepCopy(t, objs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kustomize(t), "build", filepath.Join(here(), dir))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.Bytes())
	}
	objs, err := decodeYAMLStream(out)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("kustomize build %s rendered nothing", dir)
	}
	renderCache[dir] = objs
	return deepCopy(t, objs)
}

// deepCopy lets a test mutate what render returned without touching the cache.
func deepCopy(t testing.TB, objs []object) []object {
	t.Helper()
	b, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	if err := decodeJSON(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// decodeYAMLStream splits a multi-document YAML stream and decodes each document.
func decodeYAMLStream(b []byte) ([]object, error) {
	var out []object
	for i, doc := range splitYAML(b) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var o object
		if err := decodeYAML(doc, &o); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, " \r\n"), []byte("---")) {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// decodeYAML decodes one YAML document into v through JSON, numbers as json.Number.
func decodeYAML(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	return decodeJSON(j, v)
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// str returns the string at path in v, or "".
func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

// get returns the value at path (map keys) in v, or nil.
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := asMap(v)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case object:
		return m, true
	}
	return nil, false
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// set puts value at path in v, creating maps on the way.
func set(v any, value any, path ...string) error {
	m, ok := asMap(v)
	if !ok {
		return errors.New("not an object")
	}
	for _, p := range path[:len(path)-1] {
		next, ok := asMap(m[p])
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
	return nil
}

// find returns the rendered object of kind and name (any API group when group is
// "*"), or nil.
func find(objs []object, group, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name && (group == "*" || o.group() == group) {
			return o
		}
	}
	return nil
}

func ofKind(objs []object, group, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind && o.group() == group {
			out = append(out, o)
		}
	}
	return out
}
