package ingest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"function/functions/ingest"
	"function/shared/config"
	"function/shared/embedded"
)

// TestCutOffFromRedisIsNotReadyAndSaysWhy: with partition coordination on and its
// Redis not answering, ingest holds every publish (it cannot know whether a
// partition change is under way). It must say so: not ready, so no traffic is routed
// to it, and a 503 naming Redis rather than Kafka. Once Redis answers it is ready and
// takes events again.
func TestCutOffFromRedisIsNotReadyAndSaysWhy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // nothing answers here until the embedded Redis starts on it below

	s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) {
		c.Redis = config.Redis{Addr: addr.String()}
		c.Coordination.Enabled = true
		c.Coordination.HeartbeatMS = 100
		c.AckTimeoutMS = 300
	})
	if ok, err := s.f.Ready(context.Background()); ok || err == nil || !strings.Contains(err.Error(), "Redis") {
		t.Fatalf("cut off from Redis: Ready() = %v, %v; want not ready, naming Redis", ok, err)
	}
	a := post(t, s.srv.URL, "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"c1","source":"/cut","type":"t"}`), nil)
	if a.code != 503 {
		t.Fatalf("cut off from Redis: %d %s, want 503", a.code, a.body)
	}
	if d := a.problem(t).Detail; !strings.Contains(d, "Redis") || strings.HasPrefix(d, "Kafka did not acknowledge") {
		t.Fatalf("503 detail %q: want it to name Redis, not blame Kafka", d)
	}

	r, err := embedded.StartRedis(addr.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // after ingest's Stop below, which removes the lease from it
	deadline := time.Now().Add(10 * time.Second)
	for ok, _ := s.f.Ready(context.Background()); !ok; ok, _ = s.f.Ready(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatal("not ready 10 s after Redis answered")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	if a := post(t, s.srv.URL, "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"c2","source":"/cut","type":"t"}`), nil); a.code != 202 {
		t.Fatalf("after Redis answered: %d %s, want 202", a.code, a.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.f.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
