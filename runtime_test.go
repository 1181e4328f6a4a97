package function_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"function"
	"function/shared/config"
	"function/shared/embedded"
	"function/test/pipelinetest"
)

// The interfaces of knative-extensions/func-go's HTTP runtime (http/instance.go).
// The func CLI's Go scaffolding runs `http.Start(function.New())`, and the runtime
// type-asserts the instance against each: a method whose signature drifts is not
// an error there, just silently never called.
type (
	funcHandler interface {
		Handle(http.ResponseWriter, *http.Request)
	}
	funcStarter interface {
		Start(context.Context, map[string]string) error
	}
	funcStopper           interface{ Stop(context.Context) error }
	funcReadinessReporter interface {
		Ready(context.Context) (bool, error)
	}
	funcLivenessReporter interface {
		Alive(context.Context) (bool, error)
	}
)

var (
	_ funcHandler           = function.New()
	_ funcStarter           = function.New()
	_ funcStopper           = function.New()
	_ funcReadinessReporter = function.New()
	_ funcLivenessReporter  = function.New()
)

// TestNoStaticHandle guards the instanced shape: func's scaffolding uses a
// package-level Handle function when there is one and then ignores New.
func TestNoStaticHandle(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	files, err := filepath.Glob(filepath.Join(filepath.Dir(self), "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files beside %s: %v", self, err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "Handle" {
				t.Errorf("%s declares a package-level Handle: func's scaffolding would use it instead of New()", name)
			}
		}
	}
}

// TestServesWhileStarting plays func-go's runtime, which calls Start in a goroutine
// while it already serves requests and probes, and may call Stop at any time: before
// Start returns, the function must answer 503 (retryable) and report not ready,
// without a data race (go test -race) or a nil dereference; after Stop it is not ready.
func TestServesWhileStarting(t *testing.T) {
	r, err := embedded.StartRedis(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	// Analytics in push mode needs only Redis.
	opts := pipelinetest.Options(t, "starting", []string{"127.0.0.1:1"}, config.Redis{Addr: r.Addr()})
	opts.Functions = []string{function.Analytics}
	opts.Analytics.Mode = "push"

	f := function.New()
	ctx := context.Background()
	if ok, _ := f.Ready(ctx); ok {
		t.Fatal("ready before Start")
	}
	if ok, _ := f.Alive(ctx); !ok {
		t.Fatal("not alive before Start: the kubelet would restart a pod that is only starting")
	}
	if code := serve(f, http.MethodPost, "/"); code != http.StatusServiceUnavailable {
		t.Fatalf("POST / before Start: %d, want 503", code)
	}

	started := make(chan error, 1)
	go func() { started <- f.StartWith(ctx, opts) }()
	var wg sync.WaitGroup
	for range 3 { // probes and requests while Start runs
		wg.Go(func() {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				_, _ = f.Ready(ctx)
				_, _ = f.Alive(ctx)
				code := serve(f, http.MethodGet, "/v1/stats")
				if code == http.StatusOK {
					return
				}
				if code != http.StatusServiceUnavailable {
					t.Errorf("GET /v1/stats while starting: %d, want 503 or 200", code)
					return
				}
				time.Sleep(time.Millisecond)
			}
			t.Error("GET /v1/stats never answered 200")
		})
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	pipelinetest.Eventually(t, 10*time.Second, "ready after Start", func() (bool, string) {
		ok, err := f.Ready(ctx)
		return ok, fmt.Sprint(err)
	})

	stopped := make(chan error, 1)
	go func() { stopped <- f.Stop(ctx) }()
	_ = serve(f, http.MethodGet, "/health/readiness") // concurrent with Stop
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.Ready(ctx); ok {
		t.Fatal("ready after Stop")
	}
}

func serve(f *function.Function, method, path string) int {
	rec := httptest.NewRecorder()
	f.Handle(rec, httptest.NewRequest(method, path, strings.NewReader("")))
	return rec.Code
}

// TestUnroutedAnswersAreProblems: a path or method no route takes gets problem details
// (the mux's own answers are text/plain), a 405 keeps its Allow header, and the mux's
// redirect to a canonical path still passes through.
func TestUnroutedAnswersAreProblems(t *testing.T) {
	r, err := embedded.StartRedis(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	opts := pipelinetest.Options(t, "unrouted", []string{"127.0.0.1:1"}, config.Redis{Addr: r.Addr()})
	opts.Functions = []string{function.Analytics}
	opts.Analytics.Mode = "push"
	f := function.New()
	if err := f.StartWith(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })

	for _, c := range []struct {
		method, path string
		code         int
		detail       string // in the problem's body
		allow        string
	}{
		{http.MethodGet, "/no/such/thing", http.StatusNotFound, `"no resource at /no/such/thing"`, ""},
		{http.MethodDelete, "/v1/stats", http.StatusMethodNotAllowed, "DELETE is not allowed on /v1/stats", "GET, HEAD"},
	} {
		rec := httptest.NewRecorder()
		f.Handle(rec, httptest.NewRequest(c.method, c.path, nil))
		body := rec.Body.String()
		if rec.Code != c.code || rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(body, c.detail) {
			t.Errorf("%s %s: %d %q %s, want %d problem+json naming %s", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"), body, c.code, c.detail)
		}
		if got := rec.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}

	rec := httptest.NewRecorder()
	f.Handle(rec, httptest.NewRequest(http.MethodGet, "/v1//stats", nil))
	if rec.Code/100 != 3 || rec.Header().Get("Location") != "/v1/stats" {
		t.Errorf("GET /v1//stats: %d Location %q, want the mux's redirect to /v1/stats", rec.Code, rec.Header().Get("Location"))
	}
	if code := serve(f, http.MethodGet, "/v1/stats"); code != http.StatusOK {
		t.Errorf("GET /v1/stats: %d, want 200", code)
	}
}
