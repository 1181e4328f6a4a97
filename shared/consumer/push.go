package consumer

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/problem"
	"function/shared/scaling"
)

// PushHandler serves push-mode delivery: a Knative KafkaSource POSTs each record as a
// CloudEvent (binary or structured mode) and reads the status to decide what to do
// next: 2xx commits; 5xx and 429 are retried with backoff and then dead-lettered;
// other 4xx are not retried. So a poison event answers 400, a transient failure 503,
// and a duplicate delivery succeeds (it was handled before).
func PushHandler(handle func(ctx context.Context, e *event.Event) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			problem.Write(w, problem.New(http.StatusMethodNotAllowed, problem.TypeMethodNotAllowed, "deliver CloudEvents with POST"))
			return
		}
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			problem.Write(w, problem.Newf(http.StatusBadRequest, problem.TypeMalformed, "not a CloudEvent: %v", err))
			return
		}
		switch err := handle(r.Context(), e); {
		case err == nil:
			w.WriteHeader(http.StatusAccepted)
		case IsPoison(err):
			problem.Write(w, problem.New(http.StatusBadRequest, problem.TypeInvalidEvent, err.Error()))
		case IsTransient(err):
			p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, err.Error())
			p.RetryAfter = time.Second
			problem.Write(w, p)
		default:
			problem.Write(w, problem.New(http.StatusInternalServerError, problem.TypeUnavailable, err.Error()))
		}
	})
}

// scalingResponse is the body of GET /v1/scaling: the estimator's signal, flattened,
// with the group it is for. KEDA's metrics-api scaler reads `metric_value` (or
// `recommended_replicas`) with targetValue "1".
type scalingResponse struct {
	Group string `json:"group"`
	scaling.Signal
	RecommendedReplicas int `json:"recommended_replicas"`
}

// ScalingHandler serves the runner's scaling signal as JSON (503 before the first
// sample, so KEDA keeps its last value instead of reading a zero).
func ScalingHandler(r *Runner) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s := r.Signal()
		if s.At.IsZero() {
			p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "no lag sample yet")
			p.RetryAfter = 5 * time.Second
			problem.Write(w, p)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(scalingResponse{Group: r.Group(), Signal: s, RecommendedReplicas: s.Recommended})
	}
}
