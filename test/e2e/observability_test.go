package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"function/test/pipelinetest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAndScalingSignal checks the observability surface a deployment scales
// and alerts on: connection gauges, per-partition lag and the scaling signal.
func TestMetricsAndScalingSignal(t *testing.T) {
	p := pipelinetest.Start(t)
	for i := 0; i < 10; i++ {
		ev := fmt.Sprintf(`{"specversion":"1.0","id":"m-%d","source":"/metrics-test","type":"t","subject":"k%d"}`, i, i)
		if code, body := p.Post("application/cloudevents+json", []byte(ev), nil); code != http.StatusAccepted {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	p.WaitCaughtUp(30 * time.Second)

	group := p.Opts.Analytics.Consumer.Group
	p.Eventually(30*time.Second, "metrics exported", func() (bool, string) {
		_, body := get(t, p.URL+"/metrics")
		for _, want := range []string{
			"tide_kafka_up 1", "tide_redis_up 1",
			fmt.Sprintf(`tide_consumer_lag{group=%q,partition="0",topic=%q} 0`, group, p.Topic()),
			fmt.Sprintf(`tide_topic_partitions{topic=%q} 4`, p.Topic()),
			"tide_produced_records_total", "tide_consumed_records_total", "tide_end_to_end_latency_seconds_bucket",
		} {
			if !strings.Contains(body, want) {
				return false, "missing " + want
			}
		}
		return true, ""
	})

	var sig struct {
		Group             string `json:"group"`
		Partitions        int    `json:"partitions"`
		Recommended       int    `json:"recommended_replicas"`
		MetricValue       float64
		ProduceRatePerSec float64 `json:"produce_rate_per_sec"`
		ConsumeRatePerSec float64 `json:"consume_rate_per_sec"`
	}
	p.Eventually(30*time.Second, "scaling signal served", func() (bool, string) {
		code, body := get(t, p.URL+"/v1/scaling/"+group)
		if code != http.StatusOK {
			return false, fmt.Sprint(code, body)
		}
		if err := json.Unmarshal([]byte(body), &sig); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if sig.Group != group || sig.Partitions != 4 || sig.Recommended < 1 || sig.Recommended > 4 {
		t.Fatalf("scaling signal %+v: want group %s, 4 partitions, 1..4 replicas", sig, group)
	}
}
