package ingest_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"function/shared/config"
	"function/test/itest"
	"function/test/pipelinetest"
)

// TestSharedRateLimitThreeReplicas is the acceptance test: three ingest
// replicas, each its own HTTP server, share one real Redis and a limit of R events
// per second with burst B. Clients send batches as fast as they can to all three
// for a few seconds. The replicas together must accept at most R×T + B events
// (within 1%), where T is the load's duration, and answer every other request 429.
func TestSharedRateLimitThreeReplicas(t *testing.T) {
	redisAddr := itest.Redis(t)
	const (
		// Low enough that even a loaded CI machine offers more than the limit:
		// the test must saturate the limit to show it holds.
		rate     = 200 // events per second, for all replicas together
		burst    = 100
		perBatch = 5
		workers  = 12 // four per replica
		duration = 3 * time.Second
		maxReqs  = 200000 // bound on the request loop, far above what 3 s allows
	)
	var brokers []string
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		brokers = strings.Split(b, ",")
	} else {
		brokers = embeddedKafka(t)
	}
	cfg := pipelinetest.Options(t, itest.UniqueName(t, "ingest"), brokers, config.Redis{}).Ingest
	cfg.Protection = defaultProtection(t)
	cfg.Redis = config.Redis{Addr: redisAddr, Password: itest.RedisPassword()}
	cfg.RateLimit, cfg.RateLimitRate, cfg.RateLimitBurst = true, rate, burst
	cfg.RateLimitReplicas = 3
	cfg.RateLimitPrefix = itest.UniqueName(t, "rl") + ":"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var replicas [3]*server
	for i := range replicas {
		replicas[i] = startWith(t, cfg)
	}

	var (
		accepted, refused [3]atomic.Int64 // events, per replica
		requests          atomic.Int64
		seq               atomic.Int64
		badMu             sync.Mutex
		bad               []string
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := w % len(replicas)
			for time.Since(start) < duration && requests.Add(1) <= maxReqs {
				events := make([][]byte, perBatch)
				for i := range events {
					events[i] = structured(fmt.Sprint(seq.Add(1)), "/load")
				}
				req, _ := http.NewRequest(http.MethodPost, replicas[r].srv.URL+"/", strings.NewReader(string(batch(events...))))
				req.Header.Set("Content-Type", ctBatch)
				resp, err := client.Do(req)
				if err != nil {
					badMu.Lock()
					bad = append(bad, err.Error())
					badMu.Unlock()
					return
				}
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusAccepted:
					accepted[r].Add(perBatch)
				case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" && resp.Header.Get("RateLimit-Remaining") != "":
					refused[r].Add(perBatch)
				default:
					badMu.Lock()
					bad = append(bad, fmt.Sprintf("status %d headers %v", resp.StatusCode, resp.Header))
					badMu.Unlock()
				}
				r = (r + 1) % len(replicas)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(bad) > 0 {
		t.Fatalf("%d answers were neither 202 nor 429 with Retry-After and RateLimit fields; first: %s", len(bad), bad[0])
	}
	var acc, ref int64
	for i := range replicas {
		acc += accepted[i].Load()
		ref += refused[i].Load()
		if accepted[i].Load() == 0 {
			t.Errorf("replica %d accepted nothing: the budget should be shared, not owned", i)
		}
	}
	bound := float64(rate)*elapsed.Seconds() + burst
	t.Logf("R=%d/s B=%d over %.3fs: bound R×T+B = %.0f events; accepted %d (%.2f%% of the bound; per replica %d/%d/%d), refused %d events in %d requests",
		rate, burst, elapsed.Seconds(), bound, acc, 100*float64(acc)/bound,
		accepted[0].Load(), accepted[1].Load(), accepted[2].Load(), ref, requests.Load())
	if float64(acc) > bound*1.01 {
		t.Fatalf("accepted %d events, more than R×T+B = %.0f (+1%%)", acc, bound)
	}
	if float64(acc) < bound*0.75 {
		t.Fatalf("accepted %d events, far below R×T+B = %.0f: the load did not saturate the limit, so the test proves nothing", acc, bound)
	}
	if ref == 0 {
		t.Fatal("nothing was refused: the load did not exceed the limit")
	}
}
