// Package embedded starts in-process stand-ins for Kafka and Redis, so `make run` and
// fast unit tests need nothing installed: franz-go's kfake (a Kafka-protocol broker)
// and miniredis. They are not Kafka and Redis: tests of delivery guarantees also run
// against the real ones (see test/infra).
package embedded

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an embedded Kafka-protocol broker on 127.0.0.1.
type Kafka struct {
	cluster *kfake.Cluster
}

// StartKafka starts a single-broker kfake cluster on 127.0.0.1:port (0: a free port).
func StartKafka(port int) (*Kafka, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	return &Kafka{cluster: c}, nil
}

// Brokers returns the bootstrap addresses.
func (k *Kafka) Brokers() []string { return k.cluster.ListenAddrs() }

// Close stops the broker; its data is gone.
func (k *Kafka) Close() { k.cluster.Close() }

// Redis is an embedded miniredis on 127.0.0.1 whose clock follows the wall clock.
//
// miniredis expires keys only when its clock is moved (FastForward); Redis runs a
// clock driver goroutine so TTL'd keys (tide's dedup keys) really expire.
type Redis struct {
	*miniredis.Miniredis
	stop chan struct{}
	done sync.WaitGroup
}

// StartRedis starts miniredis on 127.0.0.1:port (0: a free port).
func StartRedis(port int) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	r := &Redis{Miniredis: m, stop: make(chan struct{})}
	r.done.Add(1)
	go r.driveClock(time.Second)
	return r, nil
}

func (r *Redis) driveClock(every time.Duration) {
	defer r.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case now := <-t.C:
			r.FastForward(now.Sub(last))
			last = now
		case <-r.stop:
			return
		}
	}
}

// Close stops the clock driver and the server.
func (r *Redis) Close() {
	close(r.stop)
	r.done.Wait()
	r.Miniredis.Close()
}
