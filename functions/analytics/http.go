package analytics

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/consumer"
	"function/shared/problem"
)

// Routes registers the analytics read API on mux: GET /v1/stats, and in pull mode
// GET /v1/scaling/GROUP (the scaling signal for KEDA).
func (f *Function) Routes(mux *http.ServeMux) {
	if f.runner != nil {
		mux.HandleFunc("GET /v1/scaling/"+f.runner.Group(), consumer.ScalingHandler(f.runner))
	}
	mux.HandleFunc("GET /v1/stats", f.stats)
}

// PushHandler receives CloudEvents POSTed by a KafkaSource (push mode).
func (f *Function) PushHandler() http.Handler {
	return consumer.PushHandler(func(ctx context.Context, e *event.Event) error {
		_, err := f.Handle(ctx, *e)
		return err
	})
}

func (f *Function) stats(w http.ResponseWriter, r *http.Request) {
	st, err := f.store.Stats(r.Context())
	if err != nil {
		p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, err.Error())
		p.RetryAfter = time.Second
		problem.Write(w, p)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
